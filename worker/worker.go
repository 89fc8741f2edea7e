// Package worker registers linsync's workflows and activities with a Temporal worker.
package worker

import (
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/linsync/linsync/activities"
	"github.com/linsync/linsync/workflows"
)

// DefaultTaskQueue is the task queue linsync's workflows and activities run on unless configured otherwise.
const DefaultTaskQueue = "linsync"

// Activities holds the activity structs the worker registers; each carries its own dependencies. Nil ones are
// skipped, so tests register only what they exercise.
type Activities struct {
	Deliveries *activities.Deliveries
	Questions  *activities.Questions
	Events     *activities.Events
	Access     *activities.Access
	// DeadLetters, when set, also turns on the dead-letter interceptor for every workflow.
	DeadLetters *activities.DeadLetters
	Reconciler  *activities.Reconciler
}

// New returns a worker for taskQueue with every workflow and activity registered. Start it with Run or Start.
func New(c client.Client, taskQueue string, acts Activities, opts sdkworker.Options) sdkworker.Worker {
	if acts.DeadLetters != nil {
		opts.Interceptors = append(opts.Interceptors, &workflows.DeadLetterInterceptor{})
	}
	w := sdkworker.New(c, taskQueue, opts)
	for _, wf := range workflows.All() {
		w.RegisterWorkflow(wf)
	}
	for _, a := range []any{acts.Deliveries, acts.Questions, acts.Events, acts.Access, acts.DeadLetters, acts.Reconciler} {
		if !isNil(a) {
			w.RegisterActivity(a)
		}
	}
	return w
}

func isNil(a any) bool {
	switch v := a.(type) {
	case *activities.Deliveries:
		return v == nil
	case *activities.Questions:
		return v == nil
	case *activities.Events:
		return v == nil
	case *activities.Access:
		return v == nil
	case *activities.DeadLetters:
		return v == nil
	case *activities.Reconciler:
		return v == nil
	}
	return a == nil
}
