// Package worker registers linsync's workflows and activities with a Temporal worker.
package worker

import (
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/linsync/linsync/activities"
	"github.com/linsync/linsync/workflows"
)

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
	for name, wf := range workflows.All() {
		w.RegisterWorkflowWithOptions(wf, workflow.RegisterOptions{Name: name})
	}
	// Nil structs are skipped, so tests register only what they exercise.
	register := func(isNil bool, a any) {
		if !isNil {
			w.RegisterActivity(a)
		}
	}
	register(acts.Deliveries == nil, acts.Deliveries)
	register(acts.Questions == nil, acts.Questions)
	register(acts.Events == nil, acts.Events)
	register(acts.Access == nil, acts.Access)
	register(acts.DeadLetters == nil, acts.DeadLetters)
	register(acts.Reconciler == nil, acts.Reconciler)
	return w
}
