package activities

import (
	"context"
	"encoding/json"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/postgres"
)

// DeadLetters records work that failed for good and replays it.
type DeadLetters struct {
	DB        *postgres.DB
	Temporal  client.Client
	Namespace string
	// UIURL is the Temporal Web UI's base URL, for the link kept with each dead letter.
	UIURL string
	// Resync asks a question's workflow to push again: how a QuestionPush dead letter is replayed.
	Resync func(ctx context.Context, workspaceID, questionID string) error
	// StartOnce gives the options that start a workflow ID again only after a failed run (workflows.StartOnce,
	// which activities cannot import); set by worker.NewActivities.
	StartOnce func(id, taskQueue string) client.StartWorkflowOptions
	// Metrics counts dead letters; nil counts nothing.
	Metrics *Metrics
}

// RecordDeadLetter stores a failed run, as the run describes itself (everything but the UI link, which is made
// here), and returns the dead letter's id.
func (a *DeadLetters) RecordDeadLetter(ctx context.Context, d linsync.DeadLetter) (string, error) {
	a.Metrics.ingestAttempt(ctx, "RecordDeadLetter")
	ns := a.Namespace
	if ns == "" {
		ns = "default"
	}
	d.UIURL = fmt.Sprintf("%s/namespaces/%s/workflows/%s/%s/history", a.UIURL, ns, d.WorkflowID, d.RunID)
	stored, err := a.DB.RecordDeadLetter(ctx, d)
	if err != nil {
		return "", err
	}
	a.Metrics.deadLetter(d.Kind, d.ErrorClass)
	return stored.ID, nil
}

// ListDeadLetterIDs returns the ids of the open dead letters matching f.
func (a *DeadLetters) ListDeadLetterIDs(ctx context.Context, f linsync.DeadLetterFilter) ([]string, error) {
	f.Status = linsync.DeadLetterOpen
	ds, err := a.DB.ListDeadLetters(ctx, f)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(ds))
	for i, d := range ds {
		ids[i] = d.ID
	}
	return ids, nil
}

// ErrTypeNoStartOptions is ReplayDeadLetter's error when the worker was built without DeadLetters.StartOnce.
const ErrTypeNoStartOptions = "NoStartOptions"

// Replay outcomes.
const (
	ReplayStarted          = "started"
	ReplayAlreadyRunning   = "already_running"
	ReplayAlreadyCompleted = "already_completed"
	ReplayNotFound         = "not_found"
	ReplayResyncRequested  = "resync_requested"
)

// ReplayResult says what replaying one dead letter did.
type ReplayResult struct {
	ID         string `json:"id"`
	WorkflowID string `json:"workflow_id"`
	RunID      string `json:"run_id,omitempty"`
	Outcome    string `json:"outcome"`
}

// ReplayDeadLetter starts the failed workflow again, same type, same ID and same input. The start may only reuse an
// ID whose last run failed, so replaying twice, or replaying what already succeeded, starts nothing.
func (a *DeadLetters) ReplayDeadLetter(ctx context.Context, workspaceID, id string) (ReplayResult, error) {
	d, err := a.DB.FindDeadLetter(ctx, workspaceID, id)
	if linsync.ErrorCode(err) == linsync.ENOTFOUND {
		return ReplayResult{ID: id, Outcome: ReplayNotFound}, nil
	}
	if err != nil {
		return ReplayResult{}, err
	}
	res := ReplayResult{ID: d.ID, WorkflowID: d.WorkflowID}
	if d.Kind == KindQuestionPush {
		return res, a.resyncQuestion(ctx, d, &res)
	}
	if a.StartOnce == nil {
		return res, temporal.NewNonRetryableApplicationError("no start options are configured", ErrTypeNoStartOptions, nil)
	}
	var args []json.RawMessage
	if err := json.Unmarshal(d.Input, &args); err != nil {
		return res, temporal.NewNonRetryableApplicationError("stored input is not a JSON array", "DeadLetterCorrupt", err)
	}
	anyArgs := make([]any, len(args))
	for i, a := range args {
		anyArgs[i] = a
	}
	run, err := a.Temporal.ExecuteWorkflow(ctx, a.StartOnce(d.WorkflowID, d.TaskQueue), d.Kind, anyArgs...)
	switch {
	case temporal.IsWorkflowExecutionAlreadyStartedError(err):
		desc, derr := a.Temporal.DescribeWorkflowExecution(ctx, d.WorkflowID, "")
		if derr != nil {
			return res, fmt.Errorf("describe %s: %w", d.WorkflowID, derr)
		}
		info := desc.GetWorkflowExecutionInfo()
		res.RunID = info.GetExecution().GetRunId()
		if info.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
			res.Outcome = ReplayAlreadyRunning
		} else {
			res.Outcome = ReplayAlreadyCompleted
		}
		if res.RunID != d.RunID {
			return res, a.DB.MarkReplayed(ctx, d.ID, res.RunID)
		}
		return res, nil
	case err != nil:
		return res, fmt.Errorf("start replay of %s: %w", d.WorkflowID, err)
	}
	res.RunID, res.Outcome = run.GetRunID(), ReplayStarted
	return res, a.DB.MarkReplayed(ctx, d.ID, res.RunID)
}

// resyncQuestion replays a QuestionPush dead letter: the question's workflow reads what Linear still lacks from
// Postgres and writes it, so asking twice writes nothing twice.
func (a *DeadLetters) resyncQuestion(ctx context.Context, d *linsync.DeadLetter, res *ReplayResult) error {
	var refs []QuestionRef
	if err := json.Unmarshal(d.Input, &refs); err != nil || len(refs) != 1 {
		return temporal.NewNonRetryableApplicationError("stored input is not a question reference", "DeadLetterCorrupt", err)
	}
	if a.Resync == nil {
		return temporal.NewNonRetryableApplicationError("no question syncer is configured", ErrTypeNoQuestionSyncer, nil)
	}
	if err := a.Resync(ctx, refs[0].WorkspaceID, refs[0].QuestionID); err != nil {
		return err
	}
	res.Outcome = ReplayResyncRequested
	return a.DB.MarkReplayed(ctx, d.ID, d.RunID)
}
