// Package activities does linsync's side effects for workflows: calls to Linear and writes to Postgres. Every
// activity is idempotent, so Temporal may retry it freely.
package activities

import (
	"context"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/postgres"
)

// Deliveries records Linear webhook deliveries.
type Deliveries struct {
	DB *postgres.DB
}

// RecordDelivery stores the delivery once; it reports whether this call inserted it.
func (a *Deliveries) RecordDelivery(ctx context.Context, d linsync.Delivery) (bool, error) {
	return a.DB.RecordDelivery(ctx, d)
}
