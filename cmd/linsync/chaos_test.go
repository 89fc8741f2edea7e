//go:build !nodev

package main

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/linsync/linsync/linsynctest"
)

// TestChaosLedgerReduced is the reduced chaos run in `make test`: the binary built once, two API and two worker
// processes of it, a private Postgres and Temporal dev server (each restarted once), a worker SIGKILLed, a few
// hundred questions, replies, events and webhooks with duplicates, re-posted bodies, reordered, duplicated and late
// byte-identical deliveries from the fake Linear and a rate-limit storm. Every item is applied once or
// dead-lettered: the ledger balances, with nothing doubled.
func TestChaosLedgerReduced(t *testing.T) {
	t.Parallel()
	cli, err := linsynctest.TemporalCLIPath()
	require.NoError(t, err)
	bin := filepath.Join(t.TempDir(), "linsync")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "%s", out)

	o := reducedChaos()
	o.bin, o.cli = bin, cli
	var log bytes.Buffer
	led, err := runChaos(context.Background(), o, &log)
	require.NoError(t, err, "%s", log.String())
	require.True(t, led.balanced(), "%s", log.String())
	for _, k := range led.kinds {
		require.Positive(t, k.unique, "%s: the load reached every kind", k.kind)
		require.Positive(t, k.applied, "%s", k.kind)
	}
	t.Log(log.String())
}
