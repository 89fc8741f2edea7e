package workflows

// All lists every workflow the worker registers. Each capability adds its workflows here.
func All() []any {
	return []any{
		LinearDelivery,
		FileEvent, IssueAggregator,
		QuestionSync,
		ReplayDeadLetters,
		Reconcile,
		NotifyQuestionApp,
	}
}
