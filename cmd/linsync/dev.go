//go:build !nodev

package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"go.temporal.io/sdk/client"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/envelope"
	"github.com/linsync/linsync/linear/lineartest"
	"github.com/linsync/linsync/linsynctest"
)

// Development defaults: a workspace that ingress can be tried on at once (see the README's curl).
const (
	devWorkspace     = "dev"
	devOrganization  = "dev-organization"
	devWebhookSecret = "dev-webhook-secret"
)

// dev brings up the whole local stack: the Temporal dev server with its UI (built once from the tools module),
// the database and its schema, a local encryption key, a dev workspace, then the api and worker in one process.
func dev(ctx context.Context, cfg Config, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	dir := fs.String("dir", ".cache/dev", "where the dev stack keeps its state (Temporal's SQLite file, the local key)")
	cli := fs.String("temporal-cli", "", "the Temporal CLI binary (default: .cache/bin/temporal, else temporal on PATH, else built from tools/temporal)")
	uiPort := fs.Int("ui-port", 8233, "Temporal Web UI port")
	fakeAddr := fs.String("fake-linear-addr", "127.0.0.1:8090", "where the fake Linear listens when LINEAR_API_URL is not set")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		return fmt.Errorf("create dev state directory: %w", err)
	}
	log := newLogger(cfg, os.Stdout)
	if !cfg.Set[envPrivateCallbacks.name] {
		cfg.AllowPrivateCallbacks = true // the Q&A app under development runs on this machine
	}
	if !cfg.Set[envPrivateNotify.name] {
		cfg.AllowPrivateNotifications = true // so do the receivers a developer points notifications at
	}
	// The dev stack is for this machine only: its API and operations listener stay on loopback unless told otherwise
	// (Temporal and the fake Linear listen on 127.0.0.1 below).
	if !cfg.Set[envHTTPAddr.name] {
		cfg.HTTPAddr = "127.0.0.1" + portOf(cfg.HTTPAddr)
	}
	if !cfg.Set[envOpsAddr.name] {
		cfg.OpsAddr = "127.0.0.1" + portOf(cfg.OpsAddr)
	}
	// The dev Temporal UI reads sealed payloads through linsync's codec endpoint. It runs without sign-in and sends no
	// token, so the dev stack (on loopback only) admits codec requests from loopback.
	cfg.codecAllowLoopback = true
	cfg.extraCodecOrigins = []string{fmt.Sprintf("http://localhost:%d", *uiPort), fmt.Sprintf("http://127.0.0.1:%d", *uiPort)}

	if cfg.SecretsKeyURL == "" {
		keyURL, err := devSecret(filepath.Join(*dir, "secrets.keyurl"), envelope.NewLocalKeyURL)
		if err != nil {
			return err
		}
		cfg.SecretsKeyURL = keyURL
	}
	if cfg.BootstrapToken == "" {
		// Lets a newcomer create workspaces through the API at once, as an operator would in production.
		tok, err := devSecret(filepath.Join(*dir, "bootstrap.token"), func() (string, error) {
			return "lsb_" + rand.Text(), nil
		})
		if err != nil {
			return err
		}
		cfg.BootstrapToken = tok
	}

	if !cfg.Set[envTemporalAddress.name] {
		codecEndpoint := "http://127.0.0.1" + portOf(cfg.HTTPAddr) + "/codec"
		stopTemporal, err := startDevTemporal(ctx, temporalCLI(*cli), *dir, "127.0.0.1:7233", *uiPort, codecEndpoint)
		if err != nil {
			return err
		}
		defer stopTemporal()
		cfg.Temporal.HostPort = "127.0.0.1:7233"
	}

	// Without Linear credentials the stack talks to the fake Linear, so the whole loop can be watched locally.
	var fake *devFake
	if !cfg.Set[envLinearAPIURL.name] {
		var err error
		if fake, err = startDevFakeLinear(ctx, cfg, *fakeAddr); err != nil {
			return err
		}
		defer fake.stop()
		cfg.LinearAPIURL = fake.url + "/graphql"
	}

	if err := ensureDatabase(ctx, cfg.DatabaseURL); err != nil {
		return err
	}
	if err := migrate(ctx, cfg); err != nil {
		return err
	}
	if err := ensureDevWorkspace(ctx, cfg, fake); err != nil {
		return err
	}
	token, err := ensureDevToken(ctx, cfg, filepath.Join(*dir, "admin.token"))
	if err != nil {
		return err
	}
	if fake != nil {
		printFakeLinearHelp(stdout, fake.url, fake.seed, fake.hookID, devWebhookSecret)
	}
	log.Info("dev stack ready",
		"temporal_ui", fmt.Sprintf("http://localhost:%d", *uiPort),
		"api", "http://"+cfg.HTTPAddr, "ops", "http://"+cfg.OpsAddr,
		"dev_workspace", devWorkspace, "dev_organization", devOrganization)
	fmt.Fprintf(stdout, "\nAdmin token of workspace %q (kept in %s): %s\n", devWorkspace, filepath.Join(*dir, "admin.token"), token)
	fmt.Fprintf(stdout, "Console: %s (sign in with workspace %q and the admin token above)\n", consoleURL(cfg.HTTPAddr), devWorkspace)
	fmt.Fprintf(stdout, "Bootstrap token for POST /v1/workspaces (kept in %s): %s\n", filepath.Join(*dir, "bootstrap.token"), cfg.BootstrapToken)
	fmt.Fprintf(stdout, "\nlinsync dev stack: API on %s, Temporal UI on http://localhost:%d\n"+
		"Workspace %q (organization %q) verifies webhooks signed with %q; see the README for a signed curl.\n\n",
		cfg.HTTPAddr, *uiPort, devWorkspace, devOrganization, devWebhookSecret)
	return serve(ctx, cfg, "all")
}

