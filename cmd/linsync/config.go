package main

import (
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/envconfig"

	"github.com/linsync/linsync/linear"
)

// Config is all of linsync's configuration, read once from the environment (see the README's table).
type Config struct {
	HTTPAddr string
	// OpsAddr is the operations listener: health, readiness and metrics, kept off the public API.
	OpsAddr       string
	DatabaseURL   string
	SecretsKeyURL string
	// SecretsPreviousKeyURLs are key-encryption keys rotated out, still used to decrypt what they encrypted.
	SecretsPreviousKeyURLs []string
	// CodecToken is the operators' bearer token for /codec/encode and /codec/decode.
	CodecToken string
	// codecAllowLoopback lets the dev stack's Temporal UI use the codec endpoint without a token, and
	// extraCodecOrigins are its origins (dev only).
	codecAllowLoopback bool
	extraCodecOrigins  []string
	TaskQueue          string
	WebhookTolerance   time.Duration
	// WebhookRetryHorizon is how old an unseen signed webhook body may be, and how long content records are kept.
	WebhookRetryHorizon time.Duration
	WebhookAllowedIPs   []netip.Prefix
	TrustedProxies      []netip.Prefix
	StartTimeout        time.Duration
	ShutdownGrace       time.Duration
	LogLevel            slog.Level
	LogFormat           string
	TemporalUIURL       string
	LinearAPIURL        string
	LinearSchema        string
	BootstrapToken      string
	LinearMaxAttempts   int
	// AllowPrivateCallbacks lets callbacks to the Q&A app reach private and loopback addresses.
	AllowPrivateCallbacks bool
	// AllowPrivateNotifications lets notification targets be, and messages reach, private and loopback addresses.
	AllowPrivateNotifications bool
	// ReconcileInterval is how often each connected workspace is reconciled unless it sets its own interval.
	ReconcileInterval time.Duration
	// PublicURL is the base URL Linear reaches linsync at; when set, connecting registers linsync's webhook.
	PublicURL          string
	WebhookSecretGrace time.Duration
	// OAuth is Linear's OAuth application; ClientID "" disables connecting by OAuth.
	OAuth linear.OAuthConfig
	// OAuthWebhookSecret verifies the OAuth application's own webhook (OAuthApp revoked); "" turns its route off.
	OAuthWebhookSecret string
	// Temporal holds the client options from the SDK's standard TEMPORAL_* variables.
	Temporal client.Options
	// GatewayReserve is the share of every Linear rate-limit window the agent gateway leaves for linsync's own work.
	GatewayReserve float64
	// GatewayMaxWait bounds how long an agent may wait for a held request's outcome (Prefer: wait=N).
	GatewayMaxWait time.Duration
	// GatewayMaxResponseBytes bounds Linear's answer to an agent's request.
	GatewayMaxResponseBytes int64
	// GatewayAuditAsync lets allowed calls' audit entries commit without waiting for the disk.
	GatewayAuditAsync bool
	// Tracing is the OpenTelemetry trace export, from the standard OTEL_* variables; off unless an OTLP endpoint is set.
	Tracing TracingConfig
	// Set names the variables the environment sets, as opposed to their defaults: `dev` fills in only what is not
	// set (its own Temporal server, the fake Linear, private callbacks).
	Set map[string]bool
}

// ToolConfig is the configuration of the commands that do not run the service, so that a broken service
// configuration does not stop them: dlq, which calls a running linsync through its API, and fake-linear.
type ToolConfig struct {
	APIURL    string
	Token     string
	Workspace string
	// LinearSchema is fake-linear's LINEAR_SCHEMA.
	LinearSchema string
}

// envVar documents one variable; the README's configuration table lists the same.
type envVar struct {
	name, def string
}

