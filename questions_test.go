package linsync

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSyncWorkEmpty(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		w    SyncWork
		want bool
	}{
		{"an unlinked question needs nothing, whatever is pending", SyncWork{NeedIssue: true, NeedPush: true}, true},
		{"linked and all written", SyncWork{Linked: true}, true},
		{"the issue is missing", SyncWork{Linked: true, NeedIssue: true}, false},
		{"fields to push", SyncWork{Linked: true, NeedPush: true}, false},
		{"replies to write", SyncWork{Linked: true, PendingReplies: []string{"r1"}}, false},
		{"the archive note to write", SyncWork{Linked: true, NeedArchive: true}, false},
	} {
		t.Run(tc.name, func(t *testing.T) { require.Equal(t, tc.want, tc.w.Empty()) })
	}
}

func TestQuestionFields(t *testing.T) {
	t.Parallel()
	synced := func(v string) FieldState { return FieldState{Value: v, LinearValue: v, SyncedValue: v} }
	q := Question{Fields: map[string]FieldState{FieldStatus: synced(StatusOpen), FieldPriority: synced("2")}}
	require.Equal(t, 2, q.Priority())
	require.Equal(t, StatusOpen, q.Field(FieldStatus))
	require.False(t, q.NeedsPush())
	q.Fields[FieldTitle] = FieldState{Value: "new title", SyncedValue: "old title"}
	require.True(t, q.NeedsPush(), "a field Linear has not been given")
	require.Equal(t, 0, (&Question{}).Priority(), "no priority is Linear's 0")
}

func TestNormalizeEmail(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{" Alice@Example.COM ": "alice@example.com", "": "", "bob@x.io": "bob@x.io"} {
		require.Equal(t, want, NormalizeEmail(in), in)
	}
}
