package activities

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestPublicHTTPClientRefusesPrivateTargets(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) }))
	t.Cleanup(srv.Close)

	_, err := PublicHTTPClient(false, 2*time.Second).Get(srv.URL)
	require.ErrorContains(t, err, "not a public address", "loopback is refused")

	resp, err := PublicHTTPClient(true, 2*time.Second).Get(srv.URL)
	require.NoError(t, err, "allowed when configured")
	resp.Body.Close()
	require.Equal(t, 204, resp.StatusCode)

	for addr, public := range map[string]bool{
		"8.8.8.8": true, "2606:4700::1111": true, "10.1.2.3": false, "192.168.0.1": false, "172.16.0.1": false,
		"127.0.0.1": false, "::1": false, "169.254.169.254": false, "fe80::1": false, "100.64.0.1": false,
		"0.0.0.0": false, "224.0.0.1": false, "::ffff:10.0.0.1": false,
	} {
		require.Equal(t, public, publicAddr(netip.MustParseAddr(addr)), addr)
	}
}

func TestPublicHTTPClientDoesNotFollowRedirects(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://169.254.169.254/latest/meta-data", http.StatusFound)
	}))
	t.Cleanup(srv.Close)
	resp, err := PublicHTTPClient(true, 2*time.Second).Get(srv.URL)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusFound, resp.StatusCode, "the redirect is answered, not followed")
}
