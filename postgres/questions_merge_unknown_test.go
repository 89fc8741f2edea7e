package postgres

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestMergeLinearChangeOfUnknownTime: a webhook about another field shows this field changed in Linear, at an
// unknown time (its own webhook is late). A pending app edit made after the last known Linear state is kept; the
// late webhook, with its exact time, then decides.
func TestMergeLinearChangeOfUnknownTime(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1_700_000_000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	synced := FieldState{Value: "open", Source: SourceApp, SourceAt: at(0), LinearValue: "open", SyncedValue: "open", LinearAt: at(1)}
	pending, _, _ := MergeApp(synced, "in_progress", at(20)) // the app edits at 20; a human had edited at 10

	f, changed, audit := MergeLinear(pending, "closed", at(30), false, true) // the title's webhook, stamped 30
	require.False(t, changed, "a change of unknown time does not beat the app's known, possibly later, edit")
	require.Equal(t, "in_progress", f.Value)
	require.True(t, f.Dirty(), "the app's edit is written back")
	require.Equal(t, AuditConflict, audit.Kind)
	require.Equal(t, SourceApp, audit.Detail["winner"])

	g, changed, _ := MergeLinear(f, "closed", at(10), true, true) // the human's own webhook arrives, late
	require.False(t, changed, "the human edit at 10 is older than the app's at 20")
	require.Equal(t, "in_progress", g.Value)

	h, changed, _ := MergeLinear(f, "closed", at(25), true, true) // had the human edited at 25 instead
	require.True(t, changed, "its exact time, later than the app's, wins")
	require.Equal(t, "closed", h.Value)

	// Known to be later: Linear's last known state is newer than the app's edit, so the change is newer too.
	later := pending
	later.LinearAt = at(21)
	k, changed, _ := MergeLinear(later, "closed", at(30), false, true)
	require.True(t, changed)
	require.Equal(t, "closed", k.Value)
}
