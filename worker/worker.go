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

// Activities holds the activity structs the worker registers; each carries its own dependencies.
type Activities struct {
	Deliveries *activities.Deliveries
}

// New returns a worker for taskQueue with every workflow and activity registered. Start it with Run or Start.
func New(c client.Client, taskQueue string, acts Activities, opts sdkworker.Options) sdkworker.Worker {
	w := sdkworker.New(c, taskQueue, opts)
	w.RegisterWorkflow(workflows.LinearDelivery)
	w.RegisterActivity(acts.Deliveries)
	return w
}
