package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/linsync/linsync/linsynctest"
)

// TestProductionBuildLeavesOutTheFake: built with -tags nodev (as the production image is), the binary links neither
// the fake Linear nor the test helpers the development commands use.
func TestProductionBuildLeavesOutTheFake(t *testing.T) {
	t.Parallel()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	cmd := exec.CommandContext(t.Context(), gobin, "list", "-tags", "nodev", "-deps", "./cmd/linsync")
	cmd.Dir = linsynctest.RepoRoot(t)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	for _, pkg := range []string{"github.com/linsync/linsync/linear/lineartest", "github.com/linsync/linsync/linsynctest",
		"go.temporal.io/sdk/testsuite"} {
		require.NotContains(t, strings.Fields(string(out)), pkg)
	}
	require.Contains(t, strings.Fields(string(out)), "github.com/linsync/linsync/api", "the list is the binary's")
}
