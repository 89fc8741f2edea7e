package linsynctest

import (
	"context"
	"fmt"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// LargestPayload returns the size in bytes of the largest payload (a workflow's or activity's input or result, a
// signal, a continue-as-new input, a failure's details) in the histories of every run the visibility query finds
// (e.g. `WorkflowId = 'host-agg:…'`, every run of an aggregator across continue-as-new), up to maxRuns of them (0:
// all), and how many runs it read. Temporal warns about payloads over 512 KB and refuses them over 2 MB.
func LargestPayload(ctx context.Context, c client.Client, query string, maxRuns int) (largest, runs int, err error) {
	var token []byte
	for {
		page, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query, NextPageToken: token})
		if err != nil {
			return 0, 0, fmt.Errorf("list workflows %q: %w", query, err)
		}
		for _, e := range page.GetExecutions() {
			if maxRuns > 0 && runs >= maxRuns {
				return largest, runs, nil
			}
			runs++
			it := c.GetWorkflowHistory(ctx, e.GetExecution().GetWorkflowId(), e.GetExecution().GetRunId(), false, 0)
			for it.HasNext() {
				ev, err := it.Next()
				if err != nil {
					return 0, 0, fmt.Errorf("read history of %s: %w", e.GetExecution().GetWorkflowId(), err)
				}
				largest = max(largest, largestIn(ev.ProtoReflect()))
			}
		}
		if token = page.GetNextPageToken(); len(token) == 0 {
			return largest, runs, nil
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
