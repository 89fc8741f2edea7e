package linsync

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

// TestMergeLinear: one row per rule of MergeLinear, each from a state that makes exactly that rule decide.
func TestMergeLinear(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1_700_000_000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	synced := FieldState{Value: "a", Source: SourceApp, SourceAt: at(0), LinearValue: "a", SyncedValue: "a", LinearAt: at(1)}
	fromLinear := FieldState{Value: "b", Source: SourceLinear, SourceAt: at(5), LinearValue: "b", SyncedValue: "b", LinearAt: at(5)}
	pending, _, _ := MergeApp(synced, "c", at(10))
	inFlight := MarkPushing(pending, "c", "c", at(20))
	// Two recorded writes: c at 20, then e at 30 after an app edit at 25.
	written := MergePush(appEdit(MergePush(pending, "c", "c", at(20)), "e", at(25)), "e", "e", at(30))

	for _, tc := range []struct {
		name            string
		f               FieldState
		v               string
		at              time.Time
		edited, byOther bool
		changed         bool
		value           string
		dirty           bool
		audit           string
	}{
		{"the known Linear value again changes nothing", synced, "a", at(5), false, true, false, "a", false, ""},
		{"a Linear edit without a pending app edit wins", synced, "b", at(5), true, true, true, "b", false, ""},
		{"a webhook older than the known Linear state never overwrites", fromLinear, "a", at(3), false, true, false, "b", false, AuditStaleLinear},
		{"a pending app edit newer than the Linear edit wins and is written back", pending, "b", at(8), true, true, false, "c", true, AuditConflict},
		{"a Linear edit newer than the pending app edit wins", pending, "b", at(12), true, true, true, "b", false, AuditConflict},
		{"a change of unknown time keeps the pending app edit", pending, "z", at(30), false, true, false, "c", true, AuditConflict},
		{"the actorless echo of the write in flight is ours", inFlight, "c", at(21), true, false, false, "c", false, ""},
		{"the same value from someone else is their edit, equal to ours", inFlight, "c", at(21), true, true, false, "c", false, ""},
		{"a late webhook of an earlier recorded write is ours", written, "c", at(20), true, false, false, "e", false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, changed, audit := MergeLinear(tc.f, tc.v, tc.at, tc.edited, tc.byOther)
			require.Equal(t, tc.changed, changed, "changed")
			require.Equal(t, tc.value, f.Value, "value")
			require.Equal(t, tc.dirty, f.Dirty(), "dirty")
			if tc.audit == "" {
				require.Nil(t, audit)
			} else {
				require.NotNil(t, audit)
				require.Equal(t, tc.audit, audit.Kind)
			}
		})
	}
}

// appEdit is MergeApp without its report, for building states.
func appEdit(f FieldState, v string, at time.Time) FieldState {
	f, _, _ = MergeApp(f, v, at)
	return f
}

func TestMergeApp(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1_700_000_000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	synced := FieldState{Value: "a", Source: SourceApp, SourceAt: at(0), LinearValue: "a", SyncedValue: "a", LinearAt: at(1)}
	fromLinear := FieldState{Value: "b", Source: SourceLinear, SourceAt: at(5), LinearValue: "b", SyncedValue: "b", LinearAt: at(5)}
	for _, tc := range []struct {
		name    string
		f       FieldState
		v       string
		at      time.Time
		changed bool
		value   string
		audit   string
	}{
		{"the same value changes nothing", synced, "a", at(5), false, "a", ""},
		{"a new value is taken and is to be written", synced, "b", at(5), true, "b", ""},
		{"an edit older than the current value loses", fromLinear, "d", at(3), false, "b", AuditStaleApp},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, changed, audit := MergeApp(tc.f, tc.v, tc.at)
			require.Equal(t, tc.changed, changed)
			require.Equal(t, tc.value, f.Value)
			require.Equal(t, tc.changed, f.Dirty(), "a taken edit is to be written")
			if tc.audit == "" {
				require.Nil(t, audit)
			} else {
				require.Equal(t, tc.audit, audit.Kind)
			}
		})
	}
}

func TestMergePush(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1_700_000_000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	pending := FieldState{Value: "c", Source: SourceApp, SourceAt: at(10), LinearValue: "a", SyncedValue: "a", LinearAt: at(1)}
	newer := pending
	newer.LinearValue, newer.LinearAt = "z", at(40)
	for _, tc := range []struct {
		name          string
		f             FieldState
		pushed, lin   string
		at            time.Time
		dirty         bool
		linearAt      time.Time
		writes        int
		wantLinearVal string
	}{
		{"a recorded write syncs the field", MarkPushing(pending, "c", "c", at(15)), "c", "c", at(20), false, at(20), 1, "c"},
		{"a write older than the known Linear state is history", newer, "c", "c", at(20), true, at(40), 1, "z"},
		{"nothing sent and Linear holds the value: synced", FieldState{Value: "x@nobody"}, "x@nobody", "", time.Time{}, false, time.Time{}, 0, ""},
		{"nothing sent and Linear holds another value: still to write", FieldState{Value: "x@nobody", LinearValue: "u1"}, "x@nobody", "", time.Time{}, true, time.Time{}, 0, "u1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := MergePush(tc.f, tc.pushed, tc.lin, tc.at)
			require.False(t, f.Pushing, "the write in flight is over")
			require.Equal(t, tc.dirty, f.Dirty())
			require.True(t, tc.linearAt.Equal(f.LinearAt), "linear_at %s", f.LinearAt)
			require.Len(t, f.Writes, tc.writes)
			require.Equal(t, tc.wantLinearVal, f.LinearValue)
		})
	}
	f := pending
	for i := range 2 * maxWrites {
		f = MergePush(f, "c", "c", at(100+i))
	}
	require.Len(t, f.Writes, maxWrites, "only the latest writes are remembered")
	require.True(t, f.Writes[maxWrites-1].Equal(at(100+2*maxWrites-1)))
}
