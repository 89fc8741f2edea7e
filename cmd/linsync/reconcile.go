package main

import (
	"context"

	"github.com/linsync/linsync/workflows"
)

// ensureReconcileSchedules makes sure every connected workspace has its reconciliation schedule, at its interval.
// Connecting creates the schedule and disconnecting deletes it; this catches what those could not (Temporal was
// unreachable at the time, or the workspace connected before reconciliation existed). Failures are logged, not
// fatal: the next start tries again.
func ensureReconcileSchedules(ctx context.Context, d *deps, start workflows.Starter) {
	ids, err := d.db.ConnectedWorkspaces(ctx)
	if err != nil {
		d.log.Warn("list workspaces to reconcile failed", "err", err)
		return
	}
	ensured := 0
	for _, id := range ids {
		every, err := d.db.ReconcileInterval(ctx, id)
		if err == nil {
			err = start.EnsureReconcileSchedule(ctx, id, every)
		}
		if err != nil {
			d.log.Warn("ensure reconcile schedule failed", "workspace_id", id, "err", err)
			continue
		}
		ensured++
	}
	d.log.Info("reconcile schedules ensured", "workspaces", ensured)
}
