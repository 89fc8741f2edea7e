// Package worker registers linsync's workflows and activities with a Temporal worker.
package worker

import (
	"context"
	"net/http"

	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/linsync/linsync/activities"
	"github.com/linsync/linsync/linear"
	"github.com/linsync/linsync/postgres"
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

// Deps are what the worker's activities need. cmd/linsync builds them from its configuration, and the end-to-end
// tests build their worker through NewActivities too, so their wiring is production's.
type Deps struct {
	DB *postgres.DB
	// Start holds the Temporal client, the worker's task queue and the settings the workflows it starts carry.
	Start  workflows.Starter
	Linear *linear.Clients
	// Metrics counts retries, dead letters and repaired drift; nil counts nothing.
	Metrics *activities.Metrics
	// Namespace and TemporalUIURL make the Temporal Web UI link kept with each dead letter.
	Namespace     string
	TemporalUIURL string
	// CallbackClient posts the signed callbacks to the Q&A app (activities.PublicHTTPClient).
	CallbackClient *http.Client
	// AfterLinearWrite is activities.Questions' test seam; nil in production.
	AfterLinearWrite func(ctx context.Context, op string) error
}

// NewActivities builds every activity struct the worker registers, wired to each other as production runs them:
// questions whose push fails for good become dead letters, and such a dead letter is replayed by a resync.
func NewActivities(d Deps) Activities {
	deadLetters := &activities.DeadLetters{DB: d.DB, Temporal: d.Start.Client, Namespace: d.Namespace,
		UIURL: d.TemporalUIURL, StartOnce: workflows.StartOnce, Metrics: d.Metrics}
	questions := &activities.Questions{DB: d.DB, Linear: d.Linear, Sync: d.Start.QuestionSyncer(),
		AfterLinearWrite: d.AfterLinearWrite, DeadLetters: deadLetters, CallbackClient: d.CallbackClient, Metrics: d.Metrics}
	deadLetters.Resync = questions.ResyncQuestion
	return Activities{
		Deliveries: &activities.Deliveries{DB: d.DB},
		Questions:  questions,
		Events: &activities.Events{DB: d.DB, Linear: d.Linear, Temporal: d.Start.Client, Metrics: d.Metrics,
			Aggregator: workflows.TypeIssueAggregator},
		Access:      &activities.Access{DB: d.DB, Linear: d.Linear},
		DeadLetters: deadLetters,
		Reconciler:  &activities.Reconciler{DB: d.DB, Linear: d.Linear, Temporal: d.Start.Client, Metrics: d.Metrics},
	}
}
