// Package lineartest is a fake Linear for tests and local development: a GraphQL server that validates every
// request against Linear's real schema, keeps a workspace in memory, sends signed webhooks like Linear after every
// change, and injects the faults linsync must survive (rate limits, 5xx, latency, lost or reordered deliveries).
package lineartest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/validator"

	"github.com/linsync/linsync/linear"
)

// Options configure a Server; the zero value is a working fake.
type Options struct {
	// SchemaPath overrides the schema the fake validates against; empty means the one vendored in package linear.
	SchemaPath string
	// RequestsPerHour is each user's request quota, reported in X-RateLimit-Requests-* and enforced. Default 2500.
	RequestsPerHour int
	// WebhookRetryDelays are the waits before re-sending a failed delivery; Linear uses 1 min, 1 h, 6 h.
	// Default 10 ms, 50 ms, 100 ms so tests finish.
	WebhookRetryDelays []time.Duration
	// WebhookRetries is how a retry is made: RetryIdentical (the default) re-sends the first attempt's bytes, or
	// RetryRestamped renders and signs the body again with a new webhookTimestamp. Change it with
	// SetWebhookRetries.
	WebhookRetries RetryMode
	// DisableAfterFailures disables a webhook after this many consecutive deliveries failed every attempt. Default 3.
	DisableAfterFailures int
	// WebhookTimeout is how long a receiver may take, 5 s at Linear.
	WebhookTimeout time.Duration
	// Now defaults to time.Now.
	Now func() time.Time
	// Logf, when set, receives one line per webhook delivery attempt.
	Logf func(format string, args ...any)
}

// Request is one GraphQL request the fake received.
type Request struct {
	Time          time.Time
	OperationName string
	Query         string
	// Variables are as sent on the wire, so tests can tell an omitted field from an explicit null.
	Variables map[string]any
	// Auth is the user id the Authorization header resolved to, or "" when it did not.
	Auth string
	// Status is the HTTP status answered; Fault names the injected fault, if any.
	Status int
	Fault  string
	// SentAt is when the client says it sent the request (header HeaderSentAt, set by tests' transports), so a
	// test can tell a request already on its way from one sent after an answer came back.
	SentAt time.Time
}

// HeaderSentAt is the header a test's transport may set to the RFC 3339 time it sent a request; the fake records it
// as Request.SentAt.
const HeaderSentAt = "X-Test-Sent-At"

// Server is the fake Linear. Create it with New or Start; it is safe for concurrent use.
type Server struct {
	opts    Options
	schema  *ast.Schema
	created time.Time

	mu    sync.Mutex
	org   organization
	users map[string]*user
	keys  map[string]string // Authorization header value → user id
	// forbidden keys authenticate but may do nothing: their user lost access (ForbidKey).
	forbidden map[string]bool
	teams     map[string]*team
	states    map[string]*workflowState
	labels    map[string]*label
	issues    map[string]*issue
	comments  map[string]*comment
	webhooks  map[string]*webhook
	requests  []Request
	windows   map[string]*rateWindow
	faults    faults
	retries   RetryMode
	// lastSyncID numbers mutations like Linear's sync ids.
	lastSyncID float64

	hooks *dispatcher
	ts    *httptest.Server
	// oauth is the authorization server (oauth.go), nil until EnableOAuth.
	oauth *oauthServer
	// sinks are the bodies posted to /_fake/sink/{name} (sink.go).
	sinks sinks
}

type organization struct{ ID, Name, URLKey string }

type rateWindow struct {
	start time.Time
	count int
}

