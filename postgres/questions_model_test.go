package postgres

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var modelSeeds = flag.Int("seeds", 0, "seeds of the randomized question sync model test (default 300, or $LINSYNC_MODEL_SEEDS)")

func seedCount() int {
	if *modelSeeds > 0 {
		return *modelSeeds
	}
	if n, err := strconv.Atoi(os.Getenv("LINSYNC_MODEL_SEEDS")); err == nil && n > 0 {
		return n
	}
	return 300
}

// modelWebhook is one Issue webhook as the model's Linear sends it.
type modelWebhook struct {
	value  string
	at     time.Time
	ours   bool // the actor is linsync's Linear user
	edited bool
}

// syncModel runs the merge rules (MergeApp, MergeLinear, MergePush) against an in-process Linear with a webhook
// queue that duplicates, delays and reorders, and a push that is split into read, Linear write and record, so
// webhooks and edits land between them, as with the entity workflow and the delivery workflows.
type syncModel struct {
	rng   *rand.Rand
	clock time.Time

	f          FieldState
	linear     string // the value Linear holds
	queue      []modelWebhook
	pushing    bool
	pushValue  string
	pushWrote  bool
	pushAt     time.Time
	writes     int
	edits      int
	lastEdit   string // the value of the latest edit on either side
	actorGuard bool   // drop webhooks whose actor is linsync (guard 2); without it guard 3 alone must hold
	log        []string
}

func (m *syncModel) tick() time.Time { m.clock = m.clock.Add(time.Millisecond); return m.clock }

func (m *syncModel) appEdit() {
	v := "app-" + strconv.Itoa(m.rng.IntN(4))
	f, changed, _ := MergeApp(m.f, v, m.tick())
	m.f = f
	if changed {
		m.edits++
		m.lastEdit = v
	}
	m.log = append(m.log, "app edit "+v)
}

func (m *syncModel) humanEdit() {
	v := "lin-" + strconv.Itoa(m.rng.IntN(4))
	if v == m.linear {
		return // Linear sends no webhook for a no-op edit
	}
	at := m.tick()
	m.linear = v
	m.edits++
	m.lastEdit = v
	m.queue = append(m.queue, modelWebhook{value: v, at: at, edited: true})
	m.log = append(m.log, "human edit "+v)
}

// deliver sends one queued webhook, picked at random (reorder, delay), sometimes keeping it queued (duplicate).
func (m *syncModel) deliver() {
	if len(m.queue) == 0 {
		return
	}
	i := m.rng.IntN(len(m.queue))
	w := m.queue[i]
	if m.rng.IntN(4) != 0 {
		m.queue = append(m.queue[:i], m.queue[i+1:]...)
	}
	m.log = append(m.log, fmt.Sprintf("deliver %s@%d ours=%v", w.value, w.at.UnixMilli()%100000, w.ours))
	if w.ours && m.actorGuard {
		return
	}
	// Without the actor guard an echo still goes through MergeLinear, but as a snapshot: the "late edit newer than
	// our write" rule needs to know the edit was not ours, which only the actor (or our own ids) can tell.
	m.f, _, _ = MergeLinear(m.f, w.value, w.at, w.edited && !w.ours)
}

// pushStep advances the single in-flight push (the entity workflow runs one at a time): read, write, record.
func (m *syncModel) pushStep(t *testing.T) {
	switch {
	case !m.pushing:
		if !m.f.Dirty() {
			return
		}
		require.NotEqual(t, m.f.LinearValue, m.f.Value, "a push never writes what Linear is known to hold")
		m.pushing, m.pushValue, m.pushWrote = true, m.f.Value, false
	case !m.pushWrote:
		m.pushAt = m.tick()
		m.linear = m.pushValue
		m.writes++
		m.pushWrote = true
		m.queue = append(m.queue, modelWebhook{value: m.pushValue, at: m.pushAt, ours: true, edited: true})
		m.log = append(m.log, "write "+m.pushValue)
	default:
		m.f = MergePush(m.f, m.pushValue, m.pushValue, m.pushAt)
		m.pushing = false
		m.log = append(m.log, fmt.Sprintf("record %s@%d -> %+v", m.pushValue, m.pushAt.UnixMilli()%100000, m.f))
	}
}

