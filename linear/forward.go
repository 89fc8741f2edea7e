package linear

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// Forwarded is Linear's answer to a request forwarded for an agent, as Linear gave it.
type Forwarded struct {
	Status int
	// Header holds Linear's rate-limit headers (X-RateLimit-*, X-Complexity, Retry-After) and its Content-Type.
	Header  http.Header
	Body    []byte
	Latency time.Duration
}

// ForwardOptions bound one forwarded request.
type ForwardOptions struct {
	// Reserve is the share of every rate-limit window agents may not spend: it is kept for linsync's own work. A
	// request is refused locally, unsent, when it would leave less than Reserve of the window's limit.
	Reserve float64
	// MaxResponseBytes bounds what is read of Linear's answer; a larger answer is an error.
	MaxResponseBytes int64
	// Complexity is the request's estimated complexity, counted against the complexity window's share.
	Complexity int
}

// ErrResponseTooLarge is Linear's answer exceeding ForwardOptions.MaxResponseBytes.
var ErrResponseTooLarge = errors.New("linear's response exceeds the gateway's size limit")

// SendError is a forwarded request that failed without an answer from Linear. Sent says whether the request may
// have reached Linear: false only when it certainly did not (refused locally by the rate budget, no connection
// made), so the caller knows whether sending again could do the work twice.
type SendError struct {
	Sent bool
	Err  *Error
}

func (e *SendError) Error() string {
	if e.Sent {
		return "outcome unknown: " + e.Err.Error()
	}
	return "not sent: " + e.Err.Error()
}

func (e *SendError) Unwrap() error { return e.Err }

// forwardHeaders are the response headers passed back to an agent.
var forwardHeaders = []string{"Content-Type", HeaderRetryAfter, HeaderComplexity,
	HeaderRequestsLimit, HeaderRequestsRemaining, HeaderRequestsReset,
	HeaderComplexityLimit, HeaderComplexityRemaining, HeaderComplexityReset,
	HeaderEndpointRequestsLimit, HeaderEndpointRequestsRemaining, HeaderEndpointRequestsReset, HeaderEndpointName}

// Forward sends body, a GraphQL request as Linear accepts it, with the client's credential on behalf of an agent,
// and returns Linear's answer whatever its status: the agent gets Linear's errors as Linear gave them. The agents'
// share of the rate budget is enforced first (see ForwardOptions.Reserve); the answer updates the budget that
// linsync's own requests are paced by. Every failure without an answer is a *SendError.
func (c *Client) Forward(ctx context.Context, op string, body []byte, opts ForwardOptions) (*Forwarded, error) {
	sendErr := func(sent bool, e *Error) error {
		_ = c.fail(op, e)
		return &SendError{Sent: sent, Err: e}
	}
	release, refused := c.budget.reserveForAgent(c.opts.Now(), opts.Reserve, float64(opts.Complexity))
	if refused != nil {
		return nil, sendErr(false, refused)
	}
	defer release()
	hreq, err := http.NewRequestWithContext(withOperation(ctx, op), http.MethodPost, c.opts.Endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, sendErr(false, &Error{Class: ClassInvalid, Message: "build request", Err: err})
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Accept", "application/json")
	hreq.Header.Set("Authorization", c.auth)
	hreq.Header.Set("User-Agent", c.opts.UserAgent+" gateway")
	start := time.Now()
	hresp, err := c.http.Do(hreq)
	if err != nil {
		return nil, sendErr(!notSent(err), Classify(err))
	}
	defer hresp.Body.Close()
	limit := opts.MaxResponseBytes
	if limit <= 0 {
		limit = maxResponseBytes
	}
	raw, err := io.ReadAll(io.LimitReader(hresp.Body, limit+1))
	if err != nil {
		return nil, sendErr(true, Classify(err))
	}
	if int64(len(raw)) > limit {
		return nil, sendErr(true, &Error{Class: ClassTransient, StatusCode: hresp.StatusCode,
			Message: fmt.Sprintf("response over %d bytes", limit), Err: ErrResponseTooLarge})
	}
	out := &Forwarded{Status: hresp.StatusCode, Header: http.Header{}, Body: raw, Latency: time.Since(start)}
	for _, h := range forwardHeaders {
		if v := hresp.Header.Values(h); len(v) > 0 {
			out.Header[http.CanonicalHeaderKey(h)] = v
		}
	}
	now := c.opts.Now()
	c.mu.Lock()
	c.lastHeader = hresp.Header.Clone()
	c.mu.Unlock()
	c.budget.update(hresp.Header, now)
	c.opts.Metrics.observeBudget(c.name, c.budget.snapshot())
	result := "ok"
	if e := ClassifyResponse(hresp.StatusCode, hresp.Header, raw, now); e != nil {
		result = string(e.Class)
		if e.Class == ClassRateLimited {
			c.budget.block(e.RetryAt)
		}
		if e.Class == ClassUnauthorized && c.opts.OnUnauthorized != nil {
			c.opts.OnUnauthorized(ctx, e)
		}
	}
	c.opts.Metrics.observeRequest(c.name, op, result)
	return out, nil
}

// notSent reports whether a transport error happened before any byte of the request could reach Linear: the
// connection was never made.
func notSent(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns) || strings.Contains(err.Error(), "no such host")
}

// reserveForAgent admits one agent request when every known window would keep more than reserve of its limit after
// it and the agent requests in flight, and returns the function that ends it; otherwise it refuses with a
// rate-limited error whose RetryAt is when the tightest window resets (or the block ends).
func (b *budget) reserveForAgent(now time.Time, reserve, complexity float64) (func(), *Error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	retry := time.Time{}
	if b.blockedUntil.After(now) {
		retry = b.blockedUntil
	}
	for _, w := range b.windows {
		if w.Limit <= 0 || !w.Reset.After(now) {
			continue
		}
		spent, cost := float64(b.agentsInFlight), 1.0
		if w.Kind == "complexity" {
			spent, cost = b.agentComplexityInFlight, complexity
		}
		if w.Remaining-spent-cost < reserve*w.Limit && w.Reset.After(retry) {
			retry = w.Reset
		}
	}
	if !retry.IsZero() {
		return nil, &Error{Class: ClassRateLimited, Code: "RATELIMITED", RetryAt: retry,
			Message: "the agents' share of the rate limit is spent; not sent"}
	}
	b.agentsInFlight++
	b.agentComplexityInFlight += complexity
	return func() {
		b.mu.Lock()
		b.agentsInFlight--
		b.agentComplexityInFlight -= complexity
		b.mu.Unlock()
	}, nil
}
