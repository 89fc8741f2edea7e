//go:build !nodev

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/linsync/linsync/envelope"
	"github.com/linsync/linsync/linear/lineartest"
	"github.com/linsync/linsync/linsynctest"
)

// chaosOptions size and shape a chaos run.
type chaosOptions struct {
	// Unique source items per kind.
	questions, replies, takeovers, links, hosts, hooks, human int
	// dupRate is the share of items submitted again (a duplicate, or for webhooks also a re-posted body under a
	// new Linear-Delivery).
	dupRate float64
	senders int
	// rate paces the first submissions (items per second), so the faults land while the load still arrives.
	rate float64
	// The faults: workers SIGKILLed, Postgres and Temporal restarted, rate-limit storms in the fake Linear.
	workerKills                      int
	restartPostgres, restartTemporal bool
	storms                           int
	deadline                         time.Duration
	bin, cli, pgBin                  string
	keep                             bool
}

// defaultChaos is `make chaos`: 2,000 unique items.
func defaultChaos() chaosOptions {
	return chaosOptions{questions: 450, replies: 150, takeovers: 250, links: 300, hosts: 6, hooks: 700, human: 150,
		dupRate: 0.2, senders: 16, rate: 25, workerKills: 2, restartPostgres: true, restartTemporal: true, storms: 3,
		deadline: 10 * time.Minute, cli: ".cache/bin/temporal"}
}

// reducedChaos is the run `make test` makes: a few hundred items, one worker killed, Postgres and Temporal
// restarted once each.
func reducedChaos() chaosOptions {
	o := defaultChaos()
	o.questions, o.replies, o.takeovers, o.links, o.hosts, o.hooks, o.human = 50, 15, 40, 60, 3, 120, 15
	o.workerKills, o.storms = 1, 1
	o.deadline = 3 * time.Minute
	return o
}

// chaosCmd runs the chaos ledger: linsync as production runs it (two API and two worker processes of this binary),
// its own Postgres and Temporal dev server, the fake Linear, a mixed load with duplicates, and faults; then the
// ledger. It fails when anything was lost or doubled.
func chaosCmd(ctx context.Context, args []string, stdout io.Writer) error {
	o := defaultChaos()
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	fs.SetOutput(stdout)
	reduced := fs.Bool("reduced", false, "the reduced run of `make test`: a few hundred items, one worker kill")
	fs.DurationVar(&o.deadline, "deadline", o.deadline, "the whole run's time limit")
	fs.StringVar(&o.bin, "bin", "", "the linsync binary the processes run (default: this one)")
	fs.StringVar(&o.cli, "temporal-cli", o.cli, "the Temporal CLI")
	fs.StringVar(&o.pgBin, "pg-bin", "", "the directory of initdb and pg_ctl (default: pg_config --bindir, else /usr/lib/postgresql/*/bin)")
	fs.BoolVar(&o.keep, "keep", false, "keep the run's directory (logs, databases)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *reduced {
		keepDeadline, bin, cli, pgBin, keep := o.deadline, o.bin, o.cli, o.pgBin, o.keep
		o = reducedChaos()
		if keepDeadline != defaultChaos().deadline {
			o.deadline = keepDeadline
		}
		o.bin, o.cli, o.pgBin, o.keep = bin, cli, pgBin, keep
	}
	led, err := runChaos(ctx, o, stdout)
	if err != nil {
		return err
	}
	if !led.balanced() {
		return errors.New("chaos ledger does not balance: something was lost or doubled")
	}
	return nil
}

// runChaos runs one chaos run and returns its ledger.
func runChaos(ctx context.Context, o chaosOptions, out io.Writer) (*ledger, error) {
	ctx, cancel := context.WithTimeout(ctx, o.deadline)
	defer cancel()
	c, err := newChaosStack(ctx, o, out)
	if err != nil {
		return nil, err
	}
	defer c.close()
	if err := c.setUp(ctx); err != nil {
		return nil, err
	}
	start := time.Now()
	load := newChaosLoad(c)
	if err := load.run(ctx); err != nil {
		return nil, err
	}
	c.logf("load done in %s; waiting for the work to settle", time.Since(start).Round(time.Second))
	led, err := load.settle(ctx)
	if err != nil {
		return nil, err
	}
	led.print(out, time.Since(start))
	if !led.balanced() {
		c.keepForForensics()
	}
	return led, nil
}