// New returns a Server with an empty workspace (call Seed) that is not listening; serve its Handler, or use Start.
func New(opts Options) (*Server, error) {
	schema, err := linear.LoadSchema(opts.SchemaPath)
	if err != nil {
		return nil, err
	}
	if opts.RequestsPerHour <= 0 {
		opts.RequestsPerHour = 2500
	}
	if opts.WebhookRetryDelays == nil {
		opts.WebhookRetryDelays = []time.Duration{10 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond}
	}
	if opts.DisableAfterFailures <= 0 {
		opts.DisableAfterFailures = 3
	}
	if opts.WebhookTimeout <= 0 {
		opts.WebhookTimeout = 5 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.WebhookRetries == "" {
		opts.WebhookRetries = RetryIdentical
	}
	if !opts.WebhookRetries.valid() {
		return nil, fmt.Errorf("webhook retries %q: want %s or %s", opts.WebhookRetries, RetryIdentical, RetryRestamped)
	}
	s := &Server{
		opts: opts, schema: schema, created: opts.Now().UTC(), retries: opts.WebhookRetries,
		users: map[string]*user{}, keys: map[string]string{}, teams: map[string]*team{},
		states: map[string]*workflowState{}, labels: map[string]*label{}, issues: map[string]*issue{},
		comments: map[string]*comment{}, webhooks: map[string]*webhook{}, windows: map[string]*rateWindow{},
		org: organization{ID: "b0f3a3e2-6c1e-4d8a-9a57-3f1f7c0e0001", Name: "Fake Workspace", URLKey: "fake"},
	}
	s.hooks = newDispatcher(s)
	return s, nil
}

// Start returns a seeded Server listening on a local httptest server, closed when the test ends.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	s, err := New(opts)
	if err != nil {
		tb.Fatalf("start fake linear: %v", err)
	}
	s.Seed()
	s.ts = httptest.NewServer(s.Handler())
	tb.Cleanup(s.Close)
	return s
}

// URL is the GraphQL endpoint of a started Server.
func (s *Server) URL() string { return s.ts.URL + "/graphql" }

// BaseURL is the root of a started Server; the test API lives under /_fake/.
func (s *Server) BaseURL() string { return s.ts.URL }

// Close stops the listener (if started) and the webhook dispatcher.
func (s *Server) Close() {
	if s.ts != nil {
		s.ts.Close()
	}
	s.hooks.close()
}

func (s *Server) now() time.Time { return s.opts.Now().UTC() }

// Handler serves GraphQL at /graphql (and /) and the test API under /_fake/.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/_fake/", s.serveTestAPI)
	mux.HandleFunc("/oauth/", s.serveOAuth)
	mux.HandleFunc("/", s.serveGraphQL)
	return mux
}

// Requests returns every GraphQL request received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.requests))
	copy(out, s.requests)
	return out
}

// CountRequests returns how many requests named op were received ("" counts all).
func (s *Server) CountRequests(op string) int {
	n := 0
	for _, r := range s.Requests() {
		if op == "" || r.OperationName == op {
			n++
		}
	}
	return n
}

// ResetRequests forgets the recorded requests, e.g. after a test's setup.
func (s *Server) ResetRequests() {
	s.mu.Lock()
	s.requests = nil
	s.mu.Unlock()
}

type gqlRequest struct {
	Query         string         `json:"query"`
	OperationName string         `json:"operationName"`
	Variables     map[string]any `json:"variables"`
}

type gqlResponse struct {
	Data   any       `json:"data"`
	Errors []*gqlErr `json:"errors,omitempty"`
}

