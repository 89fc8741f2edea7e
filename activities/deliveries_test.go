package activities_test

import (
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/activities"
	"github.com/linsync/linsync/linsynctest"
)

// TestIngestWriteRefusedForItsDataFailsTheRun: the ingestion activities retry until Postgres takes their write, but
// a write Postgres refuses for its data would be refused forever; it must fail the run (a dead letter an operator
// sees) instead of retrying silently. A write that merely cannot reach Postgres stays retryable.
func TestIngestWriteRefusedForItsDataFailsTheRun(t *testing.T) {
	t.Parallel()
	db := linsynctest.DB(t)
	ws, err := db.CreateWorkspace(t.Context(), "acme", "Acme")
	require.NoError(t, err)
	a := &activities.Deliveries{DB: db}
	d := linsync.Delivery{DeliveryID: uuid.NewString(), WorkspaceID: ws.ID, EventType: "Issue", Action: "create",
		Outcome: "no-such-outcome", ReceivedAt: time.Now()}
	_, err = a.RecordDelivery(t.Context(), d)
	var app *temporal.ApplicationError
	require.True(t, errors.As(err, &app), "%v", err)
	require.True(t, app.NonRetryable())
	require.Equal(t, activities.ErrTypeStoreRejected, app.Type())

	d.Outcome = linsync.OutcomeProcessed
	inserted, err := a.RecordDelivery(t.Context(), d)
	require.NoError(t, err)
	require.True(t, inserted)
}
