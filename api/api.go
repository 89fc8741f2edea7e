// Package api is linsync's HTTP surface: Linear webhook ingress, the /v1 REST API, health and metrics.
// Handlers verify and validate, then hand the work to a Temporal workflow; they never do the work themselves.
package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/contrib/instrumentation/github.com/gin-gonic/gin/otelgin"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/linear"
	"github.com/linsync/linsync/postgres"
	"github.com/linsync/linsync/workflows"
)

// Config is the API's share of linsync's configuration.
type Config struct {
	// TaskQueue is where workflows started by the API run.
	TaskQueue string
	// WebhookTolerance is how far a webhook's signed webhookTimestamp may be from now: ahead always, behind for a
	// body seen before. Default 60 s.
	WebhookTolerance time.Duration
	// RetryHorizon is how old an unseen signed body may be (Linear's retries carry the first attempt's timestamp),
	// and so how long content records are kept. Default linsync.DefaultRetryHorizon (8 h).
	RetryHorizon time.Duration
	// MaxBodyBytes is the largest webhook body accepted.
	MaxBodyBytes int64
	// StartTimeout bounds a workflow start made from a request, well inside Linear's 5 s delivery timeout; the write
	// to the inbox before it gets half as long.
	StartTimeout time.Duration
	// DispatchWorkers and DispatchQueue size the dispatcher that starts the workflows of accepted work right after
	// its 200. Defaults 16 and 4096.
	DispatchWorkers int
	DispatchQueue   int
	// InboxWriters is how many groups of accepted deliveries are written to the inbox at once. Default 1: one
	// writer commits whatever waits while its previous group commits, so groups grow with the load and a commit is
	// shared by more acknowledgements (BenchmarkPutInboxBatch: a group of 16 costs about a fifth per item of a
	// group of 1); more writers mean smaller groups and more commits for the same load.
	InboxWriters int
	// AllowedSenders, when not empty, are the only networks Linear webhooks are accepted from.
	AllowedSenders []netip.Prefix
	// SecretCacheTTL is how long decrypted webhook secrets, and organizations' team claims, are kept in memory. A
	// secret whose grace window has ended may still be accepted for up to this long; a newly rotated secret is
	// accepted at once; claims changed through another process count after at most this long.
	SecretCacheTTL time.Duration
	// LinearEndpoint is Linear's GraphQL endpoint (the fake's in tests).
	LinearEndpoint string
	// LinearHTTPClient, when set, carries requests to Linear.
	LinearHTTPClient *http.Client
	// BootstrapToken lets an operator create workspaces through the API; empty disables that route.
	BootstrapToken string
	// TrustedProxies are the proxies whose X-Forwarded-For is believed when finding the sender's address.
	TrustedProxies []netip.Prefix
	// PublicURL is the base URL Linear reaches linsync at; when set, connecting registers linsync's webhook in Linear.
	PublicURL string
	// WebhookSecretGrace is how long a rotated-out webhook secret is still accepted. Default 1 h.
	WebhookSecretGrace time.Duration
	// OAuth is Linear's OAuth application; nil disables connecting by OAuth.
	OAuth *linear.OAuthClient
	// OAuthWebhookSecret signs the deliveries of the OAuth application's own webhook (OAuthApp revoked), posted to
	// /webhooks/linear-app; "" answers that route 501.
	OAuthWebhookSecret string
	// LinearMetrics receives the metrics of the API's calls to Linear, with the worker's; nil disables them.
	LinearMetrics *linear.Metrics
	// MinBrokenLinkWindow is the shortest broken-link dedup window event settings accept. Default 1 min.
	MinBrokenLinkWindow time.Duration
	// LinearMaxAttempts goes into the inputs of the workflows the API starts (see workflows.Starter); 0 is the
	// default.
	LinearMaxAttempts int32
	// ReconcileEvery is how often a workspace without an interval of its own is reconciled; 0 is the default.
	ReconcileEvery time.Duration
	// Codec, when set, is the codec that seals linsync's Temporal payloads: /codec/encode and /codec/decode serve it
	// to operators holding CodecToken, with CORS for CodecOrigins (the Temporal Web UI's origin).
	Codec        converter.PayloadCodec
	CodecToken   string
	CodecOrigins []string
	// CodecAllowLoopback admits codec requests from loopback without a token; only the dev stack sets it.
	CodecAllowLoopback bool
	// DryRunDeadline bounds a bulk replay's dry run as a whole. Default 20 s.
	DryRunDeadline time.Duration
	// GatewayReserve is the share of every Linear rate-limit window the agent gateway leaves for linsync's own work.
	// Default 0.2.
	GatewayReserve float64
	// GatewayMaxResponseBytes bounds Linear's answer to an agent's request; 0 is the linear package's bound (16 MiB).
	GatewayMaxResponseBytes int64
	// GatewayAuditAsync lets the audit entry of an allowed, forwarded call commit without waiting for Postgres's
	// disk flush (synchronous_commit off for that transaction): such an entry may then be lost if Postgres itself
	// crashes within a fraction of a second (the chain stays intact). Off (the default), every entry is flushed
	// before the agent is answered; decisions on held requests always are.
	GatewayAuditAsync bool
	// GatewayForwardTimeout bounds one attempt to forward an approved request; 0 is a minute.
	GatewayForwardTimeout time.Duration
	// GatewayMaxWait bounds how long an agent may wait for a held request's outcome (Prefer: wait=N). Default 60 s.
	GatewayMaxWait time.Duration
	// AllowPrivateNotifications lets notification targets be private or loopback addresses, and plain http.
	AllowPrivateNotifications bool
	// NotificationPoster sends a target's test message; nil answers test requests 501.
	NotificationPoster NotificationPoster
	// TracerProvider, when set, makes every request a server span (continuing a caller's W3C trace context) whose
	// workflow starts and calls to Linear are its children.
	TracerProvider trace.TracerProvider
}