// keepForForensics keeps the run's directory (the processes' logs, Postgres's data) and writes the fake Linear's
// state and deliveries into it, for the one who reads why the ledger did not balance.
func (c *chaosStack) keepForForensics() {
	c.keepDir = true
	for name, path := range map[string]string{"fake-linear-state.json": "/_fake/state", "fake-linear-deliveries.json": "/_fake/deliveries"} {
		resp, err := http.Get(c.fakeURL + path)
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		_ = os.WriteFile(filepath.Join(c.dir, name), b, 0o644)
	}
	c.logf("run directory kept for forensics: %s", c.dir)
}

// chaosStack is everything a chaos run starts: its own Postgres and Temporal, the fake Linear, a proxy spreading
// webhooks over the two APIs, and the linsync processes.
type chaosStack struct {
	o       chaosOptions
	out     io.Writer
	dir     string
	pg      *privatePostgres
	dbURL   string
	tHost   string
	stopT   func()
	fake    *lineartest.Server
	sd      lineartest.Seeded
	fakeURL string
	proxy   string
	apis    []*proc
	workers []*proc
	env     []string
	admin   string
	wsID    string
	secret  string
	closers []func()
	start   time.Time
	keepDir bool
}

func newChaosStack(ctx context.Context, o chaosOptions, out io.Writer) (*chaosStack, error) {
	c := &chaosStack{o: o, out: out, secret: "chaos-webhook-secret", start: time.Now()}
	ok := false
	defer func() {
		if !ok {
			c.close()
		}
	}()
	var err error
	if c.dir, err = os.MkdirTemp("", "linsync-chaos-"); err != nil {
		return nil, err
	}
	c.keepDir = o.keep
	if o.keep {
		c.logf("run directory %s (kept)", c.dir)
	}
	c.closers = append(c.closers, func() {
		if !c.keepDir {
			os.RemoveAll(c.dir)
		}
	})
	if o.bin == "" {
		if o.bin, err = os.Executable(); err != nil {
			return nil, err
		}
		c.o.bin = o.bin
	}
	if c.pg, err = startPrivatePostgres(ctx, o.pgBin, filepath.Join(c.dir, "pg")); err != nil {
		return nil, err
	}
	c.closers = append(c.closers, c.pg.stop)
	c.dbURL = c.pg.url("linsync")
	if err := ensureDatabase(ctx, c.dbURL); err != nil {
		return nil, err
	}
	if c.tHost, err = linsynctest.FreeHostPort(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(c.dir, "temporal"), 0o700); err != nil {
		return nil, err
	}
	if c.stopT, err = startDevTemporal(ctx, o.cli, filepath.Join(c.dir, "temporal"), c.tHost, 0, ""); err != nil {
		return nil, err
	}
	c.logf("private Postgres on %s, Temporal dev server on %s", c.pg.hostPort, c.tHost)
	if err := c.startFake(); err != nil {
		return nil, err
	}
	ok = true
	return c, nil
}

func (c *chaosStack) logf(format string, args ...any) {
	fmt.Fprintf(c.out, "chaos %6.1fs  %s\n", time.Since(c.start).Seconds(), fmt.Sprintf(format, args...))
}

func (c *chaosStack) close() {
	for _, p := range append(c.apis, c.workers...) {
		p.stop()
	}
	if c.stopT != nil {
		c.stopT()
	}
	for i := len(c.closers) - 1; i >= 0; i-- {
		c.closers[i]()
	}
}

// startFake serves the fake Linear on loopback, with a quota no chaos run reaches, retries byte-identical (the
// default) and soon, and webhooks never disabled (so a webhook the chaos made fail is retried, not switched off).
func (c *chaosStack) startFake() error {
	fake, err := lineartest.New(lineartest.Options{RequestsPerHour: 1_000_000, DisableAfterFailures: 1 << 30,
		WebhookRetryDelays: []time.Duration{time.Second, 3 * time.Second, 10 * time.Second, 30 * time.Second}})
	if err != nil {
		return err
	}
	c.fake, c.sd = fake, fake.Seed()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: fake.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln) //nolint:errcheck
	c.fakeURL = "http://" + ln.Addr().String()
	c.closers = append(c.closers, func() { _ = hs.Close(); fake.Close() })
	return nil
}

