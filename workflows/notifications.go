package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/activities"
)

// NotificationDigestSignal carries a delivery id into a rule's open digest window.
const NotificationDigestSignal = "notification-digest-match"

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

// notifyLocal is the version of the notifications change from which a delivery's rules are evaluated and its
// messages sent in local activities: a message is one short HTTP call, and as an activity task each cost the
// Temporal server a schedule, a start and a completion (three events, a task dispatch) where a local activity
// costs one marker; at 50 deliveries a second with three rules each, that was the difference between keeping up
// and falling behind by seconds on the dev server (make bench, bench notify). A message retried after a long
// Retry-After still waits on a durable timer: the SDK schedules retries longer than a workflow task's span as
// timers.
const notifyLocal = 2

// localNotificationContext is notificationContext for local activities.
func localNotificationContext(ctx workflow.Context) workflow.Context {
	o := workflow.GetActivityOptions(notificationContext(ctx))
	return workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: o.StartToCloseTimeout, ScheduleToCloseTimeout: o.ScheduleToCloseTimeout, RetryPolicy: o.RetryPolicy})
}

// localStoreContext is storeContext for local activities.
func localStoreContext(ctx workflow.Context) workflow.Context {
	o := workflow.GetActivityOptions(storeContext(ctx))
	return workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: o.StartToCloseTimeout, ScheduleToCloseTimeout: o.ScheduleToCloseTimeout, RetryPolicy: o.RetryPolicy})
}

// sendNotifications sends a delivery's messages, all at once, and returns the first failure for good once every
// message has been tried (its application error keeps its class for the dead letter).
func sendNotifications(ctx workflow.Context, nd activities.NotifyDelivery, sends []activities.NotifyPair, local bool) error {
	var a *activities.Notifications
	futures := make([]workflow.Future, len(sends))
	for i, p := range sends {
		in := activities.SendNotification{
			WorkspaceID: nd.WorkspaceID, DeliveryID: nd.DeliveryID, RuleID: p.RuleID, TargetID: p.TargetID, Body: nd.Body}
		if local {
			futures[i] = workflow.ExecuteLocalActivity(localNotificationContext(ctx), a.SendNotification, in)
		} else {
			futures[i] = workflow.ExecuteActivity(notificationContext(ctx), a.SendNotification, in)
		}
	}
	var first error
	for i, f := range futures {
		if err := f.Get(ctx, nil); err != nil && first == nil {
			first = fmt.Errorf("send rule %s to target %s: %w", sends[i].RuleID, sends[i].TargetID, err)
		}
	}
	return first
}

// digestWindowsPerRun is how many windows one run of a digest collects before it continues as new, keeping its
// history short when a rule matches without pause.
const digestWindowsPerRun = 20

// NotificationDigest is a rule's digest window: it collects the deliveries the rule matched (each a signal), and
// once the window has passed sends them as one message. Matches that arrive while the message is sent open the next
// window in the same run; a match after the run ends starts the next run (signal-with-start).
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
	drain := func() {
		for {
			var id string
			if !ch.ReceiveAsync(&id) {
				return
			}
			add(id)
		}
	}
	for _, id := range in.Pending {
		add(id)
	}
	window := in.Window
	if window <= 0 {
		window = time.Minute
	}
	var a *activities.Notifications
	for n := 0; ; n++ {
		if n == digestWindowsPerRun {
			drain()
			next := in
			next.Pending = ids
			return workflow.NewContinueAsNewError(ctx, NotificationDigest, next)
		}
		timer := workflow.NewTimer(ctx, window)
		for open := true; open; {
			sel := workflow.NewSelector(ctx)
			sel.AddReceive(ch, func(c workflow.ReceiveChannel, _ bool) {
				var id string
				c.Receive(ctx, &id)
				add(id)
			})
			sel.AddFuture(timer, func(workflow.Future) { open = false })
			sel.Select(ctx)
		}
		drain() // signals that came with the timer belong to this window
		if len(ids) > 0 {
			if err := workflow.ExecuteActivity(notificationContext(ctx), a.SendNotificationDigest,
				activities.SendDigest{WorkspaceID: in.WorkspaceID, RuleID: in.RuleID, DeliveryIDs: ids}).Get(ctx, nil); err != nil {
				return err
			}
		}
		// A run may not end with a signal unread: what came during the send opens the next window.
		ids, seen = nil, map[string]bool{}
		drain()
		if len(ids) == 0 {
			return nil
		}
	}
}

// evaluateNotifications starts the evaluation of the workspace's notification rules for a delivery.
func evaluateNotifications(ctx workflow.Context, in LinearDeliveryInput, local bool) workflow.Future {
	var a *activities.Notifications
	nd := activities.NotifyDelivery{WorkspaceID: in.WorkspaceID, DeliveryID: in.DeliveryID, Body: in.Body}
	if local {
		return workflow.ExecuteLocalActivity(localStoreContext(ctx), a.EvaluateNotifications, nd)
	}
	return workflow.ExecuteActivity(storeContext(ctx), a.EvaluateNotifications, nd)
}

// notifyDelivery sends what the evaluation of a recorded delivery matched, one SendNotification activity per (rule,
// target), in the delivery's own run: a child workflow per delivery cost the dev server about as much again as the
// delivery itself (make bench). A message that fails for good fails the run, which becomes a LinearDelivery dead
// letter; its replay sends only what was not sent (notification_sends).
func notifyDelivery(ctx workflow.Context, in LinearDeliveryInput, evaluation workflow.Future, local bool) error {
	var plan activities.NotifyPlan
	if err := evaluation.Get(ctx, &plan); err != nil {
		return fmt.Errorf("evaluate notification rules: %w", err)
	}
	if len(plan.Sends) == 0 {
		return nil
	}
	nd := activities.NotifyDelivery{WorkspaceID: in.WorkspaceID, DeliveryID: in.DeliveryID, Body: in.Body}
	return sendNotifications(ctx, nd, plan.Sends, local)
}

// notifiable reports whether a delivery with this outcome is one its rules should see.
func notifiable(outcome string) bool {
	return outcome == linsync.OutcomeProcessed || outcome == linsync.OutcomeIgnored
}
