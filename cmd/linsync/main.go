// Command linsync is linsync's one binary: it serves the API, runs the Temporal worker, migrates the database,
// brings up the local stack and carries the admin commands. It is the only place that reads the environment.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/uber-go/tally/v4"
	tallyprom "github.com/uber-go/tally/v4/prometheus"
	"go.opentelemetry.io/otel/trace"
	"go.temporal.io/sdk/client"
	sdktally "go.temporal.io/sdk/contrib/tally"
	sdklog "go.temporal.io/sdk/log"
	sdkworker "go.temporal.io/sdk/worker"
	"golang.org/x/sync/errgroup"

	"github.com/linsync/linsync/activities"
	"github.com/linsync/linsync/api"
	"github.com/linsync/linsync/console"
	"github.com/linsync/linsync/envelope"
	"github.com/linsync/linsync/linear"
	"github.com/linsync/linsync/postgres"
	"github.com/linsync/linsync/worker"
)

const usage = `linsync keeps Linear in step with the systems around it.

Usage: linsync <command> [flags]

Commands:
  api                 serve the HTTP API (webhooks, /v1, the codec endpoint); health and metrics on LINSYNC_OPS_ADDR
  worker              run the Temporal worker (health and metrics on LINSYNC_OPS_ADDR)
  all                 api and worker in one process
  migrate             apply the embedded database migrations and exit
  dev                 bring up the whole local stack: Temporal dev server with its UI, database, api and worker
  workspace create    create a workspace and register its Linear webhook secret
  fake-linear         run the fake Linear server (schema-checked GraphQL, signed webhooks)
  dlq list|show|replay   inspect and replay dead letters through the API (LINSYNC_API_URL, LINSYNC_TOKEN)
  bench ingest|gateway|host  measure webhook ingest (durable acks against the Express peer, start rate, burst, outage),
                      the agent gateway against calling Linear directly, or one host of 20,000 broken links
  chaos [-reduced]    the chaos ledger: two APIs, two workers, its own Postgres and Temporal, faults; nothing lost or doubled

Configuration comes from the environment; see the README.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "linsync:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stdout, usage)
		return nil
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "fake-linear":
		return runFakeLinear(ctx, LoadToolConfig(), rest, stdout)
	case "dlq":
		return dlqCmd(ctx, LoadToolConfig(), rest, stdout)
	case "chaos":
		// The run configures its own processes; the service's configuration is not needed.
		return chaosCmd(ctx, rest, stdout)
	}
	cfg, err := LoadConfig()
	if err != nil {
		return err
	}
	switch cmd {
	case "api", "worker", "all":
		return serve(ctx, cfg, cmd)
	case "migrate":
		return migrate(ctx, cfg)
	case "dev":
		return dev(ctx, cfg, rest, stdout)
	case "workspace":
		return workspaceCmd(ctx, cfg, rest, os.Stdin, stdout)
	case "bench":
		return benchCmd(ctx, cfg, rest, stdout)
	default:
		return fmt.Errorf("unknown command %q\n\n%s", cmd, usage)
	}
}

func newLogger(cfg Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// deps are the long-lived connections a serving process holds.
type deps struct {
	log      *slog.Logger
	db       *postgres.DB
	temporal client.Client
	registry *prometheus.Registry
	// linearMetrics count the calls to Linear of the api and the worker alike.
	linearMetrics *linear.Metrics
	// tracer is nil when tracing is off.
	tracer trace.TracerProvider
	// codec seals the Temporal payloads of the shared client; the API serves it to operators at /codec.
	codec *envelope.Codec
	// keeper seals the console's session cookies.
	keeper *envelope.Keeper
	close  func()
}

// openStore opens the key keeper of cfg's key URLs and, with it, the database; closeStore releases both.
func openStore(ctx context.Context, cfg Config) (db *postgres.DB, keeper *envelope.Keeper, closeStore func(), err error) {
	keeper, err = envelope.Open(ctx, cfg.SecretsKeyURL, cfg.SecretsPreviousKeyURLs...)
	if err != nil {
		return nil, nil, nil, err
	}
	if db, err = postgres.Open(ctx, cfg.DatabaseURL, keeper); err != nil {
		keeper.Close()
		return nil, nil, nil, err
	}
	return db, keeper, func() { db.Close(); keeper.Close() }, nil
}

func openDeps(ctx context.Context, cfg Config, role string) (*deps, error) {
	log := newLogger(cfg, os.Stdout)
	if err := cfg.requireKey(); err != nil {
		return nil, err
	}
	db, keeper, closeStore, err := openStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	lm, err := linear.NewMetrics(reg)
	if err != nil {
		closeStore()
		return nil, err
	}
	// The inbox's depth and oldest age, read from Postgres at each scrape, once per process whatever its role.
	reg.MustRegister(api.InboxCollector(db))

	tp, shutdownTracing, err := newTracerProvider(ctx, cfg.Tracing, role)
	if err != nil {
		closeStore()
		return nil, err
	}
	topts := cfg.Temporal
	topts.Logger = sdklog.NewStructuredLogger(log.With("component", "temporal"))
	topts.MetricsHandler = temporalMetrics(reg)
	// Payloads (webhook bodies, questions, replies: names, emails, comments) are sealed before they reach Temporal.
	codec := envelope.NewCodec(keeper)
	worker.EncryptPayloads(&topts, codec)
	if tp != nil {
		ti, err := worker.TracingInterceptor(tp)
		if err != nil {
			closeStore()
			return nil, err
		}
		topts.Interceptors = append(topts.Interceptors, ti)
	}
	// A lazy client lets the API start while Temporal is down: webhooks get 503 until it is back.
	tc, err := client.NewLazyClient(topts)
	if err != nil {
		closeStore()
		return nil, fmt.Errorf("create temporal client: %w", err)
	}
	return &deps{log: log, db: db, temporal: tc, registry: reg, linearMetrics: lm, tracer: tp, codec: codec, keeper: keeper, close: func() {
		tc.Close()
		closeStore()
		flush, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := shutdownTracing(flush); err != nil {
			log.Warn("flush traces failed", "err", err)
		}
	}}, nil
}

// temporalMetrics reports the Temporal SDK's metrics (requests, latencies, workflow and activity outcomes) into reg.
func temporalMetrics(reg *prometheus.Registry) client.MetricsHandler {
	reporter := tallyprom.NewReporter(tallyprom.Options{Registerer: reg, Gatherer: reg,
		DefaultTimerType: tallyprom.HistogramTimerType})
	scope, _ := tally.NewRootScope(tally.ScopeOptions{
		CachedReporter:  reporter,
		Separator:       tallyprom.DefaultSeparator,
		SanitizeOptions: &sdktally.PrometheusSanitizeOptions,
	}, time.Second) // tally hands values to the reporter on this interval; 0 would never report a count

	return sdktally.NewMetricsHandler(sdktally.NewPrometheusNamingScope(scope))
}

// serve runs the api, the worker or both until ctx ends.
func serve(ctx context.Context, cfg Config, role string) error {
	d, err := openDeps(ctx, cfg, role)
	if err != nil {
		return err
	}
	defer d.close()
	g, ctx := errgroup.WithContext(ctx)
	oauth, err := cfg.oauthClient()
	if err != nil {
		return err
	}
	if role == "api" || role == "all" {
		srv, err := api.New(api.Config{
			TaskQueue:                 cfg.TaskQueue,
			WebhookTolerance:          cfg.WebhookTolerance,
			RetryHorizon:              cfg.WebhookRetryHorizon,
			StartTimeout:              cfg.StartTimeout,
			AllowedSenders:            cfg.WebhookAllowedIPs,
			TrustedProxies:            cfg.TrustedProxies,
			LinearEndpoint:            cfg.LinearAPIURL,
			BootstrapToken:            cfg.BootstrapToken,
			PublicURL:                 cfg.PublicURL,
			WebhookSecretGrace:        cfg.WebhookSecretGrace,
			OAuth:                     oauth,
			OAuthWebhookSecret:        cfg.OAuthWebhookSecret,
			LinearMetrics:             d.linearMetrics,
			LinearMaxAttempts:         int32(cfg.LinearMaxAttempts),
			ReconcileEvery:            cfg.ReconcileInterval,
			TracerProvider:            d.tracer,
			Codec:                     d.codec,
			CodecToken:                cfg.CodecToken,
			CodecOrigins:              append(originOf(cfg.TemporalUIURL), cfg.extraCodecOrigins...),
			CodecAllowLoopback:        cfg.codecAllowLoopback,
			GatewayReserve:            cfg.GatewayReserve,
			GatewayMaxResponseBytes:   cfg.GatewayMaxResponseBytes,
			GatewayMaxWait:            cfg.GatewayMaxWait,
			GatewayAuditAsync:         cfg.GatewayAuditAsync,
			AllowPrivateNotifications: cfg.AllowPrivateNotifications,
			NotificationPoster:        notificationPoster(cfg.AllowPrivateNotifications),
		}, d.db, d.temporal, d.log, d.registry)
		if err != nil {
			return err
		}
		// The operator console at /console, on the same API: it calls srv's handler in-process with the signed-in
		// admin's token, and seals its session cookie with the envelope key.
		con, err := console.New(console.Options{API: srv.Handler(), Sealer: d.keeper, OAuthEnabled: oauth != nil,
			SecureCookies: strings.HasPrefix(cfg.PublicURL, "https://"), TemporalUIURL: cfg.TemporalUIURL,
			Log: d.log.With("component", "console")})
		if err != nil {
			return err
		}
		srv.Mount(console.Prefix, con)
		g.Go(func() error { return srv.ListenAndServe(ctx, cfg.HTTPAddr, cfg.ShutdownGrace) })
	}
	// Every role serves health, readiness and metrics on the operations listener, never on the public one.
	g.Go(func() error {
		return api.Serve(ctx, d.log, cfg.OpsAddr, api.OpsHandler(d.db, d.temporal, d.registry), cfg.ShutdownGrace)
	})
	if role == "worker" || role == "all" {
		wd := workerDeps(cfg, d, oauth)
		acts, err := worker.NewActivities(wd)
		if err != nil {
			return err
		}
		w := worker.New(d.temporal, cfg.TaskQueue, acts, sdkworker.Options{})
		drainer, err := worker.NewDrainer(wd, d.log.With("component", "inbox"))
		if err != nil {
			return err
		}
		// Starts what the API's dispatcher did not: Temporal was away, or an API died between its 200 and the start.
		g.Go(func() error { return drainer.Run(ctx) })
		g.Go(func() error {
			if err := w.Start(); err != nil {
				return fmt.Errorf("start worker: %w", err)
			}
			d.log.Info("worker started", "task_queue", cfg.TaskQueue)
			worker.EnsureReconcileSchedules(ctx, wd, d.log)
			<-ctx.Done()
			w.Stop() // waits for activities in flight, up to WorkerStopTimeout
			return nil
		})
	}
	err = g.Wait()
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// workerDeps are the worker's dependencies as the configuration asks, for worker.NewActivities.
func workerDeps(cfg Config, d *deps, oauth *linear.OAuthClient) worker.Deps {
	return worker.Deps{
		DB:                d.db,
		Temporal:          d.temporal,
		TaskQueue:         cfg.TaskQueue,
		LinearMaxAttempts: int32(cfg.LinearMaxAttempts),
		ReconcileEvery:    cfg.ReconcileInterval,
		Linear: &linear.Clients{Store: d.db, Endpoint: cfg.LinearAPIURL, Metrics: d.linearMetrics, OAuth: oauth,
			TracerProvider: d.tracer},
		TracerProvider:            d.tracer,
		Metrics:                   d.registry,
		Namespace:                 cfg.Temporal.Namespace,
		TemporalUIURL:             cfg.TemporalUIURL,
		AllowPrivateCallbacks:     cfg.AllowPrivateCallbacks,
		AllowPrivateNotifications: cfg.AllowPrivateNotifications,
		GatewayReserve:            cfg.GatewayReserve,
		GatewayMaxResponseBytes:   cfg.GatewayMaxResponseBytes,
	}
}

// originOf is the origin (scheme://host[:port]) of the Temporal Web UI's URL, the one origin whose pages may call the
// codec endpoint; none when the URL is unusable.
func originOf(rawURL string) []string {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil
	}
	return []string{u.Scheme + "://" + u.Host}
}

func migrate(ctx context.Context, cfg Config) error {
	db, err := postgres.Open(ctx, cfg.DatabaseURL, nil)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.Migrate(ctx); err != nil {
		return err
	}
	newLogger(cfg, os.Stdout).Info("database migrated")
	return nil
}

// notificationPoster sends the API's test messages as the worker sends notifications: through the outbound client
// that refuses private addresses unless allowPrivate, classified the same way, once.
func notificationPoster(allowPrivate bool) api.NotificationPoster {
	hc := activities.PublicHTTPClient(allowPrivate, 10*time.Second)
	return func(ctx context.Context, kind, url string, secret []byte, msgID string, body []byte) (int, error) {
		return activities.PostNotification(ctx, hc, kind, url, secret, msgID, body, time.Now(), 1, rand.Int64N)
	}
}
