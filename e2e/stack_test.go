package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/activities"
	"github.com/linsync/linsync/api"
	"github.com/linsync/linsync/console"
	"github.com/linsync/linsync/envelope"
	"github.com/linsync/linsync/linear"
	"github.com/linsync/linsync/linear/lineartest"
	"github.com/linsync/linsync/linsynctest"
	"github.com/linsync/linsync/postgres"
	"github.com/linsync/linsync/worker"
	"github.com/linsync/linsync/workflows"
)

// stack is linsync as production runs it, for one test: a fresh Postgres database, the shared Temporal dev server,
// a worker on a task queue of its own, the API behind httptest, and (unless told otherwise) the fake Linear at the
// network edge. Every harness of these tests is a thin layer over one.
type stack struct {
	t         *testing.T
	db        *postgres.DB
	temporal  client.Client
	taskQueue string
	srv       *httptest.Server
	server    *api.Server // the API behind srv
	// ops is the operations listener (health, readiness, metrics), apart from the API as in production.
	ops *httptest.Server
	// codec seals every payload the stack's Temporal client writes, as cmd/linsync's shared client does.
	codec *envelope.Codec
	// reg holds the API's metrics; workerReg the worker's (reconciliation's counters).
	reg       *prometheus.Registry
	workerReg *prometheus.Registry
	fake      *lineartest.Server // nil with stackOptions.noLinear
	sd        lineartest.Seeded
	clients   *linear.Clients
	acts      worker.Activities // what the worker runs; all nil without a worker
	ws        string            // workspace slug; "" when the stack made none
	wsID      string
	hookID    string // the stored Linear webhook of the workspace, if any
	apiKey    string // the credential the workspace's connection holds, if connected
	tokens    map[string]string
	// client validates every /v1 request and response against the OpenAPI document; apiWire is its transport.
	client  *http.Client
	apiWire *openAPITransport
	logs    *syncBuffer // the API's log lines, with stackOptions.captureLogs
	// pg stands between the API and Postgres with stackOptions.pgProxy: pg.setDown(true) is an outage as the API
	// sees it, while the worker and the test keep reaching the database.
	pg *tcpProxy
}

// stackWorker picks the activity structs the stack's worker runs, built as cmd/linsync builds them; the zero value
// runs no worker at all.
type stackWorker struct {
	deliveries, questions, events, access, reconciler, gateway bool
	// deadLetters also turns the dead-letter interceptor on for every workflow.
	deadLetters bool
}

// everyCapability is the worker production runs.
var everyCapability = stackWorker{deliveries: true, questions: true, events: true, access: true, deadLetters: true}

// stackWebhook is how the workspace's Linear webhook is known to linsync.
type stackWebhook int

const (
	// webhookNone (the zero value) registers no webhook.
	webhookNone stackWebhook = iota
	// webhookStored is a webhook row added by hand (for the fake's organization, or testOrg without the fake).
	webhookStored
	// webhookManaged is the webhook as connecting registers it: the fake's, managed, with Linear's id stored.
	webhookManaged
)

// stackConnection is the workspace's connection to the fake Linear by API key, stored as connecting stores it.
type stackConnection struct {
	// apiKey is the credential; "" is the seeded key the fake knows.
	apiKey  string
	orgName string
	labels  []string
}

// stackToken is an API token made for the workspace, found in stack.tokens by name.
type stackToken struct {
	name   string
	scopes []string
}

