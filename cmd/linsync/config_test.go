package main

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestLoadConfigDefaults(t *testing.T) {
	t.Setenv("LINSYNC_WEBHOOK_TOLERANCE", "")
	cfg, err := LoadConfig()
	require.NoError(t, err)
	require.Equal(t, ":8080", cfg.HTTPAddr)
	require.Equal(t, time.Minute, cfg.WebhookTolerance)
	require.Equal(t, "linsync", cfg.TaskQueue)
	require.Empty(t, cfg.WebhookAllowedIPs)
}

func TestLoadConfigParsesAndReportsEveryProblem(t *testing.T) {
	t.Setenv("LINSYNC_WEBHOOK_ALLOWED_IPS", "35.231.147.226, 10.0.0.0/8")
	t.Setenv("LINSYNC_TRUSTED_PROXIES", "127.0.0.1")
	t.Setenv("LINSYNC_WEBHOOK_TOLERANCE", "90s")
	cfg, err := LoadConfig()
	require.NoError(t, err)
	require.Equal(t, []netip.Prefix{netip.MustParsePrefix("35.231.147.226/32"), netip.MustParsePrefix("10.0.0.0/8")}, cfg.WebhookAllowedIPs)
	require.Equal(t, 90*time.Second, cfg.WebhookTolerance)

	t.Setenv("LINSYNC_WEBHOOK_TOLERANCE", "soon")
	t.Setenv("LINSYNC_TRUSTED_PROXIES", "not-an-ip")
	t.Setenv("LINSYNC_LOG_LEVEL", "loud")
	_, err = LoadConfig()
	require.ErrorContains(t, err, "LINSYNC_WEBHOOK_TOLERANCE")
	require.ErrorContains(t, err, "LINSYNC_TRUSTED_PROXIES")
	require.ErrorContains(t, err, "LINSYNC_LOG_LEVEL")
}

func TestRequireKeyNamesTheVariable(t *testing.T) {
	require.ErrorContains(t, Config{}.requireKey(), "LINSYNC_SECRETS_KEY_URL")
	require.NoError(t, Config{SecretsKeyURL: "base64key://x"}.requireKey())
}

func TestLinearMaxAttempts(t *testing.T) {
	t.Setenv("LINSYNC_LINEAR_MAX_ATTEMPTS", "")
	cfg, err := LoadConfig()
	require.NoError(t, err)
	require.Equal(t, 5, cfg.LinearMaxAttempts, "never 0: Temporal would retry forever")
	t.Setenv("LINSYNC_LINEAR_MAX_ATTEMPTS", "3")
	cfg, err = LoadConfig()
	require.NoError(t, err)
	require.Equal(t, 3, cfg.LinearMaxAttempts)
	t.Setenv("LINSYNC_LINEAR_MAX_ATTEMPTS", "0")
	_, err = LoadConfig()
	require.ErrorContains(t, err, "LINSYNC_LINEAR_MAX_ATTEMPTS")
}

func TestAllowedIPsLinearPreset(t *testing.T) {
	t.Setenv("LINSYNC_WEBHOOK_ALLOWED_IPS", "linear, 10.0.0.0/8")
	cfg, err := LoadConfig()
	require.NoError(t, err)
	// Written out here rather than taken from the linear package, so a change to the preset shows in review.
	for _, want := range []string{"35.231.147.226/32", "35.243.134.228/32", "34.140.253.14/32", "34.38.87.206/32", "10.0.0.0/8"} {
		require.Contains(t, cfg.WebhookAllowedIPs, netip.MustParsePrefix(want))
	}
	require.NotContains(t, cfg.WebhookAllowedIPs, netip.MustParsePrefix("35.231.147.227/32"))

	t.Setenv("LINSYNC_TRUSTED_PROXIES", "linear")
	_, err = LoadConfig()
	require.ErrorContains(t, err, "LINSYNC_TRUSTED_PROXIES", "the preset names Linear's senders, not proxies")
}

// TestConfigSetNamesWhatTheEnvironmentSets: dev fills in only what the environment leaves unset, even when it is
// set to the default.
func TestConfigSetNamesWhatTheEnvironmentSets(t *testing.T) {
	t.Setenv("LINEAR_API_URL", "https://api.linear.app/graphql")
	t.Setenv("TEMPORAL_ADDRESS", "")
	cfg, err := LoadConfig()
	require.NoError(t, err)
	require.True(t, cfg.Set["LINEAR_API_URL"])
	require.False(t, cfg.Set["TEMPORAL_ADDRESS"], "empty is unset")
	require.False(t, cfg.Set["LINSYNC_ALLOW_PRIVATE_CALLBACKS"])
}

