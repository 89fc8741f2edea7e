package activities

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// PublicHTTPClient returns the client for outbound calls to addresses users configure (the Q&A app's callback URL):
// it refuses to connect to loopback, private, link-local, multicast or unspecified addresses, checked on the
// address actually dialled so DNS cannot smuggle one in, and does not follow redirects. allowPrivate lifts the
// address check, for development and for deployments whose apps live on a private network.
func PublicHTTPClient(allowPrivate bool, timeout time.Duration) *http.Client {
	dialer := &net.Dialer{Timeout: timeout}
	if !allowPrivate {
		dialer.Control = func(network, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("outbound call refused: unparsable address %q", address)
			}
			if !publicAddr(ap.Addr()) {
				return fmt.Errorf("outbound call to %s refused: not a public address", ap.Addr())
			}
			return nil
		}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = dialer.DialContext
	tr.Proxy = nil // a proxy would dial on our behalf, past the address check
	return &http.Client{Transport: tr, Timeout: timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// publicAddr reports whether a is an address on the public internet.
func publicAddr(a netip.Addr) bool {
	a = a.Unmap()
	return a.IsValid() && a.IsGlobalUnicast() && !a.IsPrivate() && !a.IsLoopback() && !a.IsLinkLocalUnicast() &&
		!cgnat.Contains(a)
}

// cgnat is the shared address space of carrier-grade NAT (RFC 6598), private in all but name.
var cgnat = netip.MustParsePrefix("100.64.0.0/10")
