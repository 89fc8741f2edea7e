// Package worker registers linsync's workflows and activities with a Temporal worker, and builds the activities from
// their dependencies (NewActivities) as cmd/linsync and the end-to-end tests both use them.
package worker

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.temporal.io/sdk/client"
	temporalotel "go.temporal.io/sdk/contrib/opentelemetry"
	"go.temporal.io/sdk/interceptor"
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
	// Reconnect is the register of work waiting for a workspace's reconnect; every workflow that calls Linear uses it.
	Reconnect *activities.Reconnect
	// Gateway decides and forwards the agents' requests held for approval.
	Gateway *activities.Gateway
	// Notifications evaluates notification rules for every delivery and sends the messages; every worker that runs
	// Deliveries needs it.
	Notifications *activities.Notifications
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
	register(acts.Reconnect == nil, acts.Reconnect)
	register(acts.Gateway == nil, acts.Gateway)
	register(acts.Notifications == nil, acts.Notifications)
	return w
}

// TracingInterceptor makes workflow starts, workflow runs and activity attempts spans of tp, each the child of what
// started it, so one trace runs from an HTTP request through its workflow to the calls its activities make. Set it
// on the Temporal client the API and the worker share: Temporal carries the trace context in workflow headers.
func TracingInterceptor(tp trace.TracerProvider) (interceptor.Interceptor, error) {
	return temporalotel.NewTracingInterceptor(temporalotel.TracerOptions{Tracer: tp.Tracer("linsync"),
		TextMapPropagator: propagation.TraceContext{}})
}

// Deps are what the worker's activities need. cmd/linsync builds them from its configuration, and the end-to-end
// tests build their worker through NewActivities too, so their wiring is production's.
type Deps struct {
	DB       *postgres.DB
	Temporal client.Client
	// TaskQueue is the worker's; LinearMaxAttempts (0: the default) and ReconcileEvery (0: the default) go into the
	// inputs of the workflows the activities start (workflows.Starter).
	TaskQueue         string
	LinearMaxAttempts int32
	ReconcileEvery    time.Duration
	Linear            *linear.Clients
	// Metrics receives the activities' counters (retries, dead letters, repaired drift); nil keeps none.
	Metrics prometheus.Registerer
	// Namespace and TemporalUIURL make the Temporal Web UI link kept with each dead letter.
	Namespace     string
	TemporalUIURL string
	// AllowPrivateCallbacks lets the signed callbacks to the Q&A app reach private and loopback addresses.
	AllowPrivateCallbacks bool
	// AllowPrivateNotifications lets notification messages reach private and loopback addresses.
	AllowPrivateNotifications bool
	// NotificationDigestUnit is how long a digest rule's minute lasts (0: a minute); tests shorten it.
	NotificationDigestUnit time.Duration
	// TracerProvider, when set, traces the callbacks to the Q&A app (Linear's clients carry their own).
	TracerProvider trace.TracerProvider
	// AfterLinearWrite is activities.Questions' test seam; nil in production.
	AfterLinearWrite func(ctx context.Context, op string) error
	// GatewayReserve is the share of every Linear rate-limit window agents may not spend; GatewayMaxResponseBytes
	// bounds Linear's answer to an agent's request (0: the linear package's bound).
	GatewayReserve          float64
	GatewayMaxResponseBytes int64
}

// Starter starts workflows on the worker's task queue with the settings of d.
func (d Deps) Starter() workflows.Starter {
	return workflows.Starter{Client: d.Temporal, TaskQueue: d.TaskQueue, LinearMaxAttempts: d.LinearMaxAttempts,
		ReconcileEvery: d.ReconcileEvery}
}

// NewActivities builds every activity struct the worker registers, wired to each other as production runs them:
// questions whose push fails for good become dead letters, and such a dead letter is replayed by a resync.
func NewActivities(d Deps) (Activities, error) {
	var m *activities.Metrics
	if d.Metrics != nil {
		var err error
		if m, err = activities.NewMetrics(d.Metrics); err != nil {
			return Activities{}, err
		}
	}
	start := d.Starter()
	deadLetters := &activities.DeadLetters{DB: d.DB, Temporal: d.Temporal, Namespace: d.Namespace,
		UIURL: d.TemporalUIURL, StartOnce: workflows.StartOnce, Metrics: m}
	callbacks := activities.PublicHTTPClient(d.AllowPrivateCallbacks, 10*time.Second)
	if d.TracerProvider != nil {
		callbacks.Transport = otelhttp.NewTransport(callbacks.Transport, otelhttp.WithTracerProvider(d.TracerProvider),
			otelhttp.WithPropagators(propagation.TraceContext{}))
	}
	questions := &activities.Questions{DB: d.DB, Linear: d.Linear, Sync: start.QuestionSyncer(),
		AfterLinearWrite: d.AfterLinearWrite, DeadLetters: deadLetters, Metrics: m, CallbackClient: callbacks}
	deadLetters.Resync = questions.ResyncQuestion
	notifyHTTP := activities.PublicHTTPClient(d.AllowPrivateNotifications, 10*time.Second)
	if d.TracerProvider != nil {
		notifyHTTP.Transport = otelhttp.NewTransport(notifyHTTP.Transport, otelhttp.WithTracerProvider(d.TracerProvider),
			otelhttp.WithPropagators(propagation.TraceContext{}))
	}
	return Activities{
		Deliveries: &activities.Deliveries{DB: d.DB, Metrics: m},
		Questions:  questions,
		Events: &activities.Events{DB: d.DB, Linear: d.Linear, Temporal: d.Temporal, Metrics: m,
			Aggregator: workflows.TypeIssueAggregator},
		Access:      &activities.Access{DB: d.DB, Linear: d.Linear},
		DeadLetters: deadLetters,
		Reconciler:  &activities.Reconciler{DB: d.DB, Linear: d.Linear, Temporal: d.Temporal, Metrics: m},
		Reconnect:   &activities.Reconnect{DB: d.DB},
		Gateway: &activities.Gateway{DB: d.DB, Linear: d.Linear, Reserve: d.GatewayReserve,
			MaxResponseBytes: d.GatewayMaxResponseBytes, Metrics: m},
		Notifications: &activities.Notifications{DB: d.DB, HTTP: notifyHTTP, Temporal: d.Temporal, TaskQueue: d.TaskQueue,
			DigestWorkflow: workflows.TypeNotificationDigest, DigestSignal: workflows.NotificationDigestSignal,
			DigestUnit: d.NotificationDigestUnit, Metrics: m},
	}, nil
}

// EnsureReconcileSchedules makes sure every connected workspace has its reconciliation schedule, at its interval.
// Connecting creates the schedule and disconnecting deletes it; this catches what those could not (Temporal was
// unreachable at the time, or the workspace connected before reconciliation existed). The worker runs it when it
// starts; failures are logged, not fatal: the next start tries again.
func EnsureReconcileSchedules(ctx context.Context, d Deps, log *slog.Logger) {
	ids, err := d.DB.ConnectedWorkspaces(ctx)
	if err != nil {
		log.Warn("list workspaces to reconcile failed", "err", err)
		return
	}
	start := d.Starter()
	ensured := 0
	for _, id := range ids {
		every, err := d.DB.ReconcileInterval(ctx, id)
		if err == nil {
			err = start.EnsureReconcileSchedule(ctx, id, every)
		}
		if err != nil {
			log.Warn("ensure reconcile schedule failed", "workspace_id", id, "err", err)
			continue
		}
		ensured++
	}
	log.Info("reconcile schedules ensured", "workspaces", ensured)
}
