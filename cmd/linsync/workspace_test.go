package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/linsync/linsync/envelope"
	"github.com/linsync/linsync/linsynctest"
)

func workspaceTestConfig(t *testing.T) Config {
	t.Helper()
	key, err := envelope.NewLocalKeyURL()
	require.NoError(t, err)
	return Config{SecretsKeyURL: key, DatabaseURL: linsynctest.DatabaseURL(t)}
}

// TestWorkspaceCreateTakesTheSecretFromStdinOrAFile: the webhook secret never travels in a flag (the process list
// and the shell's history would keep it), is never printed back, and an error path never prints the admin token.
func TestWorkspaceCreateTakesTheSecretFromStdinOrAFile(t *testing.T) {
	t.Parallel()
	cfg := workspaceTestConfig(t)
	ctx := t.Context()
	const secret = "lin_wh_from-stdin-7f3a9c"

	var out bytes.Buffer
	err := workspaceCmd(ctx, cfg, []string{"create", "--slug", "flag", "--linear-org", "org-1", "--webhook-secret", secret}, strings.NewReader(""), &out)
	require.ErrorContains(t, err, "--webhook-secret-file")
	require.NotContains(t, err.Error(), secret)

	out.Reset()
	require.NoError(t, workspaceCmd(ctx, cfg, []string{"create", "--slug", "stdin", "--linear-org", "org-1", "--webhook-secret-file", "-"},
		strings.NewReader(secret+"\n"), &out))
	require.NotContains(t, out.String(), secret, "the secret it was given is not printed back")
	require.Contains(t, out.String(), "…3a9c", "only its last four characters")

	db, _, closeStore, err := openStore(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(closeStore)
	vs, err := db.WebhookVerifiersForWorkspace(ctx, "stdin")
	require.NoError(t, err)
	require.Len(t, vs, 1)

	file := filepath.Join(t.TempDir(), "secret")
	require.NoError(t, os.WriteFile(file, []byte(secret), 0o600))
	out.Reset()
	require.NoError(t, workspaceCmd(ctx, cfg, []string{"create", "--slug", "file", "--linear-org", "org-2", "--webhook-secret-file", file},
		strings.NewReader(""), &out))
	require.NotContains(t, out.String(), secret)

	// Storing the webhook fails after the workspace and its admin token exist (Postgres refuses a NUL in text): the
	// error names no token, and the half-made workspace is gone, so the command can be run again.
	out.Reset()
	err = workspaceCmd(ctx, cfg, []string{"create", "--slug", "broken", "--linear-org", "org\x00", "--webhook-secret-file", file},
		strings.NewReader(""), &out)
	require.Error(t, err)
	require.NotContains(t, err.Error()+out.String(), "lsk_", "no token on an error path")
	require.NotContains(t, err.Error()+out.String(), "admin token")
	_, err = db.FindWorkspace(ctx, "broken")
	require.Error(t, err, "the half-made workspace was removed")
}
