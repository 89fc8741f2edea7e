package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/linsync/linsync"
)

// RecordDelivery stores a handled delivery once per workspace and delivery id. A second call for the same delivery
// changes nothing and reports false, unless the delivery had failed: a replay that ran it again records its new
// outcome.
func (db *DB) RecordDelivery(ctx context.Context, d linsync.Delivery) (bool, error) {
	tag, err := db.pool.Exec(ctx, `
		INSERT INTO webhook_deliveries (delivery_id, workspace_id, organization_id, event_type, action, entity_id,
			webhook_id, webhook_timestamp, workflow_id, run_id, outcome, detail, received_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
		ON CONFLICT (workspace_id, delivery_id) DO UPDATE SET
			outcome = EXCLUDED.outcome, detail = EXCLUDED.detail, run_id = EXCLUDED.run_id,
			workflow_id = EXCLUDED.workflow_id, processed_at = now()
		WHERE webhook_deliveries.outcome = 'failed'`,
		d.DeliveryID, d.WorkspaceID, d.OrganizationID, d.EventType, d.Action, d.EntityID, d.WebhookID,
		d.WebhookTimestamp, d.WorkflowID, d.RunID, d.Outcome, d.Detail, d.ReceivedAt)
	if err != nil {
		return false, fmt.Errorf("record delivery %s: %w", d.DeliveryID, err)
	}
	return tag.RowsAffected() == 1, nil
}

const deliveryColumns = `delivery_id::text, workspace_id::text, organization_id, event_type, action, entity_id, webhook_id,
	webhook_timestamp, workflow_id, run_id, outcome, detail, received_at, processed_at`

func scanDelivery(r pgx.CollectableRow) (linsync.Delivery, error) {
	var d linsync.Delivery
	err := r.Scan(&d.DeliveryID, &d.WorkspaceID, &d.OrganizationID, &d.EventType, &d.Action, &d.EntityID, &d.WebhookID,
		&d.WebhookTimestamp, &d.WorkflowID, &d.RunID, &d.Outcome, &d.Detail, &d.ReceivedAt, &d.ProcessedAt)
	return d, err
}

// FindDelivery returns one recorded delivery of a workspace.
func (db *DB) FindDelivery(ctx context.Context, workspaceID, deliveryID string) (*linsync.Delivery, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+deliveryColumns+` FROM webhook_deliveries
		WHERE workspace_id = $1 AND delivery_id::text = $2`, workspaceID, deliveryID)
	if err != nil {
		return nil, fmt.Errorf("query delivery %s: %w", deliveryID, err)
	}
	d, err := pgx.CollectExactlyOneRow(rows, scanDelivery)
	if err != nil {
		return nil, notFound(err, "delivery")
	}
	return &d, nil
}

// ListDeliveries returns a workspace's most recent deliveries, newest first.
func (db *DB) ListDeliveries(ctx context.Context, workspaceID string, limit int) ([]linsync.Delivery, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+deliveryColumns+` FROM webhook_deliveries
		WHERE workspace_id = $1 ORDER BY received_at DESC LIMIT $2`, workspaceID, limit)
	if err != nil {
		return nil, fmt.Errorf("list deliveries of workspace %s: %w", workspaceID, err)
	}
	ds, err := pgx.CollectRows(rows, scanDelivery)
	if err != nil {
		return nil, fmt.Errorf("scan deliveries: %w", err)
	}
	return ds, nil
}