func runModel(t *testing.T, seed uint64) {
	m := &syncModel{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), clock: time.Unix(1_700_000_000, 0)}
	// Production always has the actor guard. Without it, an echo that overtakes the push's record step looks like a
	// newer Linear edit (known limitation, see the report); the value guard alone covers echoes after the record.
	m.actorGuard = true
	created := m.tick()
	m.f = FieldState{Value: "v0", Source: SourceApp, SourceAt: created, LinearValue: "v0", SyncedValue: "v0", LinearAt: created}
	m.linear, m.lastEdit = "v0", "v0"
	steps := 10 + m.rng.IntN(60)
	for range steps {
		switch r := m.rng.IntN(10); {
		case r < 2:
			m.appEdit()
		case r < 4:
			m.humanEdit()
		case r < 7:
			m.deliver()
		default:
			m.pushStep(t)
		}
	}
	// Quiesce: no more edits; every webhook is delivered and every push completes.
	for i := 0; len(m.queue) > 0 || m.pushing || m.f.Dirty(); i++ {
		require.Less(t, i, 10_000, "seed %d does not quiesce: %v", seed, m.log)
		if len(m.queue) > 0 && m.rng.IntN(2) == 0 {
			m.deliver()
		} else {
			m.pushStep(t)
		}
	}
	require.Equal(t, m.linear, m.f.Value, "seed %d: both sides converge; log %v", seed, m.log)
	require.Equal(t, m.lastEdit, m.f.Value, "seed %d: the latest edit wins; log %v", seed, m.log)
	require.LessOrEqual(t, m.writes, m.edits, "seed %d: no write without an edit behind it; log %v", seed, m.log)
}

// TestQuestionSyncModel runs seeds of random interleavings of app edits, Linear edits, duplicated, delayed and
// reordered webhooks, and split pushes, and requires convergence on both sides to the latest edit with no extra
// writes. 300 seeds by default; more with -seeds N or LINSYNC_MODEL_SEEDS.
func TestQuestionSyncModel(t *testing.T) {
	t.Parallel()
	n := seedCount()
	for seed := range uint64(n) {
		runModel(t, seed)
	}
	t.Logf("ran %d seeds", n)
}

func TestMergeRules(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1_700_000_000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	base := FieldState{Value: "a", Source: SourceApp, SourceAt: at(0), LinearValue: "a", SyncedValue: "a", LinearAt: at(1)}

	f, changed, audit := MergeLinear(base, "a", at(5), false)
	require.False(t, changed, "an echo of our value changes nothing")
	require.Nil(t, audit)
	require.Equal(t, at(5), f.LinearAt)

	f, changed, audit = MergeLinear(base, "b", at(5), true)
	require.True(t, changed)
	require.Nil(t, audit, "no conflict without a pending app edit")
	require.Equal(t, FieldState{Value: "b", Source: SourceLinear, SourceAt: at(5), LinearValue: "b", SyncedValue: "b", LinearAt: at(5)}, f)

	_, changed, audit = MergeLinear(f, "a", at(3), false)
	require.False(t, changed, "a stale webhook never overwrites")
	require.Equal(t, AuditStaleLinear, audit.Kind)

	pending, _, _ := MergeApp(base, "c", at(10))
	require.True(t, pending.Dirty())
	f, changed, audit = MergeLinear(pending, "b", at(8), true)
	require.False(t, changed, "the newer app edit wins")
	require.Equal(t, AuditConflict, audit.Kind)
	require.True(t, f.Dirty(), "and is written back")

	f, changed, audit = MergeLinear(pending, "b", at(12), true)
	require.True(t, changed, "the newer Linear edit wins")
	require.Equal(t, AuditConflict, audit.Kind)
	require.False(t, f.Dirty())

	_, changed, audit = MergeApp(f, "d", at(11))
	require.False(t, changed, "an app edit older than the Linear edit loses")
	require.Equal(t, AuditStaleApp, audit.Kind)

	unmatched := MergePush(FieldState{Value: "x@nobody", LinearValue: ""}, "x@nobody", "", time.Time{})
	require.False(t, unmatched.Dirty(), "an unmatched email is synced as unassigned without a request")
}
