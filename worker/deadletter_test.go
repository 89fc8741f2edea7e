package worker_test

import (
	"context"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/activities"
	"github.com/linsync/linsync/linsynctest"
	"github.com/linsync/linsync/worker"
	"github.com/linsync/linsync/workflows"
)

func TestMain(m *testing.M) { os.Exit(linsynctest.RunWithTemporal(m)) }

type flakyInput struct {
	WorkspaceID string `json:"workspace_id"`
	Key         string `json:"key"`
}

// flaky is a side effect that fails for good while broken, like a Linear call refused as invalid.
type flaky struct {
	broken  atomic.Bool
	mu      sync.Mutex
	effects map[string]int
}

func (f *flaky) Apply(_ context.Context, in flakyInput) error {
	if f.broken.Load() {
		return temporal.NewApplicationErrorWithOptions("linear refused the change", activities.ErrTypeLinearInvalid,
			temporal.ApplicationErrorOptions{NonRetryable: true, Details: []any{activities.FailureDetails{Attempt: 1, Class: "invalid"}}})
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.effects[in.Key]++
	return nil
}

func (f *flaky) count(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.effects[key]
}

func FlakyWorkflow(ctx workflow.Context, in flakyInput) error {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 5 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: 3, InitialInterval: 10 * time.Millisecond}})
	var f *flaky
	return workflow.ExecuteActivity(ctx, f.Apply, in).Get(ctx, nil)
}

// TestDeadLetterAndReplayExactlyOnce: a permanent failure leaves one dead letter and a Failed run; a replay after the
// fault is cleared applies the effect once, and replaying again applies nothing more.
func TestDeadLetterAndReplayExactlyOnce(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := linsynctest.DB(t)
	tc, _ := linsynctest.Temporal(t)
	ws, err := db.CreateWorkspace(ctx, "acme", "Acme")
	require.NoError(t, err)

	tq := "dlq-" + uuid.NewString()
	fx := &flaky{effects: map[string]int{}}
	fx.broken.Store(true)
	acts, err := worker.NewActivities(worker.Deps{DB: db, Temporal: tc, TaskQueue: tq, TemporalUIURL: "http://ui.test"})
	require.NoError(t, err)
	w := worker.New(tc, tq, worker.Activities{DeadLetters: acts.DeadLetters}, sdkworker.Options{})
	w.RegisterWorkflow(FlakyWorkflow)
	w.RegisterActivity(fx)
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)

	id := "flaky:" + uuid.NewString()
	run, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: tq}, FlakyWorkflow,
		flakyInput{WorkspaceID: ws.ID, Key: "k1"})
	require.NoError(t, err)
	require.Error(t, run.Get(ctx, nil))

	desc, err := tc.DescribeWorkflowExecution(ctx, id, "")
	require.NoError(t, err)
	require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_FAILED, desc.GetWorkflowExecutionInfo().GetStatus(), "the run ends Failed")

	var dls []linsync.DeadLetter
	require.Eventually(t, func() bool {
		dls, err = db.ListDeadLetters(ctx, linsync.DeadLetterFilter{WorkspaceID: ws.ID})
		return err == nil && len(dls) == 1
	}, 10*time.Second, 100*time.Millisecond)
	dl := dls[0]
	require.Equal(t, "FlakyWorkflow", dl.Kind)
	require.Equal(t, id, dl.WorkflowID)
	require.Equal(t, run.GetRunID(), dl.RunID)
	require.Equal(t, activities.ErrTypeLinearInvalid, dl.ErrorClass)
	require.Contains(t, dl.ErrorMessage, "linear refused the change")
	require.Equal(t, "http://ui.test/namespaces/default/workflows/"+id+"/"+run.GetRunID()+"/history", dl.UIURL)
	require.JSONEq(t, `[{"workspace_id":"`+ws.ID+`","key":"k1"}]`, string(dl.Input))
	require.Equal(t, linsync.DeadLetterOpen, dl.Status)
	require.Zero(t, fx.count("k1"))

	replay := func() workflows.ReplayProgress {
		t.Helper()
		r, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: workflows.ReplayWorkflowID(ws.ID, uuid.NewString()), TaskQueue: tq},
			workflows.ReplayDeadLetters, workflows.ReplayInput{WorkspaceID: ws.ID, IDs: []string{dl.ID}})
		require.NoError(t, err)
		var p workflows.ReplayProgress
		require.NoError(t, r.Get(ctx, &p))
		return p
	}

	fx.broken.Store(false) // the fault is cleared
	p := replay()
	require.Equal(t, 1, p.Counts[activities.ReplayStarted], "%+v", p)
	require.NoError(t, tc.GetWorkflow(ctx, id, p.Results[0].RunID).Get(ctx, nil))
	require.Equal(t, 1, fx.count("k1"), "the effect happens once")

	p = replay()
	require.Equal(t, 1, p.Counts[activities.ReplayAlreadyCompleted], "%+v", p)
	require.Equal(t, 1, fx.count("k1"), "replaying twice does not apply twice")

	got, err := db.FindDeadLetter(ctx, ws.ID, dl.ID)
	require.NoError(t, err)
	require.Equal(t, linsync.DeadLetterReplayed, got.Status)
	require.Equal(t, p.Results[0].RunID, got.ReplayRunID, "the dead letter links the run that replayed it")

	// Another workspace cannot see or replay it.
	_, err = db.FindDeadLetter(ctx, uuid.NewString(), dl.ID)
	require.Equal(t, linsync.ENOTFOUND, linsync.ErrorCode(err))
}

