package activities

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"syscall"
	"time"

	"github.com/linsync/linsync"
)

// errNotPublic refuses a dial to an address that is not on the public internet. It names no address: the resolved
// one may be internal, and the message reaches workflow histories, dead letters and the tenant who configured the URL.
var errNotPublic = errors.New("outbound call refused: the address is not public")

// PublicHTTPClient returns the client for outbound calls to addresses users configure (the Q&A app's callback URL):
// it refuses to connect to loopback, private, link-local, multicast or unspecified addresses, checked on the
// address actually dialled so DNS cannot smuggle one in, and does not follow redirects. allowPrivate lifts the
// address check, for development and for deployments whose apps live on a private network.
func PublicHTTPClient(allowPrivate bool, timeout time.Duration) *http.Client {
	dialer := &net.Dialer{Timeout: timeout}
	if !allowPrivate {
		dialer.Control = func(network, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil || !publicAddr(ap.Addr()) {
				return errNotPublic
			}
			return nil
		}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = func(ctx context.Context, network, address string) (net.Conn, error) {
		conn, err := dialer.DialContext(ctx, network, address)
		if errors.Is(err, errNotPublic) {
			return nil, errNotPublic // the dial error would name the resolved address
		}
		return conn, err
	}
	tr.Proxy = nil // a proxy would dial on our behalf, past the address check
	return &http.Client{Transport: tr, Timeout: timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// publicAddr reports whether a is an address on the public internet (linsync.PublicAddr).
func publicAddr(a netip.Addr) bool { return linsync.PublicAddr(a) }

// RedactURLError strips the query string, fragment and credentials from the URL an HTTP client error names, so an
// outbound failure recorded in a workflow history or a dead letter never carries a token a user put in a URL.
func RedactURLError(err error) error {
	var ue *url.Error
	if !errors.As(err, &ue) {
		return err
	}
	return &url.Error{Op: ue.Op, URL: RedactURL(ue.URL), Err: ue.Err}
}

// RedactURL is raw without its query string, fragment and user information; an unparsable URL becomes "(url)".
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(url)"
	}
	u.User, u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = nil, "", false, "", ""
	return u.String()
}