func (s *Server) serveGraphQL(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "GraphQL requests are POSTed", http.StatusMethodNotAllowed)
		return
	}
	var req gqlRequest
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err == nil {
		err = json.Unmarshal(body, &req)
	}
	rec := Request{Time: s.now(), OperationName: req.OperationName, Query: req.Query, Variables: req.Variables}
	rec.SentAt, _ = time.Parse(time.RFC3339Nano, r.Header.Get(HeaderSentAt))
	if err != nil {
		s.answer(w, &rec, http.StatusBadRequest, nil, validationError("GRAPHQL_PARSE_FAILED", "Body is not a GraphQL request: "+err.Error()))
		return
	}

	s.mu.Lock()
	f := s.faults.take()
	viewer := s.users[s.keys[r.Header.Get("Authorization")]]
	if viewer != nil {
		rec.Auth = viewer.ID
	}
	s.mu.Unlock()
	if f.latency > 0 {
		select {
		case <-time.After(f.latency):
		case <-r.Context().Done():
			return
		}
	}
	if viewer != nil {
		s.setRateHeaders(w.Header(), viewer.ID)
	}
	switch {
	case f.rateLimit != nil:
		rec.Fault = "ratelimited"
		s.writeRateLimited(w, &rec, f.rateLimit)
		return
	case f.status != 0:
		rec.Fault = "status " + strconv.Itoa(f.status)
		s.answer(w, &rec, f.status, nil, statusError(f.status))
		return
	case viewer != nil && s.isForbidden(r.Header.Get("Authorization")):
		rec.Fault = "forbidden"
		s.answer(w, &rec, http.StatusForbidden, nil, statusError(http.StatusForbidden))
		return
	case viewer == nil:
		s.answer(w, &rec, http.StatusBadRequest, nil, &gqlErr{Message: "Authentication required, not authenticated",
			Extensions: map[string]any{"type": "authentication error", "code": "AUTHENTICATION_ERROR", "statusCode": 401,
				"userError": true, "userPresentableMessage": "You need to authenticate to access this operation."}})
		return
	}
	if s.overQuota(viewer.ID, w.Header()) {
		rec.Fault = "quota"
		s.writeRateLimited(w, &rec, &RateLimit{Status: http.StatusBadRequest})
		return
	}

	// nil rules: every default validation rule of the GraphQL spec.
	doc, errs := gqlparser.LoadQueryWithRules(s.schema, req.Query, nil)
	if len(errs) > 0 {
		s.answer(w, &rec, http.StatusBadRequest, nil, fromGQLErrors(errs)...)
		return
	}
	op := doc.Operations.ForName(req.OperationName)
	if op == nil {
		s.answer(w, &rec, http.StatusBadRequest, nil, validationError("GRAPHQL_VALIDATION_FAILED", "Unknown operation named \""+req.OperationName+"\"."))
		return
	}
	if rec.OperationName == "" {
		rec.OperationName = op.Name
	}
	vars, verr := validator.VariableValues(s.schema, op, req.Variables)
	if verr != nil {
		s.answer(w, &rec, http.StatusBadRequest, nil, validationError("GRAPHQL_VALIDATION_FAILED", verr.Error()))
		return
	}
	data, gerr := s.execute(viewer, op, vars)
	if gerr != nil {
		s.answer(w, &rec, http.StatusBadRequest, nil, gerr)
		return
	}
	s.mu.Lock()
	lost := s.faults.takeLostAnswer(rec.OperationName)
	if lost {
		rec.Fault, rec.Status = "answer lost", http.StatusOK
		s.requests = append(s.requests, rec)
	}
	s.mu.Unlock()
	if lost {
		// Applied, and the connection is cut before the answer: net/http closes it without a response.
		panic(http.ErrAbortHandler)
	}
	s.answer(w, &rec, http.StatusOK, data)
}

func validationError(code, msg string) *gqlErr {
	return &gqlErr{Message: msg, Extensions: map[string]any{"code": code, "type": "graphql error", "userError": true, "statusCode": 400}}
}

func fromGQLErrors(errs gqlerror.List) []*gqlErr {
	out := make([]*gqlErr, len(errs))
	for i, e := range errs {
		out[i] = validationError("GRAPHQL_VALIDATION_FAILED", e.Message)
	}
	return out
}

// execute runs one validated operation; mutations run under the lock one at a time, as Linear serialises them.
func (s *Server) execute(viewer *user, op *ast.OperationDefinition, vars map[string]any) (any, *gqlErr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	root := s.query(viewer)
	if op.Operation == ast.Mutation {
		root = s.mutation(viewer)
	}
	out := map[string]any{}
	for _, f := range collectFields(op.SelectionSet, "") {
		if f.Name == "__typename" {
			out[f.Alias] = root["__typename"]
			continue
		}
		l, ok := root[f.Name].(lazy)
		if !ok {
			return nil, errorf("The fake Linear does not implement %s.", f.Name)
		}
		v, err := l(f.ArgumentMap(vars))
		if err == nil {
			v, err = project(v, f.SelectionSet, vars)
		}
		if err != nil {
			ge, ok := err.(*gqlErr)
			if !ok {
				ge = errorf("%v", err)
			}
			ge.Path = []any{f.Alias}
			return nil, ge
		}
		out[f.Alias] = v
	}
	return out, nil
}

func (s *Server) answer(w http.ResponseWriter, rec *Request, status int, data any, errs ...*gqlErr) {
	rec.Status = status
	s.mu.Lock()
	s.requests = append(s.requests, *rec)
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(gqlResponse{Data: data, Errors: errs})
}

