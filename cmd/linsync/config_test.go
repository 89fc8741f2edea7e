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
