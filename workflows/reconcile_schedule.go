package workflows

import (
	"context"
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
)

// ReconcileScheduleID is the ID of a workspace's reconciliation schedule.
func ReconcileScheduleID(workspaceID string) string { return "reconcile:" + workspaceID }

// reconcileSchedule is the schedule of a workspace's reconciliation: every interval, spread by up to a tenth of it
// so workspaces connected together do not all call Linear at the same moment, never two runs at once.
func (s Starter) reconcileSchedule(workspaceID string, every time.Duration) (client.ScheduleSpec, *client.ScheduleWorkflowAction) {
	every = s.ReconcileInterval(every)
	spec := client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: every}}, Jitter: every / 10}
	action := &client.ScheduleWorkflowAction{ID: ReconcileWorkflowID(workspaceID), Workflow: Reconcile,
		Args:      []any{ReconcileInput{WorkspaceID: workspaceID, LinearMaxAttempts: s.LinearMaxAttempts}},
		TaskQueue: s.TaskQueue, WorkflowExecutionTimeout: 2 * time.Hour}
	return spec, action
}

// EnsureReconcileSchedule creates the workspace's reconciliation schedule, or updates an existing one to the
// interval (0: the Starter's ReconcileEvery), task queue and settings of s. It is idempotent, so connect paths and
// start-up can all call it.
func (s Starter) EnsureReconcileSchedule(ctx context.Context, workspaceID string, every time.Duration) error {
	spec, action := s.reconcileSchedule(workspaceID, every)
	id := ReconcileScheduleID(workspaceID)
	c := s.Client
	_, err := c.ScheduleClient().Create(ctx, client.ScheduleOptions{ID: id, Spec: spec, Action: action,
		Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_SKIP, CatchupWindow: time.Minute,
		Note: "linsync reconciliation of workspace " + workspaceID})
	if err == nil {
		return nil
	}
	if !errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
		return fmt.Errorf("create reconcile schedule %s: %w", id, err)
	}
	err = c.ScheduleClient().GetHandle(ctx, id).Update(ctx, client.ScheduleUpdateOptions{
		DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
			s := in.Description.Schedule
			s.Spec, s.Action = &spec, action
			s.Policy.Overlap = enumspb.SCHEDULE_OVERLAP_POLICY_SKIP
			return &client.ScheduleUpdate{Schedule: &s}, nil
		},
	})
	if err != nil {
		return fmt.Errorf("update reconcile schedule %s: %w", id, err)
	}
	return nil
}

// DeleteReconcileSchedule removes the workspace's reconciliation schedule; one that does not exist is fine.
func DeleteReconcileSchedule(ctx context.Context, c client.Client, workspaceID string) error {
	id := ReconcileScheduleID(workspaceID)
	err := c.ScheduleClient().GetHandle(ctx, id).Delete(ctx)
	var nf *serviceerror.NotFound
	if err != nil && !errors.As(err, &nf) {
		return fmt.Errorf("delete reconcile schedule %s: %w", id, err)
	}
	return nil
}

// TriggerReconcile starts a run of the workspace's reconciliation now (skipped if one is running).
func TriggerReconcile(ctx context.Context, c client.Client, workspaceID string) error {
	id := ReconcileScheduleID(workspaceID)
	if err := c.ScheduleClient().GetHandle(ctx, id).Trigger(ctx, client.ScheduleTriggerOptions{}); err != nil {
		return fmt.Errorf("trigger reconcile schedule %s: %w", id, err)
	}
	return nil
}
