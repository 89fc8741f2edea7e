package workflows

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestQuestionWorkflowID(t *testing.T) {
	t.Parallel()
	cases := []struct{ ws, q, want string }{
		{"w1", "q1", "question:w1:q1"},
		{"5a1b0000-0000-4000-8000-000000000001", "6f1f7f3e-3c0b-4b52-9f1a-2f7d8c4e9a21",
			"question:5a1b0000-0000-4000-8000-000000000001:6f1f7f3e-3c0b-4b52-9f1a-2f7d8c4e9a21"},
	}
	for _, tc := range cases {
		require.Equal(t, tc.want, QuestionWorkflowID(tc.ws, tc.q))
	}
}

func TestQuestionCallbackWorkflowID(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"234d1a4e-b617-4388-90fe-adc3633d6b72": "question-callback:234d1a4e-b617-4388-90fe-adc3633d6b72",
		"x":                                    "question-callback:x",
	} {
		require.Equal(t, want, QuestionCallbackWorkflowID(in))
	}
}
