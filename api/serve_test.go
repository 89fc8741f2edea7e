package api_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/linsync/linsync/api"
	"github.com/linsync/linsync/linsynctest"
)

// TestServeShutsDownGracefully: when the process is told to stop, a request in flight still gets its answer, new
// connections are refused, and Serve returns without error.
func TestServeShutsDownGracefully(t *testing.T) {
	t.Parallel()
	addr, err := linsynctest.FreeHostPort()
	require.NoError(t, err)
	started := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		time.Sleep(300 * time.Millisecond) // a request still being answered when the signal comes
		w.WriteHeader(http.StatusNoContent)
	})
	ctx, stop := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- api.Serve(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)), addr, h, 5*time.Second) }()

	require.Eventually(t, func() bool { // listening
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, 5*time.Second, 10*time.Millisecond)
	answer := make(chan *http.Response, 1)
	go func() {
		r, err := http.Get("http://" + addr + "/slow")
		if err != nil {
			r = nil
		}
		answer <- r
	}()
	<-started
	stop()
	require.NoError(t, <-done, "Serve returns cleanly after draining")
	resp := <-answer
	require.NotNil(t, resp, "the request in flight was answered")
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	resp.Body.Close()
	_, err = http.Get("http://" + addr + "/slow")
	require.Error(t, err, "no new connections after shutdown")
}
