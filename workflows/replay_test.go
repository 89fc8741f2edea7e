package workflows_test

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/converter"
	sdkinterceptor "go.temporal.io/sdk/interceptor"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/linsync/linsync/activities"
	"github.com/linsync/linsync/envelope"
	"github.com/linsync/linsync/workflows"
)

// historyDir holds the recorded histories, <Type>/<recorded>.json: for every workflow type, one from each version
// of the code whose runs may still be in flight (e2e TestRecordWorkflowHistories, `make histories`, adds the
// current one; an old one is deleted only once no run of its version can be running any more).
const historyDir = "testdata/histories"

// replayer replays histories against the workflows as the production worker registers them (every type under its
// name, the dead-letter interceptor on), with fn standing in for the workflow named replace when it is set.
func replayer(t *testing.T, replace string, fn any) worker.WorkflowReplayer {
	t.Helper()
	// The histories' payloads are sealed as production seals them, with the test key kept beside them.
	keyURL, err := os.ReadFile(filepath.Join(historyDir, "codec.keyurl"))
	require.NoError(t, err)
	keeper, err := envelope.Open(t.Context(), strings.TrimSpace(string(keyURL)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = keeper.Close() })
	r, err := worker.NewWorkflowReplayerWithOptions(worker.WorkflowReplayerOptions{
		DataConverter: converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), envelope.NewCodec(keeper)),
		Interceptors:  []sdkinterceptor.WorkerInterceptor{&workflows.DeadLetterInterceptor{}}})
	require.NoError(t, err)
	for name, wf := range workflows.All() {
		if name == replace {
			wf = fn
		}
		r.RegisterWorkflowWithOptions(wf, workflow.RegisterOptions{Name: name})
	}
	return r
}

var quiet = sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))

// TestReplayRecordedHistories replays every recorded history of every workflow type against the current code. A
// change that would break workflows already running (another activity, another order, a timer removed) fails here;
// make such a change behind workflow.GetVersion and record the new version too (see the README, "Changing a
// workflow safely").
func TestReplayRecordedHistories(t *testing.T) {
	t.Parallel()
	r := replayer(t, "", nil)
	for name := range workflows.All() {
		t.Run(name, func(t *testing.T) {
			files, err := filepath.Glob(filepath.Join(historyDir, name, "*.json"))
			require.NoError(t, err)
			require.NotEmpty(t, files, "no recorded history of %s: run `make histories`", name)
			for _, file := range files {
				require.NoError(t, r.ReplayWorkflowHistoryFromJSONFile(quiet, file), "%s", file)
			}
		})
	}
}

// TestReplayCatchesAnIncompatibleChange: the replay test can fail. A LinearDelivery that records the delivery
// before routing it (the order swapped, as a careless refactor might) does not replay the recorded history.
func TestReplayCatchesAnIncompatibleChange(t *testing.T) {
	t.Parallel()
	swapped := func(ctx workflow.Context, in workflows.LinearDeliveryInput) error {
		var d *activities.Deliveries
		ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 10e9})
		if err := workflow.ExecuteActivity(ctx, d.RecordDelivery, in).Get(ctx, nil); err != nil {
			return err
		}
		return workflows.LinearDelivery(ctx, in)
	}
	err := replayer(t, workflows.TypeLinearDelivery, swapped).
		ReplayWorkflowHistoryFromJSONFile(quiet, filepath.Join(historyDir, workflows.TypeLinearDelivery, "2026-11-28-inbox.json"))
	require.Error(t, err)
	require.Contains(t, err.Error(), "nondeterministic")
}
