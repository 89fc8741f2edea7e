package workflows

import (
	"context"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
)

// Defaults of the settings a Starter puts into the workflows it starts.
const (
	DefaultLinearMaxAttempts = 5
	DefaultReconcileEvery    = 10 * time.Minute
)

// Starter starts linsync's workflows on one task queue with the process's settings in their inputs: a workflow reads
// no configuration of its own, so it behaves the same on every worker and a replay sees the values its run started
// with. cmd/linsync builds one from its configuration for the api and one for the worker.
type Starter struct {
	Client    client.Client
	TaskQueue string
	// LinearMaxAttempts is how many times an activity that calls Linear (or another service) is tried before its
	// work becomes a dead letter; 0 means DefaultLinearMaxAttempts.
	LinearMaxAttempts int32
	// ReconcileEvery is how often a workspace that sets no interval of its own is reconciled; 0 means
	// DefaultReconcileEvery.
	ReconcileEvery time.Duration
}

// ReconcileInterval is how often a workspace whose own interval is every (0: none) is reconciled.
func (s Starter) ReconcileInterval(every time.Duration) time.Duration {
	switch {
	case every > 0:
		return every
	case s.ReconcileEvery > 0:
		return s.ReconcileEvery
	}
	return DefaultReconcileEvery
}

// StartOnce returns the options that start workflow id on taskQueue only when no run of it is open or completed:
// a second start of the same ID fails with WorkflowExecutionAlreadyStarted (temporal.IsWorkflowExecutionAlreadyStartedError),
// which is the dedup. A completed run stays deduplicated for the namespace's retention; only a failed one may be
// started again, by a redelivery, a resubmission or a dead letter's replay.
func StartOnce(id, taskQueue string) client.StartWorkflowOptions {
	return client.StartWorkflowOptions{
		ID:                                       id,
		TaskQueue:                                taskQueue,
		WorkflowIDConflictPolicy:                 enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowIDReusePolicy:                    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
	}
}

// SignalQuestionSync signals a question's workflow, starting it when it is not running.
func (s Starter) SignalQuestionSync(ctx context.Context, workspaceID, questionID, reason string) error {
	_, err := s.Client.SignalWithStartWorkflow(ctx, QuestionWorkflowID(workspaceID, questionID), QuestionSyncSignal,
		QuestionSyncRequest{Reason: reason}, client.StartWorkflowOptions{TaskQueue: s.TaskQueue}, QuestionSync,
		QuestionSyncInput{WorkspaceID: workspaceID, QuestionID: questionID, LinearMaxAttempts: s.LinearMaxAttempts})
	if err != nil {
		return fmt.Errorf("signal question %s: %w", questionID, err)
	}
	return nil
}

// QuestionSyncer returns the function activities.Questions.Sync uses to reach a question's workflow.
func (s Starter) QuestionSyncer() func(ctx context.Context, workspaceID, questionID string) error {
	return func(ctx context.Context, workspaceID, questionID string) error {
		return s.SignalQuestionSync(ctx, workspaceID, questionID, "linear change left app edits to write")
	}
}
