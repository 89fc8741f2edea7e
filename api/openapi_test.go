package api_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
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
	s, err := api.New(api.Config{}, nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil)), reg)
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
