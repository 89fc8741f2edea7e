package linsynctest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"
)

// TemporalCLIPath returns $TEMPORAL_CLI or the CLI that `make temporal` builds into .cache/bin.
func TemporalCLIPath() (string, error) {
	if p := os.Getenv("TEMPORAL_CLI"); p != "" {
		return p, nil
	}
	_, err := os.Stat(filepath.Join(repoRoot(), ".cache", "bin", "temporal"))
	if err != nil {
		return "", errors.New("temporal CLI not found: run `make temporal` (or set TEMPORAL_CLI)")
	}
	return filepath.Join(repoRoot(), ".cache", "bin", "temporal"), nil
}

// DevServerOptions returns options for a quiet dev server on host:port (a free loopback port when empty), with
// the SQLite file dbFile (in memory when empty).
func DevServerOptions(hostPort, dbFile string) (testsuite.DevServerOptions, error) {
	cli, err := TemporalCLIPath()
	if err != nil {
		return testsuite.DevServerOptions{}, err
	}
	if hostPort == "" {
		hostPort, err = FreeHostPort()
		if err != nil {
			return testsuite.DevServerOptions{}, err
		}
	}
	opts := testsuite.DevServerOptions{
		ExistingPath:  cli,
		ClientOptions: &client.Options{HostPort: hostPort, Namespace: "default", Logger: QuietLogger()},
		DBFilename:    dbFile,
		LogLevel:      "error",
		Stdout:        io.Discard,
		Stderr:        io.Discard,
	}
	if dbFile != "" {
		opts.ExtraArgs = []string{"--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal"}
	}
	return opts, nil
}

// StartDevServer starts a Temporal dev server from the locally built CLI.
func StartDevServer(ctx context.Context, hostPort, dbFile string) (*testsuite.DevServer, error) {
	opts, err := DevServerOptions(hostPort, dbFile)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	s, err := testsuite.StartDevServer(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("start temporal dev server: %w", err)
	}
	return s, nil
}

var shared *testsuite.DevServer

// RunWithTemporal starts one dev server for the test binary, runs the tests and stops the server.
// Call it from TestMain: os.Exit(linsynctest.RunWithTemporal(m)).
func RunWithTemporal(m *testing.M) int {
	s, err := StartDevServer(context.Background(), "", "")
	if err != nil {
		fmt.Fprintln(os.Stderr, "linsynctest:", err)
		return 1
	}
	shared = s
	defer func() { _ = s.Stop() }()
	return m.Run()
}

// Temporal returns a client of the test binary's shared dev server (see RunWithTemporal).
func Temporal(tb testing.TB) (client.Client, string) {
	tb.Helper()
	if shared == nil {
		tb.Fatal("no Temporal dev server: call linsynctest.RunWithTemporal from TestMain")
	}
	return shared.Client(), shared.FrontendHostPort()
}

// FreeHostPort returns a loopback host:port that was free a moment ago.
func FreeHostPort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// QuietLogger is a Temporal SDK logger that drops everything, so test and tool output shows only what matters.
func QuietLogger() log.Logger { return log.NewStructuredLogger(slog.New(slog.DiscardHandler)) }