func (c *Config) setDefaults() {
	if c.TaskQueue == "" {
		c.TaskQueue = "linsync"
	}
	if c.WebhookTolerance == 0 {
		c.WebhookTolerance = 60 * time.Second
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 1 << 20
	}
	if c.SecretCacheTTL == 0 {
		c.SecretCacheTTL = 30 * time.Second
	}
	if c.StartTimeout == 0 {
		c.StartTimeout = 2 * time.Second
	}
	if c.WebhookSecretGrace == 0 {
		c.WebhookSecretGrace = time.Hour
	}
	if c.DryRunDeadline == 0 {
		c.DryRunDeadline = 20 * time.Second
	}
	if c.GatewayReserve == 0 {
		c.GatewayReserve = defaultGatewayReserve
	}
	if c.GatewayMaxWait == 0 {
		c.GatewayMaxWait = defaultGatewayWait
	}
	if c.RetryHorizon == 0 {
		c.RetryHorizon = linsync.DefaultRetryHorizon
	}
	if c.DispatchWorkers == 0 {
		c.DispatchWorkers = 16
	}
	if c.DispatchQueue == 0 {
		c.DispatchQueue = 4096
	}
	if c.InboxWriters == 0 {
		c.InboxWriters = 1
	}
}

// Server serves linsync's HTTP API.
type Server struct {
	cfg      Config
	db       *postgres.DB
	temporal client.Client
	// linear makes the API's Linear clients (the worker has its own, of the same factory).
	linear *linear.Clients
	// start starts workflows on the task queue, with the settings their inputs carry.
	start   workflows.Starter
	log     *slog.Logger
	metrics *metrics
	engine  *gin.Engine
	now     func() time.Time
	secrets *verifierCache
	// claims are the organizations' team claims (team id → workspace id), cached like the secrets (storecache.go).
	claims *storeCache[map[string]string]
	// gateway is the agent gateway's shared state (gateway.go).
	gateway gateway
	// writer writes accepted deliveries to the inbox in groups, and dispatch starts their workflows right after
	// the 200 (inbox.go).
	writer   *groupWriter
	dispatch *dispatcher
}