// stackOptions bend the stack where the harnesses differ.
type stackOptions struct {
	// cfg is the API's config; the stack sets TaskQueue and, with the fake, LinearEndpoint.
	cfg api.Config
	// temporal replaces the shared dev server's client (a dead one, say).
	temporal client.Client
	// noLinear leaves the fake Linear out; linear are the fake's options.
	noLinear bool
	linear   lineartest.Options
	// linearFront, when set, stands in front of the fake: the API and the activities reach Linear through it.
	linearFront func(fake *lineartest.Server) http.Handler
	// linearTransport carries the activities' Linear requests.
	linearTransport http.RoundTripper
	// afterLinearWrite is activities.Questions.AfterLinearWrite.
	afterLinearWrite func(ctx context.Context, op string) error
	// prepare runs once the fake, the Linear clients and the API's URL exist, before the worker and the API are
	// built: the last word on their config.
	prepare func(s *stack, cfg *api.Config)
	worker  stackWorker
	// codecKeyURL, when set, is the key the stack's payload codec seals with (default: a fresh one per test).
	codecKeyURL string
	// captureLogs keeps the API's log lines (JSON, debug and up) in stack.logs instead of dropping them.
	captureLogs bool
	// tracer traces the stack as cmd/linsync does when tracing is on: the API, the Temporal client shared by the
	// API and the worker, and the calls to Linear and to the Q&A app.
	tracer trace.TracerProvider
	// pgProxy has the API reach Postgres through stack.pg, which a test can take down; noDrainer runs the worker
	// without its inbox drainer, so a test decides when the drainer runs.
	pgProxy   bool
	noDrainer bool
	// digestUnit is how long a notification digest's "minute" lasts (0: a minute).
	digestUnit time.Duration

	// workspace is the slug of a workspace to create (none when ""); workspaceName its name (default the slug).
	workspace     string
	workspaceName string
	webhook       stackWebhook
	connect       *stackConnection
	tokens        []stackToken
	// deliver has the fake send its webhooks to the API's webhook URL, or to via(that URL) when via is set; a
	// managed webhook delivers by itself.
	deliver bool
	via     func(target string) string
}

