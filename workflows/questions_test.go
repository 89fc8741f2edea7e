package workflows

import (
	"context"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/activities"
	"github.com/linsync/linsync/linear"
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
	for _, tc := range []struct{ ws, delivery, want string }{
		{"ws1", "234d1a4e-b617-4388-90fe-adc3633d6b72", "question-callback:ws1:234d1a4e-b617-4388-90fe-adc3633d6b72"},
		{"ws2", "234d1a4e-b617-4388-90fe-adc3633d6b72", "question-callback:ws2:234d1a4e-b617-4388-90fe-adc3633d6b72"},
	} {
		require.Equal(t, tc.want, QuestionCallbackWorkflowID(tc.ws, tc.delivery))
	}
}

// TestLinearAttemptsComeFromTheInput: a call to Linear is tried as often as the workflow's input says (the
// configuration cmd/linsync puts there through Starter), and DefaultLinearMaxAttempts times when it says nothing,
// plus the allowance for local refusals in Temporal's backstop. (The test environment does not show activities
// their retry policy, so here Temporal's backstop ends the retries; on a real server activities.LinearError ends
// them once the configured attempts reached Linear, which e2e/TestRateLimitStormNeverDeadLettersUnsentWork and
// activities' TestLinearErrorCountsOnlyAttemptsSent show.)
func TestLinearAttemptsComeFromTheInput(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		input int32
		want  int
	}{{2, 2}, {0, DefaultLinearMaxAttempts}} {
		var s testsuite.WorkflowTestSuite
		s.SetLogger(sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler)))
		env := s.NewTestWorkflowEnvironment()
		env.RegisterWorkflow(QuestionPush)
		var a *activities.Questions
		env.RegisterActivity(a)
		env.OnActivity(a.QuestionSyncWork, mock.Anything, mock.Anything).Return(&linsync.SyncWork{Linked: true, NeedIssue: true}, nil)
		calls := 0
		env.OnActivity(a.EnsureIssue, mock.Anything, mock.Anything).Return(func(ctx context.Context, _ activities.QuestionRef) error {
			calls++
			return (*activities.Metrics)(nil).LinearError(ctx, &linear.Error{Class: linear.ClassTransient, Message: "linear is down"})
		})
		env.OnActivity(a.MarkSyncFailed, mock.Anything, mock.Anything, mock.Anything, mock.Anything).Return(nil)
		env.OnActivity(a.RecordSyncFailure, mock.Anything, mock.Anything, mock.Anything).Return(nil)
		env.ExecuteWorkflow(QuestionSync, QuestionSyncInput{WorkspaceID: "w1", QuestionID: "q1", Pending: true,
			LinearMaxAttempts: tc.input})
		require.True(t, env.IsWorkflowCompleted())
		require.NoError(t, env.GetWorkflowError())
		require.Equal(t, tc.want+activities.LocalRefusalAllowance, calls, "attempts with linear_max_attempts %d", tc.input)
	}
}
