package linsync

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
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
	// byOther: the payload names a human actor. In the actorless mode (actorGuard false) no webhook carries an
	// actor, as with integrations and system changes, so neither guard 2 nor byOther can help.
	byOther bool
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

// tick advances the one clock linsync and Linear share in the model by more than EchoSkew, so the skew allowance
// never blurs the order of two steps.
func (m *syncModel) tick() time.Time { m.clock = m.clock.Add(2 * EchoSkew); return m.clock }

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
	if !m.actorGuard && m.pushing && v == m.pushValue {
		// Without an actor, a human edit to exactly the value linsync is writing at that moment is indistinguishable
		// from the echo of that write; the value guard takes it for the echo. Production payloads carry the human
		// actor (byOther), so this is the model's limit of the actorless mode, not an accepted production loss.
		return
	}
	at := m.tick()
	m.linear = v
	m.edits++
	m.lastEdit = v
	m.queue = append(m.queue, modelWebhook{value: v, at: at, edited: true, byOther: m.actorGuard})
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
	m.log = append(m.log, fmt.Sprintf("deliver %s@%d ours=%v", w.value, w.at.Unix()%100000, w.ours))
	if w.ours && m.actorGuard {
		return
	}
	// Without the actor guard an echo goes through MergeLinear exactly as production sends it: edited (its
	// updatedFrom names the field) and with no actor. The value of the write in flight (MarkPushing) and the times
	// of recorded writes must recognise it. (The model used to pass edited=false for echoes, knowing what
	// production cannot know; that hid the echo-before-record window.)
	m.f, _, _ = MergeLinear(m.f, w.value, w.at, w.edited, w.byOther)
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
		m.f = MarkPushing(m.f, m.pushValue, m.pushValue, m.tick()) // stored before the Linear call, as BeginPush does
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
		m.log = append(m.log, fmt.Sprintf("record %s@%d -> %+v", m.pushValue, m.pushAt.Unix()%100000, m.f))
	}
}

func runModel(t *testing.T, seed uint64, actorGuard bool) {
	m := &syncModel{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), clock: time.Unix(1_700_000_000, 0)}
	// With the actor guard, our echoes are dropped and human webhooks name their actor. Without it (webhooks with a
	// null actor), the value guard alone must hold, including for an echo that overtakes the push's record step.
	m.actorGuard = actorGuard
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
	require.Equal(t, m.linear, m.f.Value, "seed %d (actor guard %v): both sides converge; log %v", seed, actorGuard, m.log)
	require.Equal(t, m.lastEdit, m.f.Value, "seed %d (actor guard %v): the latest edit wins; log %v", seed, actorGuard, m.log)
	require.LessOrEqual(t, m.writes, m.edits, "seed %d (actor guard %v): no write without an edit behind it; log %v", seed, actorGuard, m.log)
}

// regressionSeeds failed once and always run: 558 lost the latest edit to a late webhook of an older one (the
// field's version did not advance on an edit to the value it already had); 21 let an actorless echo of our own
// write overwrite a newer app edit; 28 was reported failing once in CI.
var regressionSeeds = []uint64{21, 28, 558}

// TestQuestionSyncModel runs seeds of random interleavings of app edits, Linear edits, duplicated, delayed and
// reordered webhooks, and split pushes, and requires convergence on both sides to the latest edit with no extra
// writes, with and without actors in the payloads. The seeds are fixed (0..N-1 plus regressionSeeds), so every run
// is the same: 300 by default; more with -seeds N or LINSYNC_MODEL_SEEDS; one with LINSYNC_MODEL_SEED.
func TestQuestionSyncModel(t *testing.T) {
	t.Parallel()
	seeds := slices.Clone(regressionSeeds)
	if one, err := strconv.ParseUint(os.Getenv("LINSYNC_MODEL_SEED"), 10, 64); err == nil {
		seeds = []uint64{one}
	} else {
		for seed := range uint64(seedCount()) {
			seeds = append(seeds, seed)
		}
	}
	for _, seed := range seeds {
		for _, actorGuard := range []bool{true, false} {
			runModel(t, seed, actorGuard)
		}
	}
	t.Logf("ran %d seeds, each with and without actors", len(seeds))
}
