package activities

import (
	"context"
	"encoding/json"

	"go.temporal.io/sdk/activity"

	"github.com/linsync/linsync"
)

// KindQuestionPush is linsync.KindQuestionPush: the question's workflow does not fail (it keeps the question's
// order), so a push that fails for good is recorded as a dead letter here instead.
const KindQuestionPush = linsync.KindQuestionPush

// SyncFailure is why a question's push failed for good.
type SyncFailure struct {
	Reason     string `json:"reason"`
	ErrorClass string `json:"error_class"`
	Attempts   int    `json:"attempts"`
}

// RecordSyncFailure records a question whose push failed for good as a dead letter (one row per question, updated
// on each new failure), so operators find it with every other failure and can replay it.
func (a *Questions) RecordSyncFailure(ctx context.Context, ref QuestionRef, f SyncFailure) error {
	if a.DeadLetters == nil {
		return nil
	}
	input, err := json.Marshal([]QuestionRef{ref})
	if err != nil {
		return err
	}
	info := activity.GetInfo(ctx)
	_, err = a.DeadLetters.RecordDeadLetter(ctx, linsync.DeadLetter{
		WorkspaceID: ref.WorkspaceID, Kind: KindQuestionPush, WorkflowID: info.WorkflowExecution.ID,
		RunID: info.WorkflowExecution.RunID, TaskQueue: info.TaskQueue, Input: input,
		ErrorClass: f.ErrorClass, ErrorMessage: f.Reason, Attempts: f.Attempts,
	})
	return err
}