// devSecret returns the development secret kept in path (the local key URL, the bootstrap token), generating it with
// gen the first time. Development only: production secrets come from the environment.
func devSecret(path string, gen func() (string, error)) (string, error) {
	if b, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	v, err := gen()
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(path, []byte(v+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("save %s: %w", filepath.Base(path), err)
	}
	return v, nil
}

// temporalCLI picks the Temporal CLI: the flag, else the one `make temporal` builds, else one on PATH; the result
// may not exist yet, in which case startDevTemporal builds it from tools/temporal.
func temporalCLI(flagValue string) string {
	const built = ".cache/bin/temporal"
	if flagValue != "" {
		return flagValue
	}
	if _, err := os.Stat(built); err == nil {
		return built
	}
	if p, err := exec.LookPath("temporal"); err == nil {
		return p
	}
	return built
}

// startDevTemporal runs `temporal server start-dev` on hostPort with a WAL-mode SQLite file in dir, unless a server
// already answers there, and waits until it is healthy. uiPort 0 runs it headless; otherwise its Web UI (on the same
// address) decodes payloads through codecEndpoint.
func startDevTemporal(ctx context.Context, cli, dir, hostPort string, uiPort int, codecEndpoint string) (func(), error) {
	if temporalHealthy(ctx, hostPort, time.Second) {
		return func() {}, nil
	}
	if _, err := os.Stat(cli); err != nil {
		if _, err := os.Stat("tools/temporal/go.mod"); err != nil {
			return nil, fmt.Errorf("no Temporal CLI at %s: run `make temporal` in linsync's repository and pass -temporal-cli, put `temporal` on PATH, or set TEMPORAL_ADDRESS to a running server", cli)
		}
		fmt.Fprintln(os.Stderr, "building the Temporal CLI once (a few minutes)…")
		build := exec.CommandContext(ctx, "go", "build", "-o", mustAbs(cli), "github.com/temporalio/cli/cmd/temporal")
		build.Dir = "tools/temporal"
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return nil, fmt.Errorf("build temporal CLI: %w", err)
		}
	}
	logf, err := os.Create(filepath.Join(dir, "temporal.log"))
	if err != nil {
		return nil, fmt.Errorf("create temporal log: %w", err)
	}
	host, port, err := net.SplitHostPort(hostPort)
	if err != nil {
		return nil, fmt.Errorf("temporal address %q: %w", hostPort, err)
	}
	args := []string{"server", "start-dev", "--ip", host, "--port", port,
		"--db-filename", filepath.Join(dir, "temporal.db"),
		"--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal",
		"--log-level", "warn"}
	if uiPort == 0 {
		args = append(args, "--headless")
	} else {
		args = append(args, "--ui-port", fmt.Sprint(uiPort), "--ui-codec-endpoint", codecEndpoint)
	}
	cmd := exec.Command(cli, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start temporal dev server: %w", err)
	}
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
		}
		logf.Close()
	}
	if !temporalHealthy(ctx, hostPort, 90*time.Second) {
		stop()
		return nil, fmt.Errorf("temporal dev server did not become healthy; see %s", logf.Name())
	}
	return stop, nil
}

