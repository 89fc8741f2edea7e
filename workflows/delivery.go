// Package workflows orchestrates linsync's work as Temporal workflows. Workflows here only decide; every side effect
// is an activity (package activities), referenced through nil struct pointers for their names and types.
package workflows

import (
	"encoding/json"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/activities"
)

// LinearDeliveryWorkflowID is the workflow ID of a Linear webhook delivery to a workspace: a redelivery of the same
// delivery finds the ID taken, and a delivery id means nothing outside its workspace, so one tenant cannot take
// another's.
func LinearDeliveryWorkflowID(workspaceID, deliveryID string) string {
	return "linear-delivery:" + workspaceID + ":" + deliveryID
}

// LinearDeliveryInput is a verified Linear webhook delivery. Ingress has decoded the envelope; handlers decode the
// entity again from Body inside their activities, so the workflow keeps Linear's exact bytes for replay.
type LinearDeliveryInput struct {
	DeliveryID       string          `json:"delivery_id"`
	WorkspaceID      string          `json:"workspace_id"`
	OrganizationID   string          `json:"organization_id"`
	WebhookID        string          `json:"webhook_id"`
	EventType        string          `json:"event_type"`
	Action           string          `json:"action"`
	EntityID         string          `json:"entity_id"`
	KnownType        bool            `json:"known_type"`
	WebhookTimestamp time.Time       `json:"webhook_timestamp"`
	ReceivedAt       time.Time       `json:"received_at"`
	Body             json.RawMessage `json:"body"`
	// UnclaimedTeam is the delivery's Linear team when workspaces of its organization claim teams and none claims
	// this one: it is recorded as unclaimed and handled by nothing.
	UnclaimedTeam string `json:"unclaimed_team,omitempty"`
	// ContentHash is the hex SHA-256 of Body, the key of replay protection by content.
	ContentHash string `json:"content_hash,omitempty"`
	// ClaimContent is set on a delivery started directly, without the inbox (Postgres was unreachable when it
	// came): the run first records its content until KeepUntil, and does nothing but record itself as a duplicate
	// when another delivery brought the same body first. A delivery that came through the inbox owns its content
	// already.
	ClaimContent bool      `json:"claim_content,omitempty"`
	KeepUntil    time.Time `json:"keep_until,omitempty"`
}

// notificationsChange is the GetVersion change id of the notification step.
const notificationsChange = "notifications"

// DeliveryHandler applies one kind of Linear event. It returns the outcome to record (linsync.Outcome*) and a
// short detail; an error fails the delivery.
type DeliveryHandler func(ctx workflow.Context, in LinearDeliveryInput) (outcome, detail string, err error)

// deliveryRoutes is where every Linear event goes, the one table of linsync's webhook handling: "Type/action", or
// "Type" for every action of the type, to its handler; the more specific key wins. An event without a row is
// recorded and otherwise ignored (notification rules see every delivery after its handler, notifications.go). A new
// handler is a new row.
func deliveryRoutes() map[string]DeliveryHandler {
	return map[string]DeliveryHandler{
		// Question sync (questions.go): Linear's changes to linked issues and their comments.
		"Issue":          questionIssueDelivery,
		"Comment/create": questionCommentDelivery,
		"Comment/update": questionCommentDelivery,
		"Comment/remove": questionCommentDelivery,
		// Access (access.go): Linear's admin uninstalled linsync's OAuth application; a member left.
		"OAuthApp/revoked": handleOAuthAppRevoked,
		"User/update":      handleUserChanged,
		"User/remove":      handleUserChanged,
	}
}

// route returns the handler routes name for a delivery, or nil when nothing in linsync acts on it.
func route(routes map[string]DeliveryHandler, eventType, action string) DeliveryHandler {
	if h, ok := routes[eventType+"/"+action]; ok {
		return h
	}
	return routes[eventType]
}

// LinearDelivery handles one Linear webhook delivery: it routes the event to its handler (deliveryRoutes) and
// records the delivery.
func LinearDelivery(ctx workflow.Context, in LinearDeliveryInput) error {
	return deliver(ctx, in, deliveryRoutes())
}

