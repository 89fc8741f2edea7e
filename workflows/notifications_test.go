package workflows

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/activities"
)

func TestDigestWorkflowID(t *testing.T) {
	require.Equal(t, "notification-digest:ws-1:r-1", activities.DigestWorkflowID("ws-1", "r-1"))
}

// TestDeliverySendsItsNotifications: what the rules matched is sent, every message at once, after the delivery is
// recorded; a message refused for good fails the run (a dead letter) once the others are sent.
func TestDeliverySendsItsNotifications(t *testing.T) {
	t.Parallel()
	var s testsuite.WorkflowTestSuite
	s.SetLogger(sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	env := s.NewTestWorkflowEnvironment()
	env.RegisterActivity(&activities.Deliveries{})
	env.RegisterActivity(&activities.Notifications{})
	var d *activities.Deliveries
	var n *activities.Notifications
	var rec linsync.Delivery
	env.OnActivity(d.RecordDelivery, mock.Anything, mock.Anything).Return(
		func(_ context.Context, got linsync.Delivery) (bool, error) { rec = got; return true, nil })
	env.OnActivity(n.EvaluateNotifications, mock.Anything, mock.Anything).Return(activities.NotifyPlan{
		Sends: []activities.NotifyPair{{RuleID: "r1", TargetID: "t1"}, {RuleID: "r1", TargetID: "t2"}}}, nil)
	var mu sync.Mutex
	var sent []string
	env.OnActivity(n.SendNotification, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.SendNotification) (activities.SendResult, error) {
			mu.Lock()
			defer mu.Unlock()
			sent = append(sent, in.TargetID)
			if in.TargetID == "t2" {
				return activities.SendResult{}, temporal.NewNonRetryableApplicationError("target answered 404", activities.ErrTypeNotificationRefused, nil)
			}
			return activities.SendResult{Outcome: activities.SendOutcomeSent}, nil
		})
	in := LinearDeliveryInput{DeliveryID: "d1", WorkspaceID: "ws", EventType: "Project", Action: "update", KnownType: true,
		Body: []byte(`{}`)}
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: LinearDeliveryWorkflowID(in.WorkspaceID, in.DeliveryID)})
	env.ExecuteWorkflow(LinearDelivery, in)
	err := env.GetWorkflowError()
	require.Error(t, err, "a message refused for good fails the run")
	require.ErrorContains(t, err, "target answered 404")
	require.Equal(t, linsync.OutcomeProcessed, rec.Outcome)
	require.ElementsMatch(t, []string{"t1", "t2"}, sent)
}

// TestNotificationDigestCollectsItsWindow: matches signalled within the window go out in one message, a repeated
// delivery once; a match that arrives while the message is sent opens the next window instead of being lost.
func TestNotificationDigestCollectsItsWindow(t *testing.T) {
	t.Parallel()
	var s testsuite.WorkflowTestSuite
	s.SetLogger(sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	env := s.NewTestWorkflowEnvironment()
	env.RegisterActivity(&activities.Notifications{})
	var n *activities.Notifications
	var calls []activities.SendDigest
	env.OnActivity(n.SendNotificationDigest, mock.Anything, mock.Anything).After(30 * time.Second).Return(
		func(_ context.Context, in activities.SendDigest) (activities.SendResult, error) {
			calls = append(calls, in)
			return activities.SendResult{Outcome: activities.SendOutcomeSent}, nil
		})
	for i, id := range []string{"d1", "d2", "d1", "d3"} {
		env.RegisterDelayedCallback(func() { env.SignalWorkflow(NotificationDigestSignal, id) }, time.Duration(i)*10*time.Second)
	}
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(NotificationDigestSignal, "d4") }, 75*time.Second)
	env.ExecuteWorkflow(NotificationDigest, activities.DigestStart{WorkspaceID: "ws", RuleID: "r", Window: time.Minute})
	require.NoError(t, env.GetWorkflowError())
	require.Len(t, calls, 2, "one message per window")
	require.Equal(t, []string{"d1", "d2", "d3"}, calls[0].DeliveryIDs, "a repeated match is listed once")
	require.Equal(t, []string{"d4"}, calls[1].DeliveryIDs, "the match that came during the send is not lost")
}
