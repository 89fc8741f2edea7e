// Package linsynctest gives tests real components: an isolated Postgres database on the local server, a Temporal
// dev server, and the paths of the shared material (Linear's schema and webhook payloads).
package linsynctest

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// RepoRoot returns the directory holding the main go.mod.
func RepoRoot(tb testing.TB) string {
	tb.Helper()
	return repoRoot()
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

// LinearSchemaPath returns $LINEAR_SCHEMA, or the shared schema beside the repository.
func LinearSchemaPath(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv("LINEAR_SCHEMA"); p != "" {
		return p
	}
	return mustExist(tb, filepath.Join(RepoRoot(tb), "..", "shared", "linear", "schema.graphql"))
}

// SharedPath returns a path inside the read-only shared material beside the repository (../shared).
func SharedPath(tb testing.TB, elem ...string) string {
	tb.Helper()
	return mustExist(tb, filepath.Join(append([]string{RepoRoot(tb), "..", "shared"}, elem...)...))
}

func mustExist(tb testing.TB, p string) string {
	tb.Helper()
	if _, err := os.Stat(p); err != nil {
		tb.Fatalf("shared material missing: %v (set LINEAR_SCHEMA or check out ../shared beside the repo)", err)
	}
	return p
}
