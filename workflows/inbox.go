package workflows

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/linsync/linsync"
)

// DeliveryItem is the inbox item of a verified Linear delivery whose signed body hashes to contentHash.
func DeliveryItem(in LinearDeliveryInput, contentHash []byte, keepUntil time.Time) (linsync.InboxItem, error) {
	input, err := json.Marshal(in)
	if err != nil {
		return linsync.InboxItem{}, fmt.Errorf("encode delivery %s: %w", in.DeliveryID, err)
	}
	return linsync.InboxItem{WorkspaceID: in.WorkspaceID, Kind: linsync.InboxDelivery, Key: in.DeliveryID,
		ContentHash: contentHash, WorkflowID: LinearDeliveryWorkflowID(in.WorkspaceID, in.DeliveryID), Input: input,
		ReceivedAt: in.ReceivedAt, KeepUntil: keepUntil}, nil
}

// EventItem is the inbox item of an accepted event, with the settings the Starter puts into its input.
func (s Starter) EventItem(workspaceID, key string, ev linsync.Event, received, keepUntil time.Time) (linsync.InboxItem, error) {
	input, err := json.Marshal(s.EventInput(workspaceID, key, ev, received))
	if err != nil {
		return linsync.InboxItem{}, fmt.Errorf("encode event %s: %w", key, err)
	}
	return linsync.InboxItem{WorkspaceID: workspaceID, Kind: linsync.InboxEvent, Key: key,
		WorkflowID: EventWorkflowID(workspaceID, key), Input: input, ReceivedAt: received, KeepUntil: keepUntil}, nil
}

// EventInput is FileEvent's input for an accepted event, with the settings of the Starter.
func (s Starter) EventInput(workspaceID, key string, ev linsync.Event, received time.Time) EventInput {
	return EventInput{WorkspaceID: workspaceID, Key: key, Event: ev, ReceivedAt: received,
		LinearMaxAttempts: s.LinearMaxAttempts}
}

// questionHandoff is a question change waiting in the inbox: the signal to send and the input to start the
// question's workflow with when it is not running.
type questionHandoff struct {
	Start  QuestionSyncInput   `json:"start"`
	Signal QuestionSyncRequest `json:"signal"`
}

// QuestionItem is the inbox item that hands a stored question change to the question's workflow.
func (s Starter) QuestionItem(workspaceID, questionID, reason string, received, keepUntil time.Time) (linsync.InboxItem, error) {
	input, err := json.Marshal(questionHandoff{Signal: QuestionSyncRequest{Reason: reason},
		Start: QuestionSyncInput{WorkspaceID: workspaceID, QuestionID: questionID, LinearMaxAttempts: s.LinearMaxAttempts}})
	if err != nil {
		return linsync.InboxItem{}, fmt.Errorf("encode question %s: %w", questionID, err)
	}
	return linsync.InboxItem{WorkspaceID: workspaceID, Kind: linsync.InboxQuestion, Key: questionID,
		WorkflowID: QuestionWorkflowID(workspaceID, questionID), Input: input, ReceivedAt: received,
		KeepUntil: keepUntil}, nil
}

// ErrTypeBadInboxItem is StartInbox's error for an item it cannot start (an unknown kind, an input that does not
// decode): no retry mends it.
const ErrTypeBadInboxItem = "BadInboxItem"

// StartInbox hands an inbox item to its workflow, under the item's workflow ID: a delivery or an event starts its
// workflow once (a start that finds the ID taken reports started false and no error: the work is Temporal's
// already), a question change signals its question's workflow, starting it when it is not running. The start
// carries the trace context of the request that brought the item, so the workflow's trace continues it.
func (s Starter) StartInbox(ctx context.Context, it linsync.InboxItem) (started bool, err error) {
	ctx = propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{"traceparent": it.TraceContext})
	bad := func(err error) (bool, error) {
		return false, temporal.NewNonRetryableApplicationError(fmt.Sprintf("inbox item %d (%s %s) cannot be started",
			it.ID, it.Kind, it.Key), ErrTypeBadInboxItem, err)
	}
	switch it.Kind {
	case linsync.InboxDelivery:
		var in LinearDeliveryInput
		if err := json.Unmarshal(it.Input, &in); err != nil {
			return bad(err)
		}
		_, err = s.Client.ExecuteWorkflow(ctx, StartOnce(it.WorkflowID, s.TaskQueue), LinearDelivery, in)
	case linsync.InboxEvent:
		var in EventInput
		if err := json.Unmarshal(it.Input, &in); err != nil {
			return bad(err)
		}
		_, err = s.Client.ExecuteWorkflow(ctx, StartOnce(it.WorkflowID, s.TaskQueue), FileEvent, in)
	case linsync.InboxQuestion:
		var h questionHandoff
		if err := json.Unmarshal(it.Input, &h); err != nil {
			return bad(err)
		}
		_, err = s.Client.SignalWithStartWorkflow(ctx, it.WorkflowID, QuestionSyncSignal, h.Signal,
			client.StartWorkflowOptions{TaskQueue: s.TaskQueue}, QuestionSync, h.Start)
	default:
		return bad(fmt.Errorf("unknown kind %q", it.Kind))
	}
	switch {
	case temporal.IsWorkflowExecutionAlreadyStartedError(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("start %s: %w", it.WorkflowID, err)
	}
	return true, nil
}
