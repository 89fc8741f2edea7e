package linsync

import (
	"encoding/json"
	"time"
)

// MinReconcileInterval is the shortest reconciliation interval a workspace may set: each run costs Linear requests.
const MinReconcileInterval = time.Minute

// ReconcileRun is one finished reconciliation run, the audit record of what it repaired.
type ReconcileRun struct {
	RunID             string          `json:"run_id"`
	WorkspaceID       string          `json:"-"`
	WorkflowID        string          `json:"workflow_id"`
	WatermarkFrom     time.Time       `json:"watermark_from"`
	WatermarkTo       time.Time       `json:"watermark_to"`
	IssuesSeen        int             `json:"issues_seen"`
	QuestionsRepaired int             `json:"questions_repaired"`
	FiledRepaired     int             `json:"filed_repaired"`
	QuestionsResynced int             `json:"questions_resynced"`
	WebhooksReenabled int             `json:"webhooks_reenabled"`
	Repaired          json.RawMessage `json:"repaired"`
	StartedAt         time.Time       `json:"started_at"`
	FinishedAt        time.Time       `json:"finished_at"`
}