// New returns a Server. reg receives the API's metrics, which OpsHandler serves on the operations listener.
func New(cfg Config, db *postgres.DB, tc client.Client, log *slog.Logger, reg prometheus.Registerer) (*Server, error) {
	cfg.setDefaults()
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, db: db, temporal: tc, log: log, metrics: m, now: time.Now,
		start: workflows.Starter{Client: tc, TaskQueue: cfg.TaskQueue, LinearMaxAttempts: cfg.LinearMaxAttempts,
			ReconcileEvery: cfg.ReconcileEvery}}
	s.secrets = newVerifierCache(db, cfg.SecretCacheTTL, s.now)
	s.claims = newStoreCache(db.TeamClaims, cfg.SecretCacheTTL, s.now)
	s.writer = newGroupWriter(db.PutInboxBatch, cfg.InboxWriters)
	s.dispatch = newDispatcher(s.start.StartInbox, db.MarkInboxStarted, db.ReleaseInbox, cfg.DispatchWorkers, cfg.DispatchQueue,
		cfg.StartTimeout, log, m.dispatched, s.writer.busy)
	// An API request waits on Linear for at most 10 s per call.
	s.linear = &linear.Clients{Store: db, Endpoint: cfg.LinearEndpoint, HTTPClient: cfg.LinearHTTPClient,
		Timeout: 10 * time.Second, Metrics: cfg.LinearMetrics, OAuth: cfg.OAuth, TracerProvider: cfg.TracerProvider}

	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.ContextWithFallback = true
	proxies := make([]string, 0, len(cfg.TrustedProxies))
	for _, p := range cfg.TrustedProxies {
		proxies = append(proxies, p.String())
	}
	// Gin trusts every proxy by default; trust only the configured ones (none unless set).
	if err := e.SetTrustedProxies(proxies); err != nil {
		return nil, err
	}
	// Only X-Forwarded-For, which a proxy appends to: Gin would also believe X-Real-IP, which many proxies pass
	// through from the client untouched.
	e.RemoteIPHeaders = []string{"X-Forwarded-For"}
	if cfg.TracerProvider != nil {
		e.Use(otelgin.Middleware("linsync", otelgin.WithTracerProvider(cfg.TracerProvider),
			otelgin.WithPropagators(propagation.TraceContext{})))
	}
	e.Use(s.recoverer(), s.requestLog())
	e.HandleMethodNotAllowed = true
	e.NoRoute(func(c *gin.Context) {
		s.writeError(c, linsync.Errorf(linsync.ENOTFOUND, "no route for %s", c.Request.URL.Path))
	})
	e.NoMethod(func(c *gin.Context) {
		writeJSONError(c, http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed", "")
	})

	e.GET("/healthz", (&ops{}).handleHealthz) // readiness and metrics are on the operations listener (OpsHandler)
	if err := serveOpenAPI(e); err != nil {
		return nil, err
	}
	s.registerCodecRoutes(e)
	e.POST("/webhooks/linear", s.handleLinearWebhook)
	e.POST("/webhooks/linear/:workspace", s.handleLinearWebhook)
	e.POST("/webhooks/linear-app", s.handleLinearAppWebhook) // the OAuth application's webhook (webhooks_app.go)

	v1 := e.Group("/v1")
	v1.POST("/workspaces", s.requireBootstrap, s.handleCreateWorkspace)
	ws := v1.Group("/workspaces/:ws")
	admin := s.authorize(linsync.ScopeAdmin)
	ws.GET("", admin, s.handleGetWorkspace)
	ws.POST("/tokens", admin, s.handleCreateToken)
	ws.GET("/tokens", admin, s.handleListTokens)
	ws.DELETE("/tokens/:id", admin, s.handleRevokeToken)
	ws.POST("/integrations/linear/connect", admin, s.handleConnectLinear)
	ws.GET("/integrations/linear", admin, s.handleGetLinear)
	ws.PATCH("/integrations/linear", admin, s.handleUpdateLinearDefaults)
	ws.POST("/integrations/linear/validate", admin, s.handleValidateLinear)
	ws.GET("/integrations/linear/claimed-teams", admin, s.handleGetTeamClaims)
	ws.PUT("/integrations/linear/claimed-teams", admin, s.handlePutTeamClaims)
	ws.GET("/integrations/linear/teams", admin, s.handleLinearTeams)
	s.registerAccessRoutes(v1, ws)
	s.registerQuestionRoutes(ws)
	s.registerEventRoutes(ws)
	s.registerDeadLetterRoutes(ws)
	s.registerSyncStatusRoutes(ws)
	s.registerGatewayRoutes(ws)
	s.registerNotificationRoutes(ws)
	s.engine = e
	return s, nil
}

// Mount serves h at prefix and every path below it, behind the API's own middleware (request log, traces, recovery).
// cmd/linsync mounts the operator console (package console) here; the console calls the API back in-process.
// Call it before serving.
func (s *Server) Mount(prefix string, h http.Handler) {
	s.engine.Any(prefix, gin.WrapH(h))
	s.engine.Any(prefix+"/*path", gin.WrapH(h))
}