func TestTracingFromOTelVariables(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	cfg, err := LoadConfig()
	require.NoError(t, err)
	require.False(t, cfg.Tracing.Enabled, "off unless an OTLP endpoint is set")
	tp, shutdown, err := newTracerProvider(t.Context(), cfg.Tracing, "api")
	require.NoError(t, err)
	require.Nil(t, tp)
	require.NoError(t, shutdown(t.Context()))

	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:4318/v1/traces")
	t.Setenv("OTEL_SERVICE_NAME", "linsync-eu")
	cfg, err = LoadConfig()
	require.NoError(t, err)
	require.Equal(t, TracingConfig{Enabled: true, Protocol: "http/protobuf", ServiceName: "linsync-eu"}, cfg.Tracing)
	tp, shutdown, err = newTracerProvider(t.Context(), cfg.Tracing, "api")
	require.NoError(t, err)
	require.NotNil(t, tp)
	require.NoError(t, shutdown(t.Context()))

	t.Setenv("OTEL_SDK_DISABLED", "true")
	cfg, err = LoadConfig()
	require.NoError(t, err)
	require.False(t, cfg.Tracing.Enabled)

	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "carrier-pigeon")
	_, err = LoadConfig()
	require.ErrorContains(t, err, "OTEL_EXPORTER_OTLP_PROTOCOL")
}

func TestOpsListenerIsApartFromTheAPI(t *testing.T) {
	t.Setenv("LINSYNC_OPS_ADDR", "")
	t.Setenv("LINSYNC_HTTP_ADDR", "")
	cfg, err := LoadConfig()
	require.NoError(t, err)
	require.Equal(t, ":9090", cfg.OpsAddr)
	t.Setenv("LINSYNC_OPS_ADDR", ":8080")
	_, err = LoadConfig()
	require.ErrorContains(t, err, "LINSYNC_OPS_ADDR must differ from LINSYNC_HTTP_ADDR")
}

// Linear's admin scope lets a token create webhooks in the organization: linsync asks for it only when it manages
// its own webhooks (LINSYNC_PUBLIC_URL set), unless the operator names the scopes.
func TestOAuthScopesAskForAdminOnlyWhenManagingWebhooks(t *testing.T) {
	t.Setenv("LINEAR_OAUTH_SCOPES", "")
	t.Setenv("LINSYNC_PUBLIC_URL", "")
	cfg, err := LoadConfig()
	require.NoError(t, err)
	require.Equal(t, []string{"read", "write"}, cfg.OAuth.Scopes)
	t.Setenv("LINSYNC_PUBLIC_URL", "https://linsync.example.com")
	cfg, err = LoadConfig()
	require.NoError(t, err)
	require.Equal(t, []string{"read", "write", "admin"}, cfg.OAuth.Scopes)
	t.Setenv("LINEAR_OAUTH_SCOPES", "read,issues:create")
	cfg, err = LoadConfig()
	require.NoError(t, err)
	require.Equal(t, []string{"read", "issues:create"}, cfg.OAuth.Scopes)
}

func TestPreviousKeysAndCodecToken(t *testing.T) {
	t.Setenv("LINSYNC_SECRETS_PREVIOUS_KEY_URLS", "base64key://old1, base64key://old2")
	t.Setenv("LINSYNC_CODEC_TOKEN", "ops-codec")
	cfg, err := LoadConfig()
	require.NoError(t, err)
	require.Equal(t, []string{"base64key://old1", "base64key://old2"}, cfg.SecretsPreviousKeyURLs)
	require.Equal(t, "ops-codec", cfg.CodecToken)
	require.Equal(t, []string{"https://temporal.example.com:8443"}, originOf("https://temporal.example.com:8443/namespaces/default"))
	require.Empty(t, originOf("not a url"))
}

func TestGatewaySettings(t *testing.T) {
	for _, v := range []string{"LINSYNC_GATEWAY_RESERVE", "LINSYNC_GATEWAY_MAX_WAIT", "LINSYNC_GATEWAY_MAX_RESPONSE_BYTES"} {
		t.Setenv(v, "")
	}
	cfg, err := LoadConfig()
	require.NoError(t, err)
	require.Equal(t, 0.2, cfg.GatewayReserve)
	require.Equal(t, time.Minute, cfg.GatewayMaxWait)
	require.EqualValues(t, 8<<20, cfg.GatewayMaxResponseBytes)
	t.Setenv("LINSYNC_GATEWAY_RESERVE", "1.5")
	t.Setenv("LINSYNC_GATEWAY_MAX_WAIT", "never")
	t.Setenv("LINSYNC_GATEWAY_MAX_RESPONSE_BYTES", "12")
	_, err = LoadConfig()
	require.ErrorContains(t, err, "LINSYNC_GATEWAY_RESERVE")
	require.ErrorContains(t, err, "LINSYNC_GATEWAY_MAX_WAIT")
	require.ErrorContains(t, err, "LINSYNC_GATEWAY_MAX_RESPONSE_BYTES")
}
