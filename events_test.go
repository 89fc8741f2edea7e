package linsync

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestMergeLabels(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		a, b, want []string
	}{
		{"both empty", nil, nil, []string{}},
		{"b's new names follow a's", []string{"bug"}, []string{"paid", "Bug"}, []string{"bug", "paid"}},
		{"case and blanks are ignored, the first spelling kept", []string{" Paid ", "paid", ""}, []string{"PAID"}, []string{"Paid"}},
	} {
		t.Run(tc.name, func(t *testing.T) { require.Equal(t, tc.want, MergeLabels(tc.a, tc.b)) })
	}
}

func TestMoreUrgent(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ a, b, want int }{
		{0, 0, 0}, {0, 3, 3}, {4, 0, 4}, {1, 4, 1}, {3, 2, 2},
	} {
		require.Equal(t, tc.want, MoreUrgent(tc.a, tc.b), "%d vs %d", tc.a, tc.b)
	}
}

// TestEventSettingsJSON: the durations travel as seconds and milliseconds, for the API and Temporal payloads alike,
// and read back as they were.
func TestEventSettingsJSON(t *testing.T) {
	t.Parallel()
	s := DefaultEventSettings()
	s.Debounce = 1500 * time.Millisecond
	b, err := json.Marshal(s)
	require.NoError(t, err)
	var wire map[string]any
	require.NoError(t, json.Unmarshal(b, &wire))
	require.EqualValues(t, 24*3600, wire["broken_link_window_seconds"])
	require.EqualValues(t, 1500, wire["debounce_ms"])
	var back EventSettings
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, s, back)
}