// Routes lists every route the server serves, so tests can walk them all.
func (s *Server) Routes() gin.RoutesInfo { return s.engine.Routes() }

// Handler returns the HTTP handler.
func (s *Server) Handler() http.Handler { return s.engine }

// ListenAndServe serves the API on addr until ctx ends, then shuts down gracefully within grace and stops the
// dispatcher.
func (s *Server) ListenAndServe(ctx context.Context, addr string, grace time.Duration) error {
	defer s.Close()
	return Serve(ctx, s.log, addr, s.engine, grace)
}

// Close stops the dispatcher once the requests are done: starts in flight finish and are marked; what is still
// queued is in the inbox, where the drainer finds it.
func (s *Server) Close() {
	s.writer.close()
	s.dispatch.close()
}

// Serve serves h on addr until ctx ends, then stops accepting connections and lets requests in flight finish
// within grace.
func Serve(ctx context.Context, log *slog.Logger, addr string, h http.Handler, grace time.Duration) error {
	srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 15 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Info("http server listening", "addr", addr)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	log.Info("http server shutting down")
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// statusOf maps an error code to its HTTP status: the one place that does so.
var statusOf = map[string]int{
	linsync.ECONFLICT:       http.StatusConflict,
	linsync.EINVALID:        http.StatusBadRequest,
	linsync.EEXPIRED:        http.StatusBadRequest,
	linsync.ENOTFOUND:       http.StatusNotFound,
	linsync.EUNAUTHORIZED:   http.StatusUnauthorized,
	linsync.EFORBIDDEN:      http.StatusForbidden,
	linsync.EUNAVAILABLE:    http.StatusServiceUnavailable,
	linsync.ETOOLARGE:       http.StatusRequestEntityTooLarge,
	linsync.EUNPROCESSABLE:  http.StatusUnprocessableEntity,
	linsync.ENOTIMPLEMENTED: http.StatusNotImplemented,
	linsync.EINTERNAL:       http.StatusInternalServerError,
	linsync.EGONE:           http.StatusGone,
}

// writeError answers with the error's status and {"error":{"code","message","field"}}. Internal errors are logged
// and shown to the caller only as "internal error".
func (s *Server) writeError(c *gin.Context, err error) {
	code := linsync.ErrorCode(err)
	if code == linsync.EINTERNAL && postgres.IsUnavailable(err) {
		s.log.WarnContext(c, "database unavailable", "path", c.FullPath(), "err", err)
		err, code = linsync.Errorf(linsync.EUNAVAILABLE, "database unavailable; retry later"), linsync.EUNAVAILABLE
	}
	status, ok := statusOf[code]
	if !ok {
		status = http.StatusInternalServerError
	}
	if code == linsync.EINTERNAL {
		s.log.ErrorContext(c, "request failed", "path", c.FullPath(), "err", err)
	}
	var field string
	var e *linsync.Error
	if errors.As(err, &e) {
		field = e.Field
	}
	writeJSONError(c, status, code, linsync.ErrorMessage(err), field)
}

func writeJSONError(c *gin.Context, status int, code, message, field string) {
	body := gin.H{"code": code, "message": message}
	if field != "" {
		body["field"] = field
	}
	c.AbortWithStatusJSON(status, gin.H{"error": body})
}

func (s *Server) recoverer() gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			if r := recover(); r != nil {
				s.log.ErrorContext(c, "panic in handler", "path", c.FullPath(), "panic", r)
				writeJSONError(c, http.StatusInternalServerError, linsync.EINTERNAL, "internal error", "")
			}
		}()
		c.Next()
	}
}

// requestLog logs one line per request: never headers or bodies, which may carry secrets.
func (s *Server) requestLog() gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		if c.Request.URL.Path == "/metrics" || c.Request.URL.Path == "/healthz" {
			return
		}
		s.log.LogAttrs(c, slog.LevelInfo, "http request",
			slog.String("method", c.Request.Method),
			slog.String("route", c.FullPath()),
			slog.Int("status", c.Writer.Status()),
			slog.Duration("duration", time.Since(start)),
			slog.String("remote_ip", c.ClientIP()),
		)
	}
}
