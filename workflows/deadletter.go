package workflows

import (
	"encoding/json"
	"errors"
	"time"

	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/activities"
)

// DeadLetterInterceptor turns every workflow that fails for good into a dead letter: after the workflow returns an
// error, it records the run's input, error class, attempts and Temporal UI link in Postgres, then lets the run end
// Failed so it still shows in the Temporal Web UI. Continue-as-new and cancellation are not failures.
type DeadLetterInterceptor struct {
	interceptor.WorkerInterceptorBase
}

// InterceptWorkflow wraps each workflow execution.
func (*DeadLetterInterceptor) InterceptWorkflow(ctx workflow.Context, next interceptor.WorkflowInboundInterceptor) interceptor.WorkflowInboundInterceptor {
	i := &deadLetterInbound{}
	i.Next = next
	return i
}

type deadLetterInbound struct {
	interceptor.WorkflowInboundInterceptorBase
}

// noDeadLetter lists workflows whose failures are not dead letters of their own (replaying them again would loop).
var noDeadLetter = map[string]bool{TypeReplayDeadLetters: true}

func (i *deadLetterInbound) ExecuteWorkflow(ctx workflow.Context, in *interceptor.ExecuteWorkflowInput) (any, error) {
	res, err := i.Next.ExecuteWorkflow(ctx, in)
	info := workflow.GetInfo(ctx)
	if err == nil || workflow.IsContinueAsNewError(err) || temporal.IsCanceledError(err) || noDeadLetter[info.WorkflowType.Name] {
		return res, err
	}
	class, attempts := FailureClass(err)
	msg := err.Error()
	if len(msg) > 4000 {
		msg = msg[:4000]
	}
	// JSON encoding of the workflow's own arguments is deterministic; workflowcheck cannot see that.
	input, _ := json.Marshal(in.Args) //workflowcheck:ignore
	dl := linsync.DeadLetter{
		WorkspaceID: workspaceOfArgs(in.Args), Kind: info.WorkflowType.Name, WorkflowID: info.WorkflowExecution.ID,
		RunID: info.WorkflowExecution.RunID, TaskQueue: info.TaskQueueName, Input: input,
		ErrorClass: class, ErrorMessage: msg, Attempts: attempts,
	}
	// Recorded even when the run was cancelled mid-way through its failure handling, and retried until Postgres
	// takes it: a failure is never silently lost.
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	var d *activities.DeadLetters
	if rerr := workflow.ExecuteActivity(ingestContext(dctx), d.RecordDeadLetter, dl).Get(dctx, nil); rerr != nil {
		workflow.GetLogger(ctx).Error("record dead letter failed", "workflow_id", dl.WorkflowID, "err", rerr)
	}
	return res, err
}

// FailureClass names why a run failed, for dead letters and metrics: the application error type (e.g.
// LinearRateLimited, LinearInvalidRequest), Timeout, or WorkflowError; and how many attempts the failing activity
// made, when it said.
func FailureClass(err error) (class string, attempts int) {
	attempts = 1
	var app *temporal.ApplicationError
	var timeout *temporal.TimeoutError
	switch {
	case errors.As(err, &app):
		class = app.Type()
		var d activities.FailureDetails
		if app.HasDetails() && app.Details(&d) == nil && d.Attempt > 0 {
			attempts = int(d.Attempt)
		}
		if class == "" {
			class = "ApplicationError"
		}
	case errors.As(err, &timeout):
		class = "Timeout"
	default:
		class = "WorkflowError"
	}
	return class, attempts
}

// workspaceOfArgs finds the workspace a run worked for: every linsync workflow input carries workspace_id. JSON
// encoding of a struct is deterministic, which workflowcheck cannot see.
//
//workflowcheck:ignore
func workspaceOfArgs(args []any) string {
	if len(args) == 0 {
		return ""
	}
	b, err := json.Marshal(args[0])
	if err != nil {
		return ""
	}
	var probe struct {
		Snake string `json:"workspace_id"`
		Camel string `json:"WorkspaceID"`
	}
	_ = json.Unmarshal(b, &probe)
	if probe.Snake != "" {
		return probe.Snake
	}
	return probe.Camel
}

// ReplayInput selects dead letters to replay: explicit ids, or every open one matching the filter, paced at
// RatePerSecond so a bulk replay cannot stampede Linear.
type ReplayInput struct {
	WorkspaceID   string    `json:"workspace_id"`
	IDs           []string  `json:"ids,omitempty"`
	Kind          string    `json:"kind,omitempty"`
	ErrorClass    string    `json:"error_class,omitempty"`
	Since         time.Time `json:"since,omitempty"`
	Until         time.Time `json:"until,omitempty"`
	Max           int       `json:"max,omitempty"`
	RatePerSecond float64   `json:"rate_per_second,omitempty"`
}

// ReplayProgress is a bulk replay's state, served by the "progress" query and returned at the end.
type ReplayProgress struct {
	// Finished is set once every selected dead letter has been tried; Total is known from the start of the run.
	Finished bool                      `json:"finished"`
	Total    int                       `json:"total"`
	Done     int                       `json:"done"`
	Counts   map[string]int            `json:"counts"`
	Results  []activities.ReplayResult `json:"results"`
}

// ReplayWorkflowID is the ID of a replay request; requestID is chosen by the caller (a UUID).
func ReplayWorkflowID(workspaceID, requestID string) string {
	return "dlq-replay:" + workspaceID + ":" + requestID
}

// ReplayDeadLetters replays dead letters one at a time under a rate cap, reporting progress as it goes.
func ReplayDeadLetters(ctx workflow.Context, in ReplayInput) (ReplayProgress, error) {
	p := ReplayProgress{Counts: map[string]int{}}
	if err := workflow.SetQueryHandler(ctx, "progress", func() (ReplayProgress, error) { return p, nil }); err != nil {
		return p, err
	}
	var d *activities.DeadLetters
	ids := in.IDs
	if len(ids) == 0 {
		f := activityFilter(in)
		if err := workflow.ExecuteActivity(storeContext(ctx), d.ListDeadLetterIDs, f).Get(ctx, &ids); err != nil {
			return p, err
		}
	}
	p.Total = len(ids)
	rate := in.RatePerSecond
	if rate <= 0 {
		rate = 5
	}
	gap := time.Duration(float64(time.Second) / rate)
	for n, id := range ids {
		if n > 0 {
			if err := workflow.Sleep(ctx, gap); err != nil {
				return p, err
			}
		}
		var r activities.ReplayResult
		if err := workflow.ExecuteActivity(storeContext(ctx), d.ReplayDeadLetter, in.WorkspaceID, id).Get(ctx, &r); err != nil {
			r = activities.ReplayResult{ID: id, Outcome: "error: " + err.Error()}
			p.Counts["error"]++
		} else {
			p.Counts[r.Outcome]++
		}
		p.Results = append(p.Results, r)
		p.Done++
	}
	p.Finished = true
	return p, nil
}

func activityFilter(in ReplayInput) linsync.DeadLetterFilter {
	return linsync.DeadLetterFilter{WorkspaceID: in.WorkspaceID, Kind: in.Kind, ErrorClass: in.ErrorClass,
		Since: in.Since, Until: in.Until, Limit: in.Max}
}