// TestBulkReplayIsPaced replays by filter under a rate cap: the replays are spread over time.
func TestBulkReplayIsPaced(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := linsynctest.DB(t)
	tc, _ := linsynctest.Temporal(t)
	ws, err := db.CreateWorkspace(ctx, "acme", "Acme")
	require.NoError(t, err)
	tq := "dlq-" + uuid.NewString()
	fx := &flaky{effects: map[string]int{}}
	fx.broken.Store(true)
	acts, err := worker.NewActivities(worker.Deps{DB: db, Temporal: tc, TaskQueue: tq})
	require.NoError(t, err)
	w := worker.New(tc, tq, worker.Activities{DeadLetters: acts.DeadLetters}, sdkworker.Options{})
	w.RegisterWorkflow(FlakyWorkflow)
	w.RegisterActivity(fx)
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)

	const n = 4
	for i := range n {
		run, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "flaky:" + uuid.NewString(), TaskQueue: tq},
			FlakyWorkflow, flakyInput{WorkspaceID: ws.ID, Key: string(rune('a' + i))})
		require.NoError(t, err)
		require.Error(t, run.Get(ctx, nil))
	}
	require.Eventually(t, func() bool {
		dls, err := db.ListDeadLetters(ctx, linsync.DeadLetterFilter{WorkspaceID: ws.ID, Status: linsync.DeadLetterOpen})
		return err == nil && len(dls) == n
	}, 10*time.Second, 100*time.Millisecond)

	fx.broken.Store(false)
	start := time.Now()
	r, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: workflows.ReplayWorkflowID(ws.ID, uuid.NewString()), TaskQueue: tq},
		workflows.ReplayDeadLetters, workflows.ReplayInput{WorkspaceID: ws.ID, Kind: "FlakyWorkflow", RatePerSecond: 10})
	require.NoError(t, err)
	var p workflows.ReplayProgress
	require.NoError(t, r.Get(ctx, &p))
	require.Equal(t, n, p.Total)
	require.Equal(t, n, p.Counts[activities.ReplayStarted])
	require.GreaterOrEqual(t, time.Since(start), (n-1)*100*time.Millisecond, "replays are paced at the rate cap")
	open, err := db.ListDeadLetters(ctx, linsync.DeadLetterFilter{WorkspaceID: ws.ID, Status: linsync.DeadLetterOpen})
	require.NoError(t, err)
	require.Empty(t, open)
}