var (
	envHTTPAddr         = envVar{"LINSYNC_HTTP_ADDR", ":8080"}
	envOpsAddr          = envVar{"LINSYNC_OPS_ADDR", ":9090"}
	envPreviousKeyURLs  = envVar{"LINSYNC_SECRETS_PREVIOUS_KEY_URLS", ""}
	envCodecToken       = envVar{"LINSYNC_CODEC_TOKEN", ""}
	envDatabaseURL      = envVar{"DATABASE_URL", "postgres://postgres@localhost:5432/linsync?sslmode=disable"}
	envSecretsKeyURL    = envVar{"LINSYNC_SECRETS_KEY_URL", ""}
	envTaskQueue        = envVar{"LINSYNC_TASK_QUEUE", "linsync"}
	envWebhookTolerance = envVar{"LINSYNC_WEBHOOK_TOLERANCE", "60s"}
	envRetryHorizon     = envVar{"LINSYNC_WEBHOOK_RETRY_HORIZON", "8h"}
	envAllowedIPs       = envVar{"LINSYNC_WEBHOOK_ALLOWED_IPS", ""}
	envTrustedProxies   = envVar{"LINSYNC_TRUSTED_PROXIES", ""}
	envStartTimeout     = envVar{"LINSYNC_START_TIMEOUT", "2s"}
	envShutdownGrace    = envVar{"LINSYNC_SHUTDOWN_GRACE", "20s"}
	envLogLevel         = envVar{"LINSYNC_LOG_LEVEL", "info"}
	envLogFormat        = envVar{"LINSYNC_LOG_FORMAT", "json"}
	envTemporalUIURL    = envVar{"LINSYNC_TEMPORAL_UI_URL", "http://localhost:8233"}
	envLinearAPIURL     = envVar{"LINEAR_API_URL", "https://api.linear.app/graphql"}
	envLinearSchema     = envVar{"LINEAR_SCHEMA", ""} // empty: the schema embedded in the binary
	envBootstrapToken   = envVar{"LINSYNC_BOOTSTRAP_TOKEN", ""}
	envLinearAttempts   = envVar{"LINSYNC_LINEAR_MAX_ATTEMPTS", "5"}
	envPrivateCallbacks = envVar{"LINSYNC_ALLOW_PRIVATE_CALLBACKS", "false"}
	envPrivateNotify    = envVar{"LINSYNC_ALLOW_PRIVATE_NOTIFICATIONS", "false"}
	envReconcileEvery   = envVar{"LINSYNC_RECONCILE_INTERVAL", "10m"}
	envPublicURL        = envVar{"LINSYNC_PUBLIC_URL", ""}
	envSecretGrace      = envVar{"LINSYNC_WEBHOOK_SECRET_GRACE", "1h"}
	envOAuthClientID    = envVar{"LINEAR_OAUTH_CLIENT_ID", ""}
	envOAuthSecret      = envVar{"LINEAR_OAUTH_CLIENT_SECRET", ""}
	envOAuthRedirect    = envVar{"LINEAR_OAUTH_REDIRECT_URL", ""} // default: LINSYNC_PUBLIC_URL + /v1/oauth/linear/callback
	envOAuthScopes      = envVar{"LINEAR_OAUTH_SCOPES", ""}       // default: read,write, and admin when LINSYNC_PUBLIC_URL is set
	envOAuthActor       = envVar{"LINEAR_OAUTH_ACTOR", "user"}
	envOAuthAuthorize   = envVar{"LINEAR_OAUTH_AUTHORIZE_URL", linear.DefaultAuthorizeURL}
	envOAuthToken       = envVar{"LINEAR_OAUTH_TOKEN_URL", linear.DefaultTokenURL}
	envOAuthRevoke      = envVar{"LINEAR_OAUTH_REVOKE_URL", linear.DefaultRevokeURL}
	envOAuthWebhook     = envVar{"LINEAR_OAUTH_WEBHOOK_SECRET", ""}
	envGatewayReserve   = envVar{"LINSYNC_GATEWAY_RESERVE", "0.2"}
	envGatewayMaxWait   = envVar{"LINSYNC_GATEWAY_MAX_WAIT", "60s"}
	envGatewayMaxBytes  = envVar{"LINSYNC_GATEWAY_MAX_RESPONSE_BYTES", "8388608"}
	envGatewayAsync     = envVar{"LINSYNC_GATEWAY_AUDIT_ASYNC", "false"}
	// The SDK reads TEMPORAL_*; linsync only asks whether the address is set.
	envTemporalAddress = envVar{"TEMPORAL_ADDRESS", ""}

	// OpenTelemetry's standard variables. The OTLP exporter reads the rest of its own (headers, certificates,
	// timeouts, OTEL_EXPORTER_OTLP_TRACES_*) when cmd creates it.
	envOTLPEndpoint       = envVar{"OTEL_EXPORTER_OTLP_ENDPOINT", ""}
	envOTLPTracesEndpoint = envVar{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", ""}
	envOTLPProtocol       = envVar{"OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"}
	envOTLPTracesProtocol = envVar{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", ""}
	envOTelServiceName    = envVar{"OTEL_SERVICE_NAME", "linsync"}
	envOTelSDKDisabled    = envVar{"OTEL_SDK_DISABLED", "false"}
	// The dlq commands' variables (ToolConfig).
	envAPIURL    = envVar{"LINSYNC_API_URL", "http://localhost:8080"}
	envToken     = envVar{"LINSYNC_TOKEN", ""}
	envWorkspace = envVar{"LINSYNC_WORKSPACE", ""}
)

// LoadToolConfig reads the environment of the commands that do not run the service.
func LoadToolConfig() ToolConfig {
	return ToolConfig{APIURL: envAPIURL.get(), Token: envToken.get(), Workspace: envWorkspace.get(),
		LinearSchema: envLinearSchema.get()}
}

func (v envVar) get() string {
	if v.set() {
		return os.Getenv(v.name)
	}
	return v.def
}

// set reports whether the environment gives the variable a value (empty counts as unset).
func (v envVar) set() bool {
	s, ok := os.LookupEnv(v.name)
	return ok && s != ""
}

// LoadConfig reads the environment. Every problem is reported at once, naming the variable but never its value.
func LoadConfig() (Config, error) {
	var errs []string
	dur := func(v envVar) time.Duration {
		d, err := time.ParseDuration(v.get())
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Sprintf("%s must be a positive duration such as %s", v.name, v.def))
		}
		return d
	}
	prefixes := func(v envVar) []netip.Prefix {
		var out []netip.Prefix
		for _, f := range strings.FieldsFunc(v.get(), func(r rune) bool { return r == ',' || r == ' ' }) {
			if f == "linear" && v == envAllowedIPs {
				out = append(out, linear.WebhookSenders()...)
				continue
			}
			p, err := parsePrefix(f)
			if err != nil {
				errs = append(errs, fmt.Sprintf("%s: %q is not an IP address or CIDR", v.name, f))
				continue
			}
			out = append(out, p)
		}
		return out
	}
	cfg := Config{
		HTTPAddr:                  envHTTPAddr.get(),
		OpsAddr:                   envOpsAddr.get(),
		DatabaseURL:               envDatabaseURL.get(),
		SecretsKeyURL:             envSecretsKeyURL.get(),
		SecretsPreviousKeyURLs:    strings.FieldsFunc(envPreviousKeyURLs.get(), func(r rune) bool { return r == ',' || r == ' ' }),
		CodecToken:                envCodecToken.get(),
		TaskQueue:                 envTaskQueue.get(),
		WebhookTolerance:          dur(envWebhookTolerance),
		WebhookRetryHorizon:       dur(envRetryHorizon),
		WebhookAllowedIPs:         prefixes(envAllowedIPs),
		TrustedProxies:            prefixes(envTrustedProxies),
		StartTimeout:              dur(envStartTimeout),
		ShutdownGrace:             dur(envShutdownGrace),
		LogFormat:                 envLogFormat.get(),
		TemporalUIURL:             strings.TrimRight(envTemporalUIURL.get(), "/"),
		LinearAPIURL:              envLinearAPIURL.get(),
		LinearSchema:              envLinearSchema.get(),
		BootstrapToken:            envBootstrapToken.get(),
		LinearMaxAttempts:         positiveInt(envLinearAttempts, &errs),
		AllowPrivateCallbacks:     boolVar(envPrivateCallbacks, &errs),
		AllowPrivateNotifications: boolVar(envPrivateNotify, &errs),
		ReconcileInterval:         dur(envReconcileEvery),
		PublicURL:                 strings.TrimRight(envPublicURL.get(), "/"),
		WebhookSecretGrace:        dur(envSecretGrace),
		OAuth: linear.OAuthConfig{
			ClientID: envOAuthClientID.get(), ClientSecret: envOAuthSecret.get(), RedirectURL: envOAuthRedirect.get(),
			Scopes: strings.FieldsFunc(envOAuthScopes.get(), func(r rune) bool { return r == ',' || r == ' ' }),
			Actor:  envOAuthActor.get(), AuthorizeURL: envOAuthAuthorize.get(), TokenURL: envOAuthToken.get(),
			RevokeURL: envOAuthRevoke.get(),
		},
		OAuthWebhookSecret: envOAuthWebhook.get(),
		GatewayMaxWait:     dur(envGatewayMaxWait),
		GatewayAuditAsync:  boolVar(envGatewayAsync, &errs),
	}
	if r, err := strconv.ParseFloat(envGatewayReserve.get(), 64); err != nil || r <= 0 || r >= 1 {
		errs = append(errs, envGatewayReserve.name+" must be a fraction above 0 and under 1, such as 0.2")
	} else {
		cfg.GatewayReserve = r
	}
	if n, err := strconv.ParseInt(envGatewayMaxBytes.get(), 10, 64); err != nil || n < 1024 || n > 1<<30 {
		errs = append(errs, envGatewayMaxBytes.name+" must be a number of bytes from 1024 to 1073741824")
	} else {
		cfg.GatewayMaxResponseBytes = n
	}
	if len(cfg.OAuth.Scopes) == 0 {
		cfg.OAuth.Scopes = defaultOAuthScopes(cfg.PublicURL)
	}
	if cfg.HTTPAddr == cfg.OpsAddr {
		errs = append(errs, envOpsAddr.name+" must differ from "+envHTTPAddr.name+": metrics stay off the public listener")
	}
	if cfg.WebhookRetryHorizon > 0 && cfg.WebhookRetryHorizon < cfg.WebhookTolerance {
		errs = append(errs, envRetryHorizon.name+" must be at least "+envWebhookTolerance.name)
	}
	if cfg.OAuth.RedirectURL == "" && cfg.PublicURL != "" {
		cfg.OAuth.RedirectURL = cfg.PublicURL + "/v1/oauth/linear/callback"
	}
	if cfg.OAuth.ClientID != "" && cfg.OAuth.RedirectURL == "" {
		errs = append(errs, envOAuthRedirect.name+" (or "+envPublicURL.name+") is required with "+envOAuthClientID.name)
	}
	if a := cfg.OAuth.Actor; a != "user" && a != "app" {
		errs = append(errs, envOAuthActor.name+" must be user or app")
	}
	if err := cfg.LogLevel.UnmarshalText([]byte(envLogLevel.get())); err != nil {
		errs = append(errs, envLogLevel.name+" must be debug, info, warn or error")
	}
	if cfg.LogFormat != "json" && cfg.LogFormat != "text" {
		errs = append(errs, envLogFormat.name+" must be json or text")
	}
	cfg.Tracing = TracingConfig{
		Enabled:     (envOTLPEndpoint.get() != "" || envOTLPTracesEndpoint.get() != "") && !boolVar(envOTelSDKDisabled, &errs),
		Protocol:    envOTLPProtocol.get(),
		ServiceName: envOTelServiceName.get(),
	}
	if p := envOTLPTracesProtocol.get(); p != "" {
		cfg.Tracing.Protocol = p
	}
	if p := cfg.Tracing.Protocol; p != "grpc" && p != "http/protobuf" {
		errs = append(errs, envOTLPProtocol.name+" must be grpc or http/protobuf")
	}
	topts, err := envconfig.LoadDefaultClientOptions()
	if err != nil {
		errs = append(errs, "TEMPORAL_* configuration: "+err.Error())
	}
	cfg.Temporal = topts
	cfg.Set = map[string]bool{}
	for _, v := range []envVar{envLinearAPIURL, envPrivateCallbacks, envPrivateNotify, envTemporalAddress, envHTTPAddr, envOpsAddr} {
		if v.set() {
			cfg.Set[v.name] = true
		}
	}
	if len(errs) > 0 {
		return cfg, fmt.Errorf("invalid configuration:\n  %s", strings.Join(errs, "\n  "))
	}
	return cfg, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		return netip.ParsePrefix(s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

// defaultOAuthScopes are the scopes linsync asks Linear for when LINEAR_OAUTH_SCOPES is not set: read (viewer,
// teams, issues and comments for sync and reconciliation) and write (issues and comments), and admin only when
// linsync manages its own webhooks (a public URL is set), since creating, deleting and re-enabling webhooks is all
// that needs it.
func defaultOAuthScopes(publicURL string) []string {
	if publicURL == "" {
		return []string{"read", "write"}
	}
	return []string{"read", "write", "admin"}
}

// requireKey reports a clear error when a command that stores or reads secrets has no key.
func (c Config) requireKey() error {
	if c.SecretsKeyURL == "" {
		return fmt.Errorf("%s is not set: secrets are encrypted at rest and need a key URL (for example base64key://… locally; `linsync dev` makes one)", envSecretsKeyURL.name)
	}
	return nil
}

// oauthClient returns Linear's OAuth client, nil when no application is configured.
func (c Config) oauthClient() (*linear.OAuthClient, error) {
	if c.OAuth.ClientID == "" {
		return nil, nil
	}
	return linear.NewOAuthClient(c.OAuth)
}

func positiveInt(v envVar, errs *[]string) int {
	n, err := strconv.Atoi(v.get())
	if err != nil || n < 1 || n > 100 {
		*errs = append(*errs, fmt.Sprintf("%s must be a whole number from 1 to 100", v.name))
	}
	return n
}

func boolVar(v envVar, errs *[]string) bool {
	b, err := strconv.ParseBool(v.get())
	if err != nil {
		*errs = append(*errs, fmt.Sprintf("%s must be true or false", v.name))
	}
	return b
}

// childEnv is the environment of a process this one starts (the chaos run's linsync processes, the bench's Express
// peer): this process's own, with the settings given after it, which win.
func childEnv(settings ...string) []string {
	return append(os.Environ(), settings...)
}
