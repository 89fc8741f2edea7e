package linsynctest

import (
	"context"
	"fmt"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Histories is what the histories of a set of workflow runs hold.
type Histories struct {
	// Runs is how many runs were read; Signals how many signals they received.
	Runs, Signals int
	// LargestPayload is the size in bytes of the largest payload: a workflow's or activity's input or result, a
	// signal, a continue-as-new input, a failure's details. Temporal warns over 512 KB and refuses over 2 MB.
	LargestPayload int
}

// ReadHistories reads the histories of every run the visibility query finds (e.g. `WorkflowId = 'host-agg:…'`,
// every run of an aggregator across continue-as-new), up to maxRuns of them (0: all).
func ReadHistories(ctx context.Context, c client.Client, query string, maxRuns int) (Histories, error) {
	var h Histories
	var token []byte
	for {
		page, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query, NextPageToken: token})
		if err != nil {
			return h, fmt.Errorf("list workflows %q: %w", query, err)
		}
		for _, e := range page.GetExecutions() {
			if maxRuns > 0 && h.Runs >= maxRuns {
				return h, nil
			}
			h.Runs++
			it := c.GetWorkflowHistory(ctx, e.GetExecution().GetWorkflowId(), e.GetExecution().GetRunId(), false, 0)
			for it.HasNext() {
				ev, err := it.Next()
				if err != nil {
					return h, fmt.Errorf("read history of %s: %w", e.GetExecution().GetWorkflowId(), err)
				}
				if ev.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED {
					h.Signals++
				}
				h.LargestPayload = max(h.LargestPayload, largestIn(ev.ProtoReflect()))
			}
		}
		if token = page.GetNextPageToken(); len(token) == 0 {
			return h, nil
		}
	}
}

// largestIn walks a message for Payload messages and returns the largest one's size.
func largestIn(m protoreflect.Message) int {
	if p, ok := m.Interface().(*commonpb.Payload); ok {
		return proto.Size(p)
	}
	largest := 0
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind && fd.Kind() != protoreflect.GroupKind {
			return true
		}
		switch {
		case fd.IsList():
			for i := range v.List().Len() {
				largest = max(largest, largestIn(v.List().Get(i).Message()))
			}
		case fd.IsMap():
			if fd.MapValue().Kind() == protoreflect.MessageKind {
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
					largest = max(largest, largestIn(mv.Message()))
					return true
				})
			}
		default:
			largest = max(largest, largestIn(v.Message()))
		}
		return true
	})
	return largest
}
