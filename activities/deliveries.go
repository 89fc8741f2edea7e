// Package activities does linsync's side effects for workflows: calls to Linear and writes to Postgres. Every
// activity is idempotent, so Temporal may retry it freely.
package activities

import (
	"context"
	"encoding/hex"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/postgres"
)

// Deliveries records Linear webhook deliveries.
type Deliveries struct {
	DB *postgres.DB
	// Metrics counts the retries of these ingestion-path activities; nil counts nothing.
	Metrics *Metrics
}

// RecordDelivery stores the delivery once; it reports whether this call inserted it.
func (a *Deliveries) RecordDelivery(ctx context.Context, d linsync.Delivery) (bool, error) {
	a.Metrics.ingestAttempt(ctx, "RecordDelivery")
	inserted, err := a.DB.RecordDelivery(ctx, d)
	return inserted, ingestError("record delivery "+d.DeliveryID, err)
}

// ErrTypeStoreRejected marks an ingestion write Postgres refused for its data (a constraint or a value it cannot
// hold): the ingestion activities retry until Postgres takes their write, but the same write would be refused
// forever, so it fails the run instead, which makes it a dead letter an operator sees rather than a silent stall.
const ErrTypeStoreRejected = "StoreRejected"

// ingestError is err, made non-retryable when Postgres refused the data itself.
func ingestError(what string, err error) error {
	if err != nil && postgres.IsRejected(err) {
		return temporal.NewNonRetryableApplicationError(what+": refused by the database", ErrTypeStoreRejected, err)
	}
	return err
}

// ContentClaim asks to record a delivery's signed content (see ClaimContent).
type ContentClaim struct {
	WorkspaceID string    `json:"workspace_id"`
	DeliveryID  string    `json:"delivery_id"`
	ContentHash string    `json:"content_hash"`
	WorkflowID  string    `json:"workflow_id"`
	KeepUntil   time.Time `json:"keep_until"`
}

// ErrTypeBadContentHash is ClaimContent's error for a content hash that is not hex SHA-256; no retry mends it.
const ErrTypeBadContentHash = "BadContentHash"

// ClaimContent records the content of a delivery that was started without the inbox and returns the id of the
// delivery that owns that content: this one, unless another delivery brought the same body first.
func (a *Deliveries) ClaimContent(ctx context.Context, c ContentClaim) (string, error) {
	a.Metrics.ingestAttempt(ctx, "ClaimContent")
	hash, err := hex.DecodeString(c.ContentHash)
	if err != nil || len(hash) != 32 {
		return "", temporal.NewNonRetryableApplicationError("content hash is not a hex SHA-256", ErrTypeBadContentHash, err)
	}
	owner, err := a.DB.ClaimDeliveryContent(ctx, c.WorkspaceID, c.DeliveryID, hash, c.WorkflowID, c.KeepUntil)
	return owner, ingestError("claim content of delivery "+c.DeliveryID, err)
}
