package e2e

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/linsync/linsync/api"
)

// TestTrustedProxyIsReadOnlyThroughXForwardedFor: behind a trusted proxy the sender is read from X-Forwarded-For
// alone. Gin would also believe X-Real-IP, which a proxy that only appends X-Forwarded-For passes through from the
// client untouched, so a stranger could name an allowed sender in it.
func TestTrustedProxyIsReadOnlyThroughXForwardedFor(t *testing.T) {
	t.Parallel()
	h := newHarness(t, api.Config{AllowedSenders: pfx("10.1.2.3/32"), TrustedProxies: pfx("127.0.0.1/32")}, nil, false)
	d := h.signed(issueBody(testOrg, time.Now()))
	d.header = http.Header{"X-Real-Ip": {"10.1.2.3"}}
	status, body := h.post(d)
	require.Equal(t, http.StatusForbidden, status, "X-Real-IP names an allowed sender: %v", body)
	h.requireNotStarted(d.id)

	d = h.signed(issueBody(testOrg, time.Now()))
	d.header = http.Header{"X-Real-Ip": {"10.9.9.9"}, "X-Forwarded-For": {"10.1.2.3"}}
	status, body = h.post(d)
	require.Equal(t, http.StatusOK, status, "X-Forwarded-For is what counts: %v", body)
}