func newStack(t *testing.T, o stackOptions) *stack {
	t.Helper()
	s := &stack{t: t, temporal: o.temporal, taskQueue: "test-" + uuid.NewString(),
		reg: prometheus.NewRegistry(), workerReg: prometheus.NewRegistry(), tokens: map[string]string{}}
	apiDB := s.openDB(o.pgProxy)
	if s.temporal == nil {
		s.temporal, _ = linsynctest.Temporal(t)
	}
	cfg := o.cfg
	cfg.TaskQueue = s.taskQueue
	s.clients = &linear.Clients{Store: s.db}
	// The one client the API and the worker share, wired as cmd/linsync wires it: payloads sealed by the codec,
	// and traced when tracing is on.
	var topts client.Options
	keeper := linsynctest.Keeper(t)
	if o.codecKeyURL != "" {
		var err error
		keeper, err = envelope.Open(context.Background(), o.codecKeyURL)
		require.NoError(t, err)
		t.Cleanup(func() { _ = keeper.Close() })
	}
	s.codec = envelope.NewCodec(keeper)
	worker.EncryptPayloads(&topts, s.codec)
	if o.tracer != nil {
		ti, err := worker.TracingInterceptor(o.tracer)
		require.NoError(t, err)
		topts.Interceptors = []interceptor.ClientInterceptor{ti}
		cfg.TracerProvider, s.clients.TracerProvider = o.tracer, o.tracer
	}
	if wrapped, err := client.NewClientFromExisting(s.temporal, topts); err == nil {
		s.temporal = wrapped
		t.Cleanup(wrapped.Close)
	} else {
		// A client a test made unreachable on purpose carries no payload; it is used as it is.
		require.NotNil(t, o.temporal, "wrap the shared Temporal client: %v", err)
	}
	if cfg.Codec == nil {
		cfg.Codec = s.codec
	}
	if cfg.NotificationPoster == nil {
		// Test messages go out as cmd/linsync sends them, through the outbound client the API's config allows.
		hc := activities.PublicHTTPClient(cfg.AllowPrivateNotifications, 10*time.Second)
		cfg.NotificationPoster = func(ctx context.Context, kind, url string, secret []byte, msgID string, body []byte) (int, error) {
			return activities.PostNotification(ctx, hc, kind, url, secret, msgID, body, time.Now(), 1, rand.Int64N)
		}
	}
	if !o.noLinear {
		opts := o.linear
		s.fake = lineartest.Start(t, opts)
		s.sd = s.fake.Seed()
		endpoint := s.fake.URL()
		if o.linearFront != nil {
			front := httptest.NewServer(o.linearFront(s.fake))
			t.Cleanup(front.Close)
			endpoint = front.URL
		}
		cfg.LinearEndpoint, s.clients.Endpoint = endpoint, endpoint
	}
	if o.linearTransport != nil {
		s.clients.HTTPClient = &http.Client{Transport: o.linearTransport}
	}
	// The API is built after its server, so that its config can name its own URL.
	var handler http.Handler
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	t.Cleanup(s.srv.Close)
	if o.prepare != nil {
		o.prepare(s, &cfg)
	}
	s.startWorker(o)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if o.captureLogs {
		s.logs = &syncBuffer{}
		log = slog.New(slog.NewJSONHandler(s.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	a, err := api.New(cfg, apiDB, s.temporal, log, s.reg)
	require.NoError(t, err)
	t.Cleanup(a.Close)
	// The operator console, mounted as cmd/linsync mounts it: on the API's own handler, sessions sealed by the keeper.
	con, err := console.New(console.Options{API: a.Handler(), Sealer: keeper, TemporalUIURL: "http://temporal-ui.test"})
	require.NoError(t, err)
	a.Mount(console.Prefix, con)
	s.server, handler = a, a.Handler()
	// The operations listener reads Postgres as the API does (through stack.pg when a test can take it down).
	s.ops = httptest.NewServer(api.OpsHandler(apiDB, s.temporal, s.reg))
	t.Cleanup(s.ops.Close)
	if o.workspace != "" {
		s.setUpWorkspace(o)
	}
	s.client, s.apiWire = newOpenAPIClient(t)
	return s
}

// startWorker runs the activities o.worker asks for, if any, built by worker.NewActivities as production builds
// them.
func (s *stack) startWorker(o stackOptions) {
	s.t.Helper()
	if o.worker == (stackWorker{}) {
		return
	}
	all, err := worker.NewActivities(worker.Deps{DB: s.db, Temporal: s.temporal, TaskQueue: s.taskQueue,
		Linear: s.clients, Metrics: s.workerReg, TemporalUIURL: "http://temporal-ui.test", AfterLinearWrite: o.afterLinearWrite,
		TracerProvider: o.tracer,
		// Test apps listen on loopback, which production refuses unless configured.
		AllowPrivateCallbacks: true, AllowPrivateNotifications: true, NotificationDigestUnit: o.digestUnit})
	require.NoError(s.t, err)
	ow := o.worker
	if ow.deliveries {
		// Every delivery is evaluated against the notification rules, as production's worker does.
		s.acts.Deliveries, s.acts.Notifications = all.Deliveries, all.Notifications
	}
	if ow.questions {
		s.acts.Questions = all.Questions
	}
	if ow.events {
		s.acts.Events = all.Events
	}
	if ow.access {
		s.acts.Access = all.Access
	}
	if ow.deadLetters {
		s.acts.DeadLetters = all.DeadLetters
	}
	if ow.reconciler {
		s.acts.Reconciler = all.Reconciler
	}
	if ow.gateway {
		s.acts.Gateway = all.Gateway
	}
	s.acts.Reconnect = all.Reconnect
	w := worker.New(s.temporal, s.taskQueue, s.acts, sdkworker.Options{})
	require.NoError(s.t, w.Start())
	s.t.Cleanup(w.Stop)
	if o.noDrainer {
		return
	}
	s.runDrainer()
}

// runDrainer runs the worker's inbox drainer, as production runs it beside every worker, until the test ends.
func (s *stack) runDrainer() {
	deps := worker.Deps{DB: s.db, Temporal: s.temporal, TaskQueue: s.taskQueue}
	dr, err := worker.NewDrainer(deps, nil)
	require.NoError(s.t, err)
	dr.Interval = 100 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = dr.Run(ctx) }()
	s.t.Cleanup(func() { cancel(); <-done })
}

// openDB makes the test's database and returns the store the API uses: s.db itself, or with viaProxy the same
// database reached through s.pg.
func (s *stack) openDB(viaProxy bool) *postgres.DB {
	s.t.Helper()
	if !viaProxy {
		s.db = linsynctest.DB(s.t)
		return s.db
	}
	url, keeper := linsynctest.DatabaseURL(s.t), linsynctest.Keeper(s.t)
	open := func(url string) *postgres.DB {
		db, err := postgres.Open(context.Background(), url, keeper)
		require.NoError(s.t, err)
		s.t.Cleanup(db.Close)
		return db
	}
	s.db = open(url)
	s.pg = newTCPProxy(s.t, hostPortOf(s.t, url))
	return open(replaceHostPort(s.t, url, s.pg.addr()))
}

// setUpWorkspace creates o.workspace with its webhook, connection and tokens, and points the fake's webhooks at it.
func (s *stack) setUpWorkspace(o stackOptions) {
	s.t.Helper()
	ctx := s.t.Context()
	name := o.workspaceName
	if name == "" {
		name = o.workspace
	}
	ws, err := s.db.CreateWorkspace(ctx, o.workspace, name)
	require.NoError(s.t, err)
	s.ws, s.wsID = ws.Slug, ws.ID
	org := testOrg
	if s.fake != nil {
		org = s.sd.OrganizationID
	}
	switch o.webhook {
	case webhookNone:
	case webhookStored:
		hook, err := s.db.AddLinearWebhook(ctx, linsync.LinearWebhookInput{WorkspaceID: ws.ID, OrganizationID: org, Secret: testSecret})
		require.NoError(s.t, err)
		s.hookID = hook.ID
	}
	var conn *linsync.LinearConnection
	if c := o.connect; c != nil {
		s.apiKey = c.apiKey
		if s.apiKey == "" {
			s.apiKey = s.sd.APIKey
		}
		conn, err = s.db.SaveConnection(ctx, linsync.ConnectionInput{WorkspaceID: ws.ID, OrganizationID: org,
			OrganizationName: c.orgName, AuthKind: linsync.AuthAPIKey, Credential: s.apiKey, ActorUserID: s.sd.Bot.ID,
			ActorName: s.sd.Bot.Name, DefaultTeam: s.sd.Triage.ID, Priority: 3, Labels: c.labels})
		require.NoError(s.t, err)
	}
	target := s.srv.URL + "/webhooks/linear/" + ws.Slug
	if o.webhook == webhookManaged {
		require.NotNil(s.t, conn, "a managed webhook belongs to a connection")
		whID := s.fake.AddWebhook(target, testSecret)
		hook, err := s.db.RegisterLinearWebhook(ctx, linsync.WebhookRegistration{WorkspaceID: ws.ID, ConnectionID: conn.ID,
			OrganizationID: org, LinearWebhookID: whID, Managed: true, URL: target,
			ResourceTypes: []string{"Issue", "Comment"}, Secret: testSecret})
		require.NoError(s.t, err)
		s.hookID = hook.ID
	}
	for _, tok := range o.tokens {
		_, secret, err := s.db.CreateToken(ctx, ws.ID, tok.name, tok.scopes)
		require.NoError(s.t, err)
		s.tokens[tok.name] = secret
	}
	if o.deliver {
		if o.via != nil {
			target = o.via(target)
		}
		s.fake.AddWebhook(target, testSecret)
	}
}

// runReconcile runs the workspace's Reconcile workflow once, as its schedule would, and returns what it did.
func (s *stack) runReconcile(timeout time.Duration) workflows.ReconcileResult {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.t.Context(), timeout)
	defer cancel()
	run, err := s.temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: workflows.ReconcileWorkflowID(s.wsID) + ":" + uuid.NewString(),
		TaskQueue: s.taskQueue}, workflows.Reconcile, workflows.ReconcileInput{WorkspaceID: s.wsID})
	require.NoError(s.t, err)
	var res workflows.ReconcileResult
	require.NoError(s.t, run.Get(ctx, &res))
	return res
}

// request sends method path (below the API's URL) through hc with body as JSON (none when nil) and the header pairs
// given, and returns the response with its body read.
func (s *stack) request(hc *http.Client, method, path string, body any, header ...string) (*http.Response, []byte) {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(s.t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(s.t.Context(), method, s.srv.URL+path, rd)
	require.NoError(s.t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := hc.Do(req)
	require.NoError(s.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(s.t, err)
	return resp, raw
}
