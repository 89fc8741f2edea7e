package api

import (
	"crypto/subtle"
	"net/http"
	"net/netip"
	"slices"

	"github.com/gin-gonic/gin"
	"go.temporal.io/sdk/converter"

	"github.com/linsync/linsync"
)

// codecMaxBody bounds one codec request: the Temporal UI sends the payloads of one history event or one page.
const codecMaxBody = 8 << 20

// registerCodecRoutes serves Temporal's codec-server protocol (POST <endpoint>/encode and /decode, JSON Payloads in
// and out) at /codec, so an operator's Temporal Web UI or CLI shows the plaintext of the payloads linsync seals.
//
// The endpoint opens every tenant's data, so only an operator may call it: the bearer token must be the codec token
// (LINSYNC_CODEC_TOKEN), never a workspace's API token. CORS lets the Temporal UI's origin call it from the browser.
// Without a codec the routes are not served; without a token they answer 501.
func (s *Server) registerCodecRoutes(e *gin.Engine) {
	if s.cfg.Codec == nil {
		return
	}
	h := converter.NewPayloadCodecHTTPHandler(s.cfg.Codec)
	serve := func(c *gin.Context) {
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, codecMaxBody)
		h.ServeHTTP(c.Writer, c.Request)
	}
	for _, p := range []string{"/codec/encode", "/codec/decode"} {
		e.OPTIONS(p, s.codecCORS)
		e.POST(p, s.codecCORS, s.requireCodecToken, serve)
	}
}

// codecCORS answers the browser's preflight and marks answers readable by the configured Temporal UI origins only.
func (s *Server) codecCORS(c *gin.Context) {
	origin := c.GetHeader("Origin")
	if origin != "" && slices.Contains(s.cfg.CodecOrigins, origin) {
		h := c.Writer.Header()
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Allow-Credentials", "true")
		h.Set("Access-Control-Allow-Methods", "POST, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, X-Namespace")
		h.Set("Access-Control-Max-Age", "600")
		h.Add("Vary", "Origin")
	}
	if c.Request.Method == http.MethodOptions {
		c.AbortWithStatus(http.StatusNoContent)
	}
}

// requireCodecToken admits the codec token, and, where the configuration allows it (the dev stack, which listens on
// loopback only), any caller connected from loopback.
func (s *Server) requireCodecToken(c *gin.Context) {
	if s.cfg.CodecAllowLoopback && isLoopback(c.Request.RemoteAddr) {
		c.Next()
		return
	}
	want := s.cfg.CodecToken
	if want == "" {
		s.writeError(c, linsync.Errorf(linsync.ENOTIMPLEMENTED, "the codec endpoint needs a codec token (LINSYNC_CODEC_TOKEN)"))
		return
	}
	got := bearer(c)
	if got == "" || subtle.ConstantTimeCompare([]byte(want), []byte(got)) != 1 {
		s.writeError(c, linsync.Errorf(linsync.EUNAUTHORIZED, "the codec token is required"))
		return
	}
	c.Next()
}

// isLoopback reports whether the peer address (host:port, as net/http records it) is a loopback address; proxies'
// headers do not count.
func isLoopback(remoteAddr string) bool {
	ap, err := netip.ParseAddrPort(remoteAddr)
	return err == nil && ap.Addr().Unmap().IsLoopback()
}
