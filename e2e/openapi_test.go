package e2e

import (
	"bytes"
	"io"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/stretchr/testify/require"

	"github.com/linsync/linsync/api"
)

// openAPIRouter finds operations of the merged document the server serves, whatever host the test server listens
// on.
func openAPIRouter(tb testing.TB) routers.Router {
	tb.Helper()
	raw, err := api.OpenAPI()
	require.NoError(tb, err)
	doc, err := openapi3.NewLoader().LoadFromData(raw)
	require.NoError(tb, err)
	doc.Servers = nil
	r, err := gorillamux.NewRouter(doc)
	require.NoError(tb, err)
	return r
}

// openAPITransport checks every /v1 request it carries, and the response to it, against the OpenAPI document, and
// keeps every response body so tests can search them (for secrets, say). Tests that send deliberately malformed
// requests use a plain client for those.
type openAPITransport struct {
	tb     testing.TB
	router routers.Router
	next   http.RoundTripper

	mu     sync.Mutex
	bodies [][]byte
}

// newOpenAPIClient returns an HTTP client whose /v1 traffic is validated against the OpenAPI document.
func newOpenAPIClient(tb testing.TB) (*http.Client, *openAPITransport) {
	tb.Helper()
	t := &openAPITransport{tb: tb, router: openAPIRouter(tb), next: http.DefaultTransport}
	// The client is the user's browser too: it keeps cookies (the OAuth browser binding), as a browser does.
	jar, err := cookiejar.New(nil)
	if err != nil {
		tb.Fatal(err)
	}
	return &http.Client{Transport: t, Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}, t
}

// Bodies returns every response body seen so far.
func (t *openAPITransport) Bodies() [][]byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([][]byte(nil), t.bodies...)
}

func (t *openAPITransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !strings.HasPrefix(req.URL.Path, "/v1/") && req.URL.Path != "/v1" {
		return t.next.RoundTrip(req)
	}
	var body []byte
	if req.Body != nil {
		var err error
		if body, err = io.ReadAll(req.Body); err != nil {
			return nil, err
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	check := req.Clone(req.Context())
	check.Body = io.NopCloser(bytes.NewReader(body))
	route, params, err := t.router.FindRoute(check)
	if err != nil {
		t.tb.Errorf("openapi: %s %s is not documented: %v", req.Method, req.URL.Path, err)
		return t.next.RoundTrip(req)
	}
	opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, IncludeResponseStatus: true, MultiError: true}
	in := &openapi3filter.RequestValidationInput{Request: check, PathParams: params, Route: route, Options: opts}
	if err := openapi3filter.ValidateRequest(req.Context(), in); err != nil {
		t.tb.Errorf("openapi: request %s %s does not match the document: %v", req.Method, req.URL.Path, err)
	}
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	out, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(out))
	t.mu.Lock()
	t.bodies = append(t.bodies, out)
	t.mu.Unlock()
	rin := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
		Body: io.NopCloser(bytes.NewReader(out)), Options: opts}
	if err := openapi3filter.ValidateResponse(req.Context(), rin); err != nil {
		t.tb.Errorf("openapi: response %d to %s %s does not match the document: %v\nbody: %s", resp.StatusCode, req.Method, req.URL.Path, err, out)
	}
	return resp, nil
}