// deliver is LinearDelivery with the routing table given, so a test can route to handlers of its own.
func deliver(ctx workflow.Context, in LinearDeliveryInput, routes map[string]DeliveryHandler) error {
	var d *activities.Deliveries
	outcome, detail := linsync.OutcomeProcessed, ""
	owner := in.DeliveryID
	if in.ClaimContent {
		claim := activities.ContentClaim{WorkspaceID: in.WorkspaceID, DeliveryID: in.DeliveryID, ContentHash: in.ContentHash,
			WorkflowID: workflow.GetInfo(ctx).WorkflowExecution.ID, KeepUntil: in.KeepUntil}
		if err := workflow.ExecuteActivity(ingestContext(ctx), d.ClaimContent, claim).Get(ctx, &owner); err != nil {
			return fmt.Errorf("claim content of delivery %s: %w", in.DeliveryID, err)
		}
	}
	var handlerErr error
	switch h := route(routes, in.EventType, in.Action); {
	case owner != in.DeliveryID:
		outcome, detail = linsync.OutcomeDuplicate, "delivery "+owner+" brought the same signed body first"
	case in.UnclaimedTeam != "":
		outcome, detail = linsync.OutcomeUnclaimed, "team "+in.UnclaimedTeam+" is claimed by no workspace of organization "+in.OrganizationID
	case !in.KnownType:
		// Unknown types are recorded, not failed: Linear adds event types over time.
		outcome, detail = linsync.OutcomeUnknownType, "event type "+in.EventType+" is not modelled"
	case h != nil:
		outcome, detail, handlerErr = h(ctx, in)
		if handlerErr != nil {
			outcome, detail = linsync.OutcomeFailed, handlerErr.Error()
		}
	}

	info := workflow.GetInfo(ctx)
	ts := in.WebhookTimestamp
	rec := linsync.Delivery{
		DeliveryID: in.DeliveryID, WorkspaceID: in.WorkspaceID, OrganizationID: in.OrganizationID,
		EventType: in.EventType, Action: in.Action, EntityID: in.EntityID, WebhookID: in.WebhookID,
		WorkflowID: info.WorkflowExecution.ID, RunID: info.WorkflowExecution.RunID,
		Outcome: outcome, Detail: detail, ReceivedAt: in.ReceivedAt,
	}
	if !ts.IsZero() {
		rec.WebhookTimestamp = &ts
	}
	// Notification rules are evaluated while the delivery is recorded (one round trip less per delivery); what they
	// matched is sent once the record is in. They came after the first recorded histories of LinearDelivery: runs
	// from before replay without them; runs of version 1 evaluated and sent in activities, later ones in local
	// activities (notifications.go).
	var evaluation workflow.Future
	notifyVersion := workflow.DefaultVersion
	if handlerErr == nil && notifiable(outcome) {
		if notifyVersion = workflow.GetVersion(ctx, notificationsChange, workflow.DefaultVersion, notifyLocal); notifyVersion >= 1 {
			evaluation = evaluateNotifications(ctx, in, notifyVersion >= notifyLocal)
		}
	}
	var inserted bool
	if err := workflow.ExecuteActivity(ingestContext(ctx), d.RecordDelivery, rec).Get(ctx, &inserted); err != nil {
		return fmt.Errorf("record delivery %s: %w", in.DeliveryID, err)
	}
	if handlerErr != nil {
		// The run ends Failed so it shows in the Temporal UI; the recorded row says why.
		return fmt.Errorf("handle %s/%s delivery %s: %w", in.EventType, in.Action, in.DeliveryID, handlerErr)
	}
	if evaluation != nil {
		if err := notifyDelivery(ctx, in, evaluation, notifyVersion >= notifyLocal); err != nil {
			return fmt.Errorf("notify for delivery %s: %w", in.DeliveryID, err)
		}
	}
	return nil
}

// storeContext is the activity context for the work of a run in linsync's own database: quick, retried with
// Temporal's backoff, bounded so that a database lost for good fails the run, which then becomes a dead letter
// (written in ingestContext, so the failure itself is never lost).
func storeContext(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout:    10 * time.Second,
		ScheduleToCloseTimeout: 10 * time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    time.Minute,
			MaximumAttempts:    10,
		},
	})
}

// ingestActivityOptions are those of the activities that record what linsync acknowledged (the delivery's content
// claim and record, a dead letter): after a 200, nothing may be dropped, so they retry until Postgres takes them,
// however long it is away, with a capped backoff and no attempt or time limit. Their retries are counted in
// linsync_ingest_retries_total.
func ingestActivityOptions() workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    30 * time.Second,
			MaximumAttempts:    0, // unlimited
		},
	}
}

func ingestContext(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, ingestActivityOptions())
}
