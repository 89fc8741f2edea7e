package workflows

// Workflow type names: what Temporal calls linsync's workflows, and so what dead letters, replays and starts by
// name use. Each is its function's name (TestWorkflowTypeNames), so a start by function and one by name agree.
const (
	TypeLinearDelivery     = "LinearDelivery"
	TypeFileEvent          = "FileEvent"
	TypeIssueAggregator    = "IssueAggregator"
	TypeQuestionSync       = "QuestionSync"
	TypeQuestionPush       = "QuestionPush"
	TypeReplayDeadLetters  = "ReplayDeadLetters"
	TypeReconcile          = "Reconcile"
	TypeNotifyQuestionApp  = "NotifyQuestionApp"
	TypeGatewayApproval    = "GatewayApproval"
	TypeNotificationDigest = "NotificationDigest"
)

// All maps the type name of every workflow the worker registers to its function. Each capability adds its
// workflows here.
func All() map[string]any {
	return map[string]any{
		TypeLinearDelivery:     LinearDelivery,
		TypeFileEvent:          FileEvent,
		TypeIssueAggregator:    IssueAggregator,
		TypeQuestionSync:       QuestionSync,
		TypeQuestionPush:       QuestionPush,
		TypeReplayDeadLetters:  ReplayDeadLetters,
		TypeReconcile:          Reconcile,
		TypeNotifyQuestionApp:  NotifyQuestionApp,
		TypeGatewayApproval:    GatewayApproval,
		TypeNotificationDigest: NotificationDigest,
	}
}