func temporalHealthy(ctx context.Context, hostPort string, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for {
		c, err := client.Dial(client.Options{HostPort: hostPort, Logger: linsynctest.QuietLogger()})
		if err == nil {
			cctx, cancel := context.WithTimeout(ctx, time.Second)
			_, err = c.CheckHealth(cctx, &client.CheckHealthRequest{})
			cancel()
			c.Close()
			if err == nil {
				return true
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// ensureDatabase creates the database named in databaseURL when it does not exist yet.
func ensureDatabase(ctx context.Context, databaseURL string) error {
	u, err := url.Parse(databaseURL)
	if err != nil {
		return errors.New("DATABASE_URL is not a URL")
	}
	name := strings.TrimPrefix(u.Path, "/")
	if name == "" || name == "postgres" {
		return nil
	}
	admin := *u
	admin.Path = "/postgres"
	conn, err := pgx.Connect(ctx, admin.String())
	if err != nil {
		return fmt.Errorf("connect to Postgres (is it running? `make postgres` starts the local server): %w", err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return fmt.Errorf("look up database %s: %w", name, err)
	}
	if exists {
		return nil
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}

// devFake is the fake Linear the dev stack runs when no Linear is configured.
type devFake struct {
	url    string
	seed   lineartest.Seeded
	hookID string
	stop   func()
}

func startDevFakeLinear(ctx context.Context, cfg Config, addr string) (*devFake, error) {
	srv, err := lineartest.New(lineartest.Options{SchemaPath: cfg.LinearSchema,
		WebhookRetryDelays: []time.Duration{time.Second, 10 * time.Second, time.Minute}})
	if err != nil {
		return nil, fmt.Errorf("start fake linear: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		srv.Close()
		return nil, fmt.Errorf("listen for fake linear on %s: %w", addr, err)
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln) //nolint:errcheck
	f := &devFake{url: "http://" + ln.Addr().String(), seed: srv.Seed()}
	// The fake delivers to the dev workspace's path, signed with the dev secret.
	f.hookID = srv.AddWebhook("http://127.0.0.1"+portOf(cfg.HTTPAddr)+"/webhooks/linear/"+devWorkspace, devWebhookSecret)
	f.stop = func() {
		_ = hs.Close()
		srv.Close()
	}
	return f, nil
}

func portOf(addr string) string {
	if i := strings.LastIndex(addr, ":"); i >= 0 {
		return addr[i:]
	}
	return ":8080"
}

// ensureDevToken returns the dev workspace's admin token kept in path, creating one the first time (or when the
// database was reset), so a newcomer can call the /v1 API at once. Development only: production tokens are shown once
// and never written anywhere.
func ensureDevToken(ctx context.Context, cfg Config, path string) (string, error) {
	db, _, closeStore, err := openStore(ctx, cfg)
	if err != nil {
		return "", err
	}
	defer closeStore()
	if b, err := os.ReadFile(path); err == nil {
		if _, ws, err := db.Authenticate(ctx, strings.TrimSpace(string(b))); err == nil && ws.Slug == devWorkspace {
			return strings.TrimSpace(string(b)), nil
		}
	}
	ws, err := db.FindWorkspace(ctx, devWorkspace)
	if err != nil {
		return "", err
	}
	_, token, err := db.CreateToken(ctx, ws.ID, "dev admin", []string{linsync.ScopeAdmin})
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("save dev admin token: %w", err)
	}
	return token, nil
}

func ensureDevWorkspace(ctx context.Context, cfg Config, fake *devFake) error {
	db, _, closeStore, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer closeStore()
	ws, err := db.FindWorkspace(ctx, devWorkspace)
	if linsync.ErrorCode(err) == linsync.ENOTFOUND {
		if ws, err = db.CreateWorkspace(ctx, devWorkspace, "Development"); err != nil {
			return err
		}
		_, err = db.AddLinearWebhook(ctx, linsync.LinearWebhookInput{WorkspaceID: ws.ID, OrganizationID: devOrganization, Secret: devWebhookSecret})
	}
	if err != nil || fake == nil {
		return err
	}
	if _, err := db.FindConnection(ctx, ws.ID); err == nil {
		return nil // the fake's seed is fixed, so an earlier connection still fits
	}
	sd := fake.seed
	if _, err := db.AddLinearWebhook(ctx, linsync.LinearWebhookInput{WorkspaceID: ws.ID, OrganizationID: sd.OrganizationID,
		LinearWebhookID: fake.hookID, Secret: devWebhookSecret}); err != nil {
		return err
	}
	_, err = db.SaveConnection(ctx, linsync.ConnectionInput{WorkspaceID: ws.ID, OrganizationID: sd.OrganizationID,
		OrganizationName: "Fake Workspace", AuthKind: linsync.AuthAPIKey, Credential: sd.APIKey, ActorUserID: sd.Bot.ID,
		ActorName: sd.Bot.Name, DefaultTeam: sd.Triage.ID})
	return err
}

// replaceDatabase returns databaseURL naming database name instead.
func replaceDatabase(databaseURL, name string) string {
	u, err := url.Parse(databaseURL)
	if err != nil {
		return databaseURL
	}
	u.Path = "/" + name
	return u.String()
}

func mustAbs(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	return a
}

// consoleURL is where the operator console of an API listening on addr opens in a browser.
func consoleURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr + "/console"
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/console"
}
