package api_test

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/linsync/linsync/api"
)

// loadOpenAPI loads and validates the merged document the server serves.
func loadOpenAPI(tb testing.TB) *openapi3.T {
	tb.Helper()
	raw, err := api.OpenAPI()
	require.NoError(tb, err)
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(raw)
	require.NoError(tb, err)
	require.NoError(tb, doc.Validate(loader.Context), "the merged OpenAPI document must be valid OpenAPI 3")
	return doc
}

// openAPIRouter finds operations by request, whatever host the test server listens on.
func openAPIRouter(tb testing.TB) routers.Router {
	tb.Helper()
	doc := loadOpenAPI(tb)
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
	return &http.Client{Transport: t, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}, t
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

var ginParam = regexp.MustCompile(`[:*]([A-Za-z0-9_]+)`)

// openAPIPath turns a gin route path (/v1/workspaces/:ws) into the document's (/v1/workspaces/{ws}); an escaped
// colon (failed-events\:replay) is a literal one.
func openAPIPath(ginPath string) string {
	p := strings.ReplaceAll(ginPath, `\:`, "\x00")
	p = ginParam.ReplaceAllString(p, "{$1}")
	return strings.ReplaceAll(p, "\x00", ":")
}

func bareServer(tb testing.TB) *api.Server {
	tb.Helper()
	reg := prometheus.NewRegistry()
	s, err := api.New(api.Config{}, nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil)), reg, reg)
	require.NoError(tb, err)
	return s
}

// TestOpenAPIDocumentsEveryV1Route fails for any /v1 route (of any capability) the merged document lacks.
func TestOpenAPIDocumentsEveryV1Route(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPI(t)
	n := 0
	for _, r := range bareServer(t).Routes() {
		if !strings.HasPrefix(r.Path, "/v1/") {
			continue
		}
		n++
		item := doc.Paths.Value(openAPIPath(r.Path))
		if !assertDocumented(t, item != nil && item.GetOperation(r.Method) != nil, r.Method, r.Path) {
			continue
		}
	}
	require.Greater(t, n, 10, "the walk saw the /v1 routes")
}

func assertDocumented(t *testing.T, ok bool, method, path string) bool {
	t.Helper()
	if !ok {
		t.Errorf("%s %s is served but not documented in api/openapi/*.yaml (as %s)", method, path, openAPIPath(path))
	}
	return ok
}

// TestOpenAPIServedDocumentIsTheMergedOne checks /openapi.yaml serves the merged document, and that merging keeps
// the first definition of a component.
func TestOpenAPIServedDocumentIsTheMergedOne(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(bareServer(t).Handler())
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL + "/openapi.yaml")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, resp.Header.Get("Content-Type"), "yaml")
	served, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	want, err := api.OpenAPI()
	require.NoError(t, err)
	require.Equal(t, string(want), string(served))
	doc, err := openapi3.NewLoader().LoadFromData(served)
	require.NoError(t, err)
	require.NotNil(t, doc.Paths.Value("/v1/workspaces/{ws}/integrations/linear/webhooks/{id}/rotate"))
	require.Contains(t, doc.Components.Schemas, "Error")
}
