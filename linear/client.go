package linear

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/Khan/genqlient/graphql"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/singleflight"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/envelope"
)

// DefaultEndpoint is Linear's GraphQL endpoint.
const DefaultEndpoint = "https://api.linear.app/graphql"

// maxResponseBytes bounds what one response may make us read; Linear's answers for our operations are far smaller.
const maxResponseBytes = 16 << 20

// Credential is what a workspace uses to call Linear: a personal API key or an OAuth access token.
type Credential struct {
	// APIKey is a personal API key, sent as "Authorization: <key>" (no Bearer).
	APIKey string
	// AccessToken is an OAuth access token, sent as "Authorization: Bearer <token>".
	AccessToken string
}

// Authorization returns the Authorization header value Linear expects for the credential.
func (c Credential) Authorization() string {
	if c.AccessToken != "" {
		if strings.HasPrefix(c.AccessToken, "Bearer ") {
			return c.AccessToken
		}
		return "Bearer " + c.AccessToken
	}
	return c.APIKey
}

// Redacted returns the last four characters of the secret, the most any log line may show.
func (c Credential) Redacted() string {
	s := c.APIKey
	if c.AccessToken != "" {
		s = c.AccessToken
	}
	return envelope.Last4(s)
}

// Options configure a Client. Only Credential is required.
type Options struct {
	Credential Credential
	// Name labels this credential in metrics (e.g. the workspace id); never the secret. Default: Redacted().
	Name string
	// Endpoint defaults to DefaultEndpoint; tests point it at lineartest.
	Endpoint string
	// HTTPClient defaults to a client with Timeout.
	HTTPClient *http.Client
	// Timeout bounds one request when HTTPClient is nil. Default 30 s.
	Timeout time.Duration
	// UserAgent defaults to "linsync".
	UserAgent string
	// CacheTTL is how long teams, labels and users stay cached. Default 10 min.
	CacheTTL time.Duration
	// NegativeTTL is how long "no user with this email" stays cached. Default 1 min.
	NegativeTTL time.Duration
	// SlowBelow is the fraction of a rate-limit window left under which requests are paced. Default 0.1.
	SlowBelow float64
	// MaxPause is the longest the client waits inline for the rate budget; a longer wait is returned as a
	// rate-limited error (NotSent) so Temporal schedules the retry. A context with a deadline allows longer: up
	// to DeadlineReserve before the deadline, so an activity attempt waits out a short refusal instead of
	// failing. Default 2 s.
	MaxPause time.Duration
	// DeadlineReserve is the part of a context's deadline kept for the request itself after an inline wait.
	// Default 10 s.
	DeadlineReserve time.Duration
	// Metrics receives request, cache and rate-budget metrics; nil disables them.
	Metrics *Metrics
	// TracerProvider, when set, makes every request a client span named after its operation.
	TracerProvider trace.TracerProvider
	// Share, when set, tells other processes what this client learned about the credential's rate limit: called
	// after Linear refused a request, and (at most once per ShareEvery) while a window runs low; never while the
	// budget is healthy. Clients sets it to note the state in Postgres.
	Share func(linsync.SharedRateLimit)
	// ShareEvery bounds how often a low window is shared. Default 1 s.
	ShareEvery time.Duration
	// Now defaults to time.Now.
	Now func() time.Time
	// OnUnauthorized, when set, hears of every request Linear refused for its credential (Classify says
	// ClassUnauthorized): the key was deleted, its owner offboarded, the OAuth grant revoked. Clients uses it to mark
	// the workspace's connection needs_reconnect at the first refusal.
	OnUnauthorized func(ctx context.Context, e *Error)
}

// Client calls Linear with one credential. Its generated operations take GQL(); its methods add caching for the
// look-ups on the hot path. It is safe for concurrent use.
type Client struct {
	opts   Options
	auth   string
	name   string
	http   *http.Client
	budget budget

	mu         sync.Mutex
	lastHeader http.Header
	lastShared time.Time
	teams      map[string]cached[*Team]
	users      map[string]cached[*UserFields]
	viewer     cached[*UserFields]
	// flight shares one look-up among concurrent misses of the same key.
	flight singleflight.Group
}

// New returns a Client for opts.
func New(opts Options) (*Client, error) {
	if opts.Credential.Authorization() == "" {
		return nil, fmt.Errorf("create linear client: credential is empty")
	}
	if opts.Endpoint == "" {
		opts.Endpoint = DefaultEndpoint
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.UserAgent == "" {
		opts.UserAgent = "linsync"
	}
	if opts.CacheTTL <= 0 {
		opts.CacheTTL = 10 * time.Minute
	}
	if opts.NegativeTTL <= 0 {
		opts.NegativeTTL = time.Minute
	}
	if opts.SlowBelow <= 0 {
		opts.SlowBelow = 0.1
	}
	if opts.MaxPause <= 0 {
		opts.MaxPause = 2 * time.Second
	}
	if opts.DeadlineReserve <= 0 {
		opts.DeadlineReserve = 10 * time.Second
	}
	if opts.ShareEvery <= 0 {
		opts.ShareEvery = time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	hc := opts.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: opts.Timeout}
	}
	if opts.TracerProvider != nil {
		hc = tracedHTTPClient(hc, opts.TracerProvider)
	}
	name := opts.Name
	if name == "" {
		name = opts.Credential.Redacted()
	}
	return &Client{
		opts:  opts,
		auth:  opts.Credential.Authorization(),
		name:  name,
		http:  hc,
		teams: map[string]cached[*Team]{},
		users: map[string]cached[*UserFields]{},
	}, nil
}

