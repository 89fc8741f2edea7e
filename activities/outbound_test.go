package activities

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestPublicHTTPClientRefusesPrivateTargets(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) }))
	t.Cleanup(srv.Close)

	_, err := PublicHTTPClient(false, 2*time.Second).Get(srv.URL)
	require.ErrorContains(t, err, "not public", "loopback is refused")

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

func TestPublicAddrRefusesTranslatedAndReservedRanges(t *testing.T) {
	t.Parallel()
	for _, addr := range []string{
		"64:ff9b::a00:1",  // NAT64 of 10.0.0.1
		"64:ff9b::7f00:1", // NAT64 of 127.0.0.1
		"64:ff9b:1::a9fe:a9fe",
		"198.18.0.1", "198.19.255.254", // benchmarking
		"240.0.0.1", "255.255.255.254", // reserved
		"0.1.2.3", // this network
	} {
		require.False(t, publicAddr(netip.MustParseAddr(addr)), addr)
	}
	for _, addr := range []string{"198.20.0.1", "198.17.255.255", "239.255.255.255", "2001:4860:4860::8888"} {
		if addr == "239.255.255.255" {
			require.False(t, publicAddr(netip.MustParseAddr(addr)), "multicast stays refused")
			continue
		}
		require.True(t, publicAddr(netip.MustParseAddr(addr)), addr)
	}
}

func TestRefusalNamesNoAddressAndNoQuery(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) }))
	t.Cleanup(srv.Close)
	_, err := PublicHTTPClient(false, 2*time.Second).Get(srv.URL + "/hook?token=sekrit-query-token#frag")
	require.Error(t, err)
	redacted := RedactURLError(err).Error()
	require.NotContains(t, redacted, "sekrit-query-token", "the query string stays out of histories")
	require.NotContains(t, redacted, "frag")
	require.Contains(t, redacted, "/hook", "the path still says where the call went")
	// Dialled by name, so that the refusal would have to name the address the name resolved to.
	_, err = PublicHTTPClient(false, 2*time.Second).Get(strings.Replace(srv.URL, "127.0.0.1", "localhost", 1) + "/hook")
	require.ErrorIs(t, err, errNotPublic)
	require.NotContains(t, err.Error(), "127.0.0.1", "the refusal does not reveal the resolved address")
	require.NotContains(t, err.Error(), "::1")
	require.Equal(t, "https://app.example.com/cb", RedactURL("https://user:pw@app.example.com/cb?sig=x#y"))
}
