package main

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestConsoleURL(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]string{
		"127.0.0.1:8080": "http://127.0.0.1:8080/console",
		":8080":          "http://127.0.0.1:8080/console",
		"0.0.0.0:9000":   "http://127.0.0.1:9000/console",
		"[::1]:8080":     "http://[::1]:8080/console",
		"localhost:8080": "http://localhost:8080/console",
	} {
		require.Equal(t, want, consoleURL(addr), addr)
	}
}

// TestDevConsoleSignIn is the console's "done when" through the binary: `linsync dev` serves /console on its API,
// and signing in with the dev workspace's printed admin token shows the integration card connected to the fake
// Linear. Nothing but the console's own pages is used (the session is sealed with the dev stack's key).
func TestDevConsoleSignIn(t *testing.T) {
	api, _, dir := devStack(t, nil)
	token, err := os.ReadFile(filepath.Join(dir, "admin.token"))
	require.NoError(t, err)
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	hc := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	get := func(resp *http.Response, err error) (*http.Response, string) {
		t.Helper()
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp, string(b)
	}
	resp, page := get(hc.Get(consoleURL(api)))
	require.Equal(t, "/console/signin", resp.Request.URL.Path, "the console asks to sign in first")
	require.Contains(t, resp.Header.Get("Content-Security-Policy"), "default-src 'self'")
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	require.Len(t, m, 2)
	resp, page = get(hc.PostForm("http://"+api+"/console/signin",
		url.Values{"csrf": {m[1]}, "workspace": {"dev"}, "token": {strings.TrimSpace(string(token))}}))
	require.Equal(t, http.StatusOK, resp.StatusCode, page)
	require.Equal(t, "/console/integration", resp.Request.URL.Path)
	require.Contains(t, page, `id="conn-status">connected`)
	require.NotContains(t, page, strings.TrimSpace(string(token)), "the token never reaches a page")
	for _, ck := range jar.Cookies(resp.Request.URL) {
		require.NotContains(t, ck.Value, strings.TrimSpace(string(token)), "nor the cookie in clear")
	}
	_, asset := get(hc.Get("http://" + api + "/console/static/htmx.min.js"))
	require.Contains(t, asset, "Zero-Clause BSD", "htmx is served from the binary with its licence")
}