// window returns the user's current hour window. Callers hold s.mu.
func (s *Server) window(userID string, now time.Time) *rateWindow {
	w := s.windows[userID]
	if w == nil || now.Sub(w.start) >= time.Hour {
		w = &rateWindow{start: now}
		s.windows[userID] = w
	}
	return w
}

// overQuota counts the request against the user's hour and reports whether the quota is spent.
func (s *Server) overQuota(userID string, h http.Header) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.window(userID, s.now())
	if w.count >= s.opts.RequestsPerHour {
		return true
	}
	w.count++
	s.writeRateHeadersLocked(h, w)
	return false
}

func (s *Server) setRateHeaders(h http.Header, userID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writeRateHeadersLocked(h, s.window(userID, s.now()))
}

func (s *Server) writeRateHeadersLocked(h http.Header, w *rateWindow) {
	reset := strconv.FormatInt(w.start.Add(time.Hour).UnixMilli(), 10)
	limit := s.opts.RequestsPerHour
	h.Set("X-RateLimit-Requests-Limit", strconv.Itoa(limit))
	h.Set("X-RateLimit-Requests-Remaining", strconv.Itoa(max(limit-w.count, 0)))
	h.Set("X-RateLimit-Requests-Reset", reset)
	h.Set("X-Complexity", "1")
	h.Set("X-RateLimit-Complexity-Limit", strconv.Itoa(limit*1000))
	h.Set("X-RateLimit-Complexity-Remaining", strconv.Itoa(max(limit-w.count, 0)*1000))
	h.Set("X-RateLimit-Complexity-Reset", reset)
}

func (s *Server) writeRateLimited(w http.ResponseWriter, rec *Request, rl *RateLimit) {
	now := s.now()
	retry := rl.RetryAfter
	if retry <= 0 {
		s.mu.Lock()
		if win := s.windows[rec.Auth]; win != nil {
			retry = win.start.Add(time.Hour).Sub(now)
		}
		s.mu.Unlock()
		retry = max(retry, time.Second)
	}
	if rl.Status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", strconv.Itoa(int((retry+time.Second-1)/time.Second)))
	} else {
		// Linear's way: HTTP 400, the reset in the headers, the code in the body.
		w.Header().Set("X-RateLimit-Requests-Remaining", "0")
		w.Header().Set("X-RateLimit-Requests-Reset", strconv.FormatInt(now.Add(retry).UnixMilli(), 10))
	}
	status := rl.Status
	if status == 0 {
		status = http.StatusBadRequest
	}
	msg := fmt.Sprintf("Rate limit exceeded. Only %d requests are allowed per 1 hour and you have made %d requests in the last hour.",
		s.opts.RequestsPerHour, s.opts.RequestsPerHour)
	s.answer(w, rec, status, nil, &gqlErr{Message: msg, Extensions: map[string]any{"code": "RATELIMITED", "statusCode": 429}})
}

// ForbidKey makes a known API key authenticate but be refused everything with 403 FORBIDDEN, as for a user who lost
// access; AllowKey lifts it. Unlike RevokeKey, Linear still knows who the key is.
func (s *Server) ForbidKey(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.forbidden == nil {
		s.forbidden = map[string]bool{}
	}
	s.forbidden[key] = true
}

// AllowKey lifts ForbidKey.
func (s *Server) AllowKey(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.forbidden, key)
}

func (s *Server) isForbidden(auth string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.forbidden[auth]
}

// AddAPIKey lets key authenticate as the user with email, sent as "Authorization: <key>".
func (s *Server) AddAPIKey(email, key string) error { return s.addKey(email, key) }

// AddOAuthToken lets token authenticate as the user with email, sent as "Authorization: Bearer <token>".
func (s *Server) AddOAuthToken(email, token string) error { return s.addKey(email, "Bearer "+token) }

func (s *Server) addKey(email, header string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.userByEmail(email)
	if u == nil {
		return fmt.Errorf("add credential: no user %s", email)
	}
	s.keys[header] = u.ID
	return nil
}

func (s *Server) userByEmail(email string) *user {
	for _, u := range s.users {
		if strings.EqualFold(u.Email, email) {
			return u
		}
	}
	return nil
}

// Flush waits until every queued webhook delivery, retry and delayed send has finished.
func (s *Server) Flush(ctx context.Context) error { return s.hooks.flush(ctx) }