// setUp migrates, starts two APIs and two workers, creates the workspace, connects it to the fake Linear and
// points the fake's webhook at the proxy in front of the APIs.
func (c *chaosStack) setUp(ctx context.Context) error {
	keyURL, err := envelope.NewLocalKeyURL()
	if err != nil {
		return err
	}
	c.env = childEnv("DATABASE_URL="+c.dbURL, "TEMPORAL_ADDRESS="+c.tHost, "LINSYNC_SECRETS_KEY_URL="+keyURL,
		"LINEAR_API_URL="+c.fakeURL+"/graphql", "LINSYNC_TASK_QUEUE=chaos", "LINSYNC_LOG_LEVEL=warn",
		"LINSYNC_LINEAR_MAX_ATTEMPTS=10", "LINSYNC_START_TIMEOUT=2s", "LINSYNC_PUBLIC_URL=", "LINSYNC_BOOTSTRAP_TOKEN=")
	if out, err := c.run(ctx, "migrate"); err != nil {
		return fmt.Errorf("migrate: %w\n%s", err, out)
	}
	out, err := c.runWithInput(ctx, c.secret+"\n", "workspace", "create", "--slug", "chaos", "--linear-org", c.sd.OrganizationID,
		"--webhook-secret-file", "-")
	if err != nil {
		return fmt.Errorf("workspace create: %w\n%s", err, out)
	}
	m := regexp.MustCompile(`admin token \(shown once\): (\S+)`).FindStringSubmatch(out)
	if m == nil {
		return fmt.Errorf("workspace create printed no admin token:\n%s", out)
	}
	c.admin = m[1]
	if m = regexp.MustCompile(`id:\s+(\S+)`).FindStringSubmatch(out); m == nil {
		return fmt.Errorf("workspace create printed no id:\n%s", out)
	}
	c.wsID = m[1]
	var backends []string
	for i := range 2 {
		p, err := c.process(fmt.Sprintf("api-%d", i+1), "api")
		if err != nil {
			return err
		}
		c.apis = append(c.apis, p)
		backends = append(backends, "http://"+p.addr)
		w, err := c.process(fmt.Sprintf("worker-%d", i+1), "worker")
		if err != nil {
			return err
		}
		c.workers = append(c.workers, w)
	}
	if c.proxy, err = c.startProxy(backends); err != nil {
		return err
	}
	for _, p := range append(c.apis, c.workers...) {
		if err := p.waitReady(ctx); err != nil {
			return err
		}
	}
	code, body, err := c.call(ctx, http.MethodPost, "/integrations/linear/connect", map[string]any{"api_key": c.sd.APIKey,
		"default_team_id": c.sd.Triage.ID, "default_priority": 3})
	if err != nil || code != http.StatusOK {
		return fmt.Errorf("connect the workspace to the fake Linear: %d %s %v", code, body, err)
	}
	// Every takeover and host gets its own issue: no hourly cap sends them to a digest.
	code, body, err = c.call(ctx, http.MethodPut, "/event-settings", map[string]any{"creation_cap_per_hour": 10000})
	if err != nil || code != http.StatusOK {
		return fmt.Errorf("event settings: %d %s %v", code, body, err)
	}
	c.fake.AddWebhook(c.proxy+"/webhooks/linear/chaos", c.secret, "Issue", "Comment")
	c.logf("two APIs behind %s, two workers, workspace chaos (%s) connected to the fake Linear", c.proxy, c.wsID)
	return nil
}

// run runs a linsync command to completion and returns its output.
func (c *chaosStack) run(ctx context.Context, args ...string) (string, error) {
	return c.runWithInput(ctx, "", args...)
}

// runWithInput runs the binary with stdin (a secret is never put in the arguments).
func (c *chaosStack) runWithInput(ctx context.Context, stdin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, c.o.bin, args...)
	cmd.Env = c.env
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// proc is one linsync process of the run (an api or a worker), which the chaos may kill and start again.
type proc struct {
	// addr is the process's HTTP listener (the API's, for an api); ops its operations listener (health, readiness).
	name, addr, ops string
	args, env       []string
	bin, log        string
	mu              sync.Mutex
	cmd             *exec.Cmd
	done            chan struct{}
}

func (c *chaosStack) process(name string, args ...string) (*proc, error) {
	addr, err := linsynctest.FreeHostPort()
	if err != nil {
		return nil, err
	}
	ops, err := linsynctest.FreeHostPort()
	if err != nil {
		return nil, err
	}
	p := &proc{name: name, addr: addr, ops: ops, args: args, bin: c.o.bin, log: filepath.Join(c.dir, name+".log"),
		env: append(append([]string{}, c.env...), "LINSYNC_HTTP_ADDR="+addr, "LINSYNC_OPS_ADDR="+ops)}
	return p, p.start()
}

func (p *proc) start() error {
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env, cmd.Stdout, cmd.Stderr = p.env, f, f
	// The processes die with the run, whatever becomes of it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); f.Close(); close(done) }()
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
	return nil
}

