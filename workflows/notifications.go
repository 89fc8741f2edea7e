package workflows

import (
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/activities"
)

// NotificationDigestSignal carries a delivery id into a rule's open digest window.
const NotificationDigestSignal = "notification-digest-match"

// SendNotificationsWorkflowID is the workflow ID of a delivery's notifications: one per delivery, so a replayed
// delivery finds it taken (or completed) and sends nothing twice.
func SendNotificationsWorkflowID(workspaceID, deliveryID string) string {
	return "notify:" + workspaceID + ":" + deliveryID
}

// SendNotificationsInput is a delivery's messages to send.
type SendNotificationsInput struct {
	WorkspaceID string                    `json:"workspace_id"`
	DeliveryID  string                    `json:"delivery_id"`
	Sends       []activities.NotifyPair   `json:"sends"`
	Delivery    activities.NotifyDelivery `json:"delivery"`
}

// notificationContext is the activity context of a message: a rate-limited target is waited out (Retry-After) and
// a failing one retried with jitter for up to an hour, then given up.
func notificationContext(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout:    30 * time.Second,
		ScheduleToCloseTimeout: time.Hour,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        5 * time.Minute,
			MaximumAttempts:        10,
			NonRetryableErrorTypes: []string{activities.ErrTypeNotificationRefused},
		},
	})
}

// SendNotifications sends a delivery's messages, every one at once; it fails (and so becomes a dead letter, whose
// replay sends only what was not sent) when any message fails for good.
func SendNotifications(ctx workflow.Context, in SendNotificationsInput) error {
	var a *activities.Notifications
	futures := make([]workflow.Future, len(in.Sends))
	for i, p := range in.Sends {
		futures[i] = workflow.ExecuteActivity(notificationContext(ctx), a.SendNotification, activities.SendNotification{
			WorkspaceID: in.WorkspaceID, DeliveryID: in.DeliveryID, RuleID: p.RuleID, TargetID: p.TargetID, Body: in.Delivery.Body})
	}
	var errs []error
	for i, f := range futures {
		if err := f.Get(ctx, nil); err != nil {
			errs = append(errs, fmt.Errorf("send rule %s to target %s: %w", in.Sends[i].RuleID, in.Sends[i].TargetID, err))
		}
	}
	if len(errs) > 0 {
		return errs[0] // the first keeps its application error, so the dead letter shows its class
	}
	return nil
}

// NotificationDigest is a rule's digest window: it collects the deliveries the rule matched (each a signal), and
// once the window has passed sends them as one message. A match after the window ends starts the next window.
func NotificationDigest(ctx workflow.Context, in activities.DigestStart) error {
	ch := workflow.GetSignalChannel(ctx, NotificationDigestSignal)
	seen := map[string]bool{}
	var ids []string
	add := func(id string) {
		if id != "" && !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	window := in.Window
	if window <= 0 {
		window = time.Minute
	}
	timer := workflow.NewTimer(ctx, window)
	open := true
	for open {
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(ch, func(c workflow.ReceiveChannel, _ bool) {
			var id string
			c.Receive(ctx, &id)
			add(id)
		})
		sel.AddFuture(timer, func(workflow.Future) { open = false })
		sel.Select(ctx)
	}
	// Signals that came with the timer belong to this window: the run may not end with any unread.
	for {
		var id string
		if !ch.ReceiveAsync(&id) {
			break
		}
		add(id)
	}
	if len(ids) == 0 {
		return nil // a replayed window: SendNotificationDigest takes every match the rule kept
	}
	var a *activities.Notifications
	return workflow.ExecuteActivity(notificationContext(ctx), a.SendNotificationDigest,
		activities.SendDigest{WorkspaceID: in.WorkspaceID, RuleID: in.RuleID, DeliveryIDs: ids}).Get(ctx, nil)
}

// notifyDelivery evaluates the workspace's notification rules for a delivery and starts the sending of what they
// matched; it returns a note for the delivery's record. A notification never fails the delivery: sending runs as a
// workflow of its own (a slow or rate-limiting target must not hold the delivery), whose failure is a dead letter.
func notifyDelivery(ctx workflow.Context, in LinearDeliveryInput) string {
	var a *activities.Notifications
	nd := activities.NotifyDelivery{WorkspaceID: in.WorkspaceID, DeliveryID: in.DeliveryID, Body: in.Body}
	var plan activities.NotifyPlan
	if err := workflow.ExecuteActivity(storeContext(ctx), a.EvaluateNotifications, nd).Get(ctx, &plan); err != nil {
		return "notifications not evaluated: " + err.Error()
	}
	if len(plan.Sends) == 0 {
		return ""
	}
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:            SendNotificationsWorkflowID(in.WorkspaceID, in.DeliveryID),
		ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_ABANDON,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY,
	})
	child := workflow.ExecuteChildWorkflow(cctx, SendNotifications, SendNotificationsInput{WorkspaceID: in.WorkspaceID,
		DeliveryID: in.DeliveryID, Sends: plan.Sends, Delivery: nd})
	if err := child.GetChildWorkflowExecution().Get(ctx, nil); err != nil {
		var started *temporal.ChildWorkflowExecutionAlreadyStartedError
		if errors.As(err, &started) {
			return "" // a replay of the delivery: its notifications were started before
		}
		return "notifications not started: " + err.Error()
	}
	return fmt.Sprintf("%d notification(s) started", len(plan.Sends))
}

// notifiable reports whether a delivery with this outcome is one its rules should see.
func notifiable(outcome string) bool {
	return outcome == linsync.OutcomeProcessed || outcome == linsync.OutcomeIgnored
}