// GQL returns the graphql.Client the generated operations take, e.g. linear.IssueCreate(ctx, c.GQL(), input).
func (c *Client) GQL() graphql.Client { return c }

// LastResponseHeader returns a copy of the headers of the last response, so rate-limit state is visible.
func (c *Client) LastResponseHeader() http.Header {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastHeader.Clone()
}

// MakeRequest sends one GraphQL request. Every failure comes back as a *Error from the one classifier; a request
// the rate budget does not allow yet is not sent at all.
func (c *Client) MakeRequest(ctx context.Context, req *graphql.Request, resp *graphql.Response) error {
	op := req.OpName
	if err := c.waitBudget(ctx, op); err != nil {
		return err
	}
	body, err := json.Marshal(req)
	if err != nil {
		return &Error{Class: ClassInvalid, Operation: op, Message: "encode request", Err: err}
	}
	hreq, err := http.NewRequestWithContext(withOperation(ctx, op), http.MethodPost, c.opts.Endpoint, bytes.NewReader(body))
	if err != nil {
		return &Error{Class: ClassInvalid, Operation: op, Message: "build request", Err: err}
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Accept", "application/json")
	hreq.Header.Set("Authorization", c.auth)
	hreq.Header.Set("User-Agent", c.opts.UserAgent)

	hresp, err := c.http.Do(hreq)
	if err != nil {
		return c.fail(op, Classify(err))
	}
	defer hresp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(hresp.Body, maxResponseBytes))
	if err != nil {
		return c.fail(op, Classify(err))
	}
	now := c.opts.Now()
	c.mu.Lock()
	c.lastHeader = hresp.Header.Clone()
	c.mu.Unlock()
	c.budget.update(hresp.Header, now)
	c.opts.Metrics.observeBudget(c.name, c.budget.snapshot())

	e := ClassifyResponse(hresp.StatusCode, hresp.Header, raw, now)
	if e != nil && e.Class == ClassRateLimited {
		c.budget.block(e.RetryAt)
	}
	c.shareBudget(now, e != nil && e.Class == ClassRateLimited)
	if e != nil {
		if e.Class == ClassUnauthorized && c.opts.OnUnauthorized != nil {
			c.opts.OnUnauthorized(ctx, e)
		}
		return c.fail(op, e)
	}
	if err := json.Unmarshal(raw, resp); err != nil {
		return c.fail(op, &Error{Class: ClassTransient, StatusCode: hresp.StatusCode, Message: "decode response", Err: err})
	}
	c.opts.Metrics.observeRequest(c.name, op, "ok")
	return nil
}

func (c *Client) fail(op string, e *Error) error {
	if e.Operation == "" {
		e.Operation = op
	}
	c.opts.Metrics.observeRequest(c.name, op, string(e.Class))
	return e
}

// waitBudget paces the request when the budget runs low, and refuses it locally (NotSent) when the wait is longer
// than the caller may wait: MaxPause, or until DeadlineReserve before the context's deadline when that is later.
// Nothing is sent before Linear allows it. The budget is checked again after every pause: another request may have
// been refused meanwhile, which moves the allowed time further out.
func (c *Client) waitBudget(ctx context.Context, op string) error {
	start := c.opts.Now()
	patience := c.opts.MaxPause
	if deadline, ok := ctx.Deadline(); ok {
		patience = max(patience, deadline.Sub(start)-c.opts.DeadlineReserve)
	}
	for {
		now := c.opts.Now()
		d := c.budget.delay(now, c.opts.SlowBelow)
		if d <= 0 {
			return nil
		}
		if now.Add(d).Sub(start) > patience {
			return c.fail(op, &Error{Class: ClassRateLimited, Message: "rate budget exhausted; not sent", RetryAt: now.Add(d), NotSent: true})
		}
		// Spread the waiters a little past the allowed time, so requests held together are not all released in
		// the same instant and do not spend the fresh budget at once.
		d += time.Duration(rand.Int64N(int64(d/4) + 1))
		c.opts.Metrics.observePause(c.name, d)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return c.fail(op, Classify(ctx.Err()))
		case <-t.C:
		}
	}
}

// shareBudget tells other processes about a refusal at once, and about low windows at most once per ShareEvery; a
// healthy budget shares nothing, so the hot path costs no extra round trip.
func (c *Client) shareBudget(now time.Time, refused bool) {
	if c.opts.Share == nil {
		return
	}
	s := c.budget.shared(now, c.opts.SlowBelow)
	if s.BlockedUntil.IsZero() && len(s.Windows) == 0 {
		return
	}
	c.mu.Lock()
	due := refused || now.Sub(c.lastShared) >= c.opts.ShareEvery
	if due {
		c.lastShared = now
	}
	c.mu.Unlock()
	if due {
		c.opts.Share(s)
	}
}

// adoptShared takes the rate-limit state other processes noted for the credential.
func (c *Client) adoptShared(s linsync.SharedRateLimit) { c.budget.adopt(s, c.opts.Now()) }

// RateBudget returns the rate-limit windows last reported by Linear for this credential.
func (c *Client) RateBudget() []RateWindow { return c.budget.snapshot() }
