package workflows

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/propagation"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/linsync/linsync"
)

// DeliveryItem is the inbox item of a verified Linear delivery whose signed body hashes to contentHash. The body
// must be JSON (ingress has decoded it): it goes into the item's input as it came (encodeDeliveryInput).
func DeliveryItem(in LinearDeliveryInput, contentHash []byte, keepUntil time.Time) (linsync.InboxItem, error) {
	input, err := encodeDeliveryInput(in)
	if err != nil {
		return linsync.InboxItem{}, fmt.Errorf("encode delivery %s: %w", in.DeliveryID, err)
	}
	return linsync.InboxItem{WorkspaceID: in.WorkspaceID, Kind: linsync.InboxDelivery, Key: in.DeliveryID,
		ContentHash: contentHash, WorkflowID: LinearDeliveryWorkflowID(in.WorkspaceID, in.DeliveryID), Input: input,
		ReceivedAt: in.ReceivedAt, KeepUntil: keepUntil}, nil
}

// deliveryInputHead is a LinearDeliveryInput without its body: the outer Body hides the embedded one.
type deliveryInputHead struct {
	LinearDeliveryInput
	Body *struct{} `json:"body,omitempty"`
}

// encodeDeliveryInput encodes in as json.Marshal would, except that the body's bytes are copied as they are:
// json.Marshal checks and compacts a RawMessage, one more pass over every body on the acknowledgement's path, for a
// body that was decoded a moment before. Whitespace inside the body changes nothing for its readers.
func encodeDeliveryInput(in LinearDeliveryInput) ([]byte, error) {
	head, err := json.Marshal(deliveryInputHead{LinearDeliveryInput: in})
	if err != nil {
		return nil, err
	}
	body := in.Body
	if len(body) == 0 {
		body = json.RawMessage("null")
	}
	out := make([]byte, 0, len(head)+len(body)+len(`,"body":`))
	out = append(out, head[:len(head)-1]...)
	out = append(out, `,"body":`...)
	out = append(out, body...)
	return append(out, '}'), nil
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
	case linsync.InboxDelivery, linsync.InboxEvent:
		in, bErr := storedInput(it.Input)
		if bErr != nil {
			return bad(bErr)
		}
		// By name: the SDK checks a start by function against the function's parameter types, which a raw
		// payload is not.
		wfType := TypeLinearDelivery
		if it.Kind == linsync.InboxEvent {
			wfType = TypeFileEvent
		}
		_, err = s.Client.ExecuteWorkflow(ctx, StartOnce(it.WorkflowID, s.TaskQueue), wfType, in)
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

// storedInput is an inbox item's stored input as the workflow's argument: its JSON as it is, in a payload the
// workflow decodes as it would decode the input's own encoding (the payload codec still seals it on the way). An
// input that is not a JSON object is refused here, before any start.
func storedInput(input []byte) (converter.RawValue, error) {
	if trimmed := bytes.TrimSpace(input); len(trimmed) == 0 || trimmed[0] != '{' || !json.Valid(trimmed) {
		return converter.RawValue{}, errors.New("the stored input is not a JSON object")
	}
	return converter.NewRawValue(&commonpb.Payload{
		Metadata: map[string][]byte{converter.MetadataEncoding: []byte(converter.MetadataEncodingJSON)},
		Data:     input,
	}), nil
}
