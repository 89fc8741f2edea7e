// Package linsynctest gives tests real components: an isolated Postgres database on the local server, a Temporal
// dev server, and the paths of the repository's own fixtures (Linear's captured webhook payloads).
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

// LinearTestdata returns a path inside linear/testdata: the captured webhook payloads (payloads/) and Linear's
// error bodies.
func LinearTestdata(tb testing.TB, elem ...string) string {
	tb.Helper()
	p := filepath.Join(append([]string{RepoRoot(tb), "linear", "testdata"}, elem...)...)
	if _, err := os.Stat(p); err != nil {
		tb.Fatalf("fixture missing: %v", err)
	}
	return p
}