// signal sends sig to the process and waits up to within for it to exit; it reports whether it did.
func (p *proc) signal(sig syscall.Signal, within time.Duration) bool {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return true
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
		return true
	case <-time.After(within):
		return false
	}
}

// kill SIGKILLs the process, as an OOM killer or a lost node would: nothing in flight is finished.
func (p *proc) kill() { p.signal(syscall.SIGKILL, time.Hour) }

// stop asks the process to stop (SIGTERM) and kills it when it does not within 15 s.
func (p *proc) stop() {
	if !p.signal(syscall.SIGTERM, 15*time.Second) {
		p.kill()
	}
}

func (p *proc) waitReady(ctx context.Context) error {
	for {
		resp, err := http.Get("http://" + p.ops + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not become ready; see %s", p.name, p.log)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// startProxy spreads requests over the APIs, round robin, as a load balancer would.
func (c *chaosStack) startProxy(backends []string) (string, error) {
	targets := make([]*url.URL, len(backends))
	for i, b := range backends {
		u, err := url.Parse(b)
		if err != nil {
			return "", err
		}
		targets[i] = u
	}
	var next atomic.Uint64
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(targets[next.Add(1)%uint64(len(targets))])
		},
		Transport: &http.Transport{MaxIdleConnsPerHost: 64},
		ErrorLog:  nil,
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	hs := &http.Server{Handler: rp, ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln) //nolint:errcheck
	c.closers = append(c.closers, func() { _ = hs.Close() })
	return "http://" + ln.Addr().String(), nil
}

// privatePostgres is a Postgres server of the run's own, in a directory of its own on a free port: the chaos
// restarts it, which it must never do to a server other work shares.
type privatePostgres struct {
	bin, dir, hostPort string
	cred               *syscall.Credential
}

func startPrivatePostgres(ctx context.Context, bin, dir string) (*privatePostgres, error) {
	if bin == "" {
		bin = postgresBinDir()
	}
	if bin == "" {
		return nil, errors.New("no initdb found: install PostgreSQL (make postgres) or pass -pg-bin")
	}
	hostPort, err := linsynctest.FreeHostPort()
	if err != nil {
		return nil, err
	}
	p := &privatePostgres{bin: bin, dir: dir, hostPort: hostPort}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		// Postgres refuses to run as root: the server runs as the postgres user, in a directory it owns.
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root needs a postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		p.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		for _, d := range []string{filepath.Dir(dir), dir} {
			if err := os.Chown(d, uid, gid); err != nil {
				return nil, err
			}
		}
	}
	if out, err := p.pgcmd(ctx, "initdb", "-D", p.data(), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"); err != nil {
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	return p, p.ctl(ctx, "start")
}

func postgresBinDir() string {
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		if d := strings.TrimSpace(string(out)); fileExists(filepath.Join(d, "initdb")) {
			return d
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Strings(dirs)
	for i := len(dirs) - 1; i >= 0; i-- {
		if fileExists(filepath.Join(dirs[i], "initdb")) {
			return dirs[i]
		}
	}
	return ""
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func (p *privatePostgres) data() string { return filepath.Join(p.dir, "data") }

func (p *privatePostgres) url(db string) string {
	return "postgres://postgres@" + p.hostPort + "/" + db + "?sslmode=disable"
}

func (p *privatePostgres) pgcmd(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(p.bin, name), args...)
	cmd.Dir = p.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// ctl runs pg_ctl start or restart (fast: connections are cut, as in a failover) and waits for the server.
func (p *privatePostgres) ctl(ctx context.Context, action string) error {
	_, port, _ := net.SplitHostPort(p.hostPort)
	args := []string{"-D", p.data(), "-w", "-t", "60", "-l", filepath.Join(p.dir, "postgres.log"), action}
	if action == "restart" {
		args = append(args, "-m", "fast")
	}
	args = append(args, "-o", "-p "+port+" -k "+p.dir+" -c listen_addresses=127.0.0.1 -c max_connections=200")
	if out, err := p.pgcmd(ctx, "pg_ctl", args...); err != nil {
		return fmt.Errorf("pg_ctl %s: %w\n%s", action, err, out)
	}
	return nil
}

func (p *privatePostgres) restart(ctx context.Context) error { return p.ctl(ctx, "restart") }

func (p *privatePostgres) stop() {
	_, _ = p.pgcmd(context.Background(), "pg_ctl", "-D", p.data(), "-w", "-m", "immediate", "stop")
}
