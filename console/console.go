// Package console is linsync's operator console at /console: server-rendered pages (html/template, with htmx
// served from the binary) over linsync's own REST API. Every read and write goes through the API's handler,
// in-process, with the signed-in admin's token, so the console has no path to the data that the API lacks.
package console

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

//go:embed static templates
var assets embed.FS

// Prefix is where the console is served.
const Prefix = "/console"

// Sealer seals and opens session cookies: authenticated encryption, so a cookie is both secret and signed.
// envelope.Keeper is one.
type Sealer interface {
	Encrypt(ctx context.Context, plaintext []byte) ([]byte, error)
	Decrypt(ctx context.Context, ciphertext []byte) ([]byte, error)
}

// Options configure the console.
type Options struct {
	// API is linsync's REST API handler; the console calls it in-process for every read and write.
	API http.Handler
	// Sealer seals the session cookie (the envelope keeper: the cookie opens only where linsync's key is).
	Sealer Sealer
	// SessionTTL is how long a sign-in lasts. Default 12 h.
	SessionTTL time.Duration
	// SecureCookies marks cookies Secure even when the request did not arrive over TLS here (TLS ends at a proxy).
	// A request that did arrive over TLS always gets Secure cookies.
	SecureCookies bool
	// OAuthEnabled shows "Connect with Linear" (Linear's OAuth application is configured).
	OAuthEnabled bool
	// TemporalUIURL is shown beside failed events when the API gives no link of its own.
	TemporalUIURL string
	// Log receives the console's own errors; nil discards them.
	Log *slog.Logger
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// Console serves the operator console.
type Console struct {
	opts   Options
	pages  map[string]*template.Template
	static http.Handler
	mux    *http.ServeMux
}

// New returns the console's handler for paths under Prefix.
func New(opts Options) (*Console, error) {
	if opts.API == nil || opts.Sealer == nil {
		return nil, errors.New("console: API and Sealer are required")
	}
	if opts.SessionTTL == 0 {
		opts.SessionTTL = 12 * time.Hour
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	c := &Console{opts: opts, pages: map[string]*template.Template{}}
	if err := c.parseTemplates(); err != nil {
		return nil, err
	}
	sub, err := fs.Sub(assets, "static")
	if err != nil {
		return nil, err
	}
	c.static = http.StripPrefix(Prefix+"/static/", http.FileServerFS(sub))
	c.routes()
	return c, nil
}

func (c *Console) parseTemplates() error {
	names, err := fs.Glob(assets, "templates/*.html")
	if err != nil {
		return err
	}
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if base == "layout" {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(assets, "templates/layout.html", n)
		if err != nil {
			return fmt.Errorf("parse console template %s: %w", n, err)
		}
		c.pages[base] = t
	}
	return nil
}

func (c *Console) routes() {
	m := http.NewServeMux()
	m.Handle("GET "+Prefix+"/static/", c.static)
	m.HandleFunc("GET "+Prefix+"/{$}", c.handleHome)
	m.HandleFunc("GET "+Prefix+"/signin", c.handleSignInPage)
	m.HandleFunc("POST "+Prefix+"/signin", c.handleSignIn)
	m.HandleFunc("POST "+Prefix+"/signout", c.withSession(c.handleSignOut))

	m.HandleFunc("GET "+Prefix+"/integration", c.withSession(c.handleIntegration))
	m.HandleFunc("POST "+Prefix+"/integration/validate", c.withSession(c.handleValidate))
	m.HandleFunc("POST "+Prefix+"/integration/connect", c.withSession(c.handleConnect))
	m.HandleFunc("POST "+Prefix+"/integration/defaults", c.withSession(c.handleDefaults))
	m.HandleFunc("POST "+Prefix+"/integration/disconnect", c.withSession(c.handleDisconnect))
	m.HandleFunc("POST "+Prefix+"/integration/oauth", c.withSession(c.handleOAuthStart))

	m.HandleFunc("GET "+Prefix+"/routing", c.withSession(c.handleRouting))
	m.HandleFunc("POST "+Prefix+"/routing/save", c.withSession(c.handleRuleSave))
	m.HandleFunc("POST "+Prefix+"/routing/move", c.withSession(c.handleRuleMove))
	m.HandleFunc("POST "+Prefix+"/routing/delete", c.withSession(c.handleRuleDelete))
	m.HandleFunc("POST "+Prefix+"/routing/simulate", c.withSession(c.handleSimulate))

	m.HandleFunc("GET "+Prefix+"/failed", c.withSession(c.handleFailed))
	m.HandleFunc("GET "+Prefix+"/failed/{id}", c.withSession(c.handleFailedOne))
	m.HandleFunc("POST "+Prefix+"/failed/{id}/replay", c.withSession(c.handleReplayOne))
	m.HandleFunc("POST "+Prefix+"/failed/bulk", c.withSession(c.handleBulkReplay))
	m.HandleFunc("GET "+Prefix+"/failed/bulk/{request}", c.withSession(c.handleBulkProgress))

	m.HandleFunc("GET "+Prefix+"/sync", c.withSession(c.handleSync))
	m.HandleFunc("GET "+Prefix+"/gateway", c.withSession(c.handleGateway))
	m.HandleFunc("POST "+Prefix+"/gateway/approvals/{id}/{decision}", c.withSession(c.handleDecide))
	m.HandleFunc("GET "+Prefix+"/notifications", c.withSession(c.handleNotifications))
	m.HandleFunc("POST "+Prefix+"/notifications/targets", c.withSession(c.handleTargetCreate))
	m.HandleFunc("POST "+Prefix+"/notifications/targets/{id}/test", c.withSession(c.handleTargetTest))
	m.HandleFunc("POST "+Prefix+"/notifications/targets/{id}/delete", c.withSession(c.handleTargetDelete))
	m.HandleFunc("POST "+Prefix+"/notifications/rules", c.withSession(c.handleNotifyRuleSave))
	m.HandleFunc("POST "+Prefix+"/notifications/rules/{id}/toggle", c.withSession(c.handleNotifyRuleToggle))
	m.HandleFunc("POST "+Prefix+"/notifications/rules/{id}/delete", c.withSession(c.handleNotifyRuleDelete))
	m.HandleFunc("POST "+Prefix+"/notifications/simulate", c.withSession(c.handleNotifySimulate))
	c.mux = m
}

// ServeHTTP serves the console with its security headers: a strict Content-Security-Policy (nothing inline, nothing
// from elsewhere), no framing, no sniffing, no caching of pages that show a workspace's data.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "+
		"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	if !strings.HasPrefix(r.URL.Path, Prefix+"/static/") {
		h.Set("Cache-Control", "no-store")
	}
	if r.URL.Path == Prefix {
		http.Redirect(w, r, Prefix+"/", http.StatusSeeOther)
		return
	}
	c.mux.ServeHTTP(w, r)
}

// apiResult is one answer of the API.
type apiResult struct {
	Status int
	Body   []byte
	Header http.Header
}

// apiError is the API's shared Error shape.
type apiError struct {
	Status  int
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field"`
}

func (e *apiError) Error() string {
	if e.Field != "" {
		return e.Message + " (" + e.Field + ")"
	}
	return e.Message
}

// call sends one request to the API in-process, as the signed-in admin, and decodes a 2xx answer into out. Any
// other answer is an *apiError.
func (c *Console) call(r *http.Request, s *session, method, path string, body, out any) (*apiResult, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(r.Context(), method, "/v1/workspaces/"+url.PathEscape(s.Workspace)+path, rd)
	if err != nil {
		return nil, err
	}
	req.RemoteAddr = r.RemoteAddr
	req.Header.Set("Authorization", "Bearer "+s.Token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := &recorder{header: http.Header{}}
	c.opts.API.ServeHTTP(rec, req)
	res := &apiResult{Status: rec.status(), Body: rec.body.Bytes(), Header: rec.header}
	if res.Status < 200 || res.Status > 299 {
		e := &apiError{Status: res.Status}
		var wrapped struct {
			Error *apiError `json:"error"`
		}
		if json.Unmarshal(res.Body, &wrapped) == nil && wrapped.Error != nil {
			e.Code, e.Message, e.Field = wrapped.Error.Code, wrapped.Error.Message, wrapped.Error.Field
		}
		if e.Message == "" {
			e.Message = http.StatusText(res.Status)
		}
		return res, e
	}
	if out != nil && len(res.Body) > 0 {
		if err := json.Unmarshal(res.Body, out); err != nil {
			return res, fmt.Errorf("decode %s %s: %w", method, path, err)
		}
	}
	return res, nil
}

// recorder is the in-process response of an API call.
type recorder struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.body.Write(b)
}
func (r *recorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
}
func (r *recorder) status() int {
	if r.code == 0 {
		return http.StatusOK
	}
	return r.code
}

// notFound reports an API answer of 404.
func notFound(err error) bool {
	var e *apiError
	return errors.As(err, &e) && e.Status == http.StatusNotFound
}

// page is what every page's template gets.
type page struct {
	Title     string
	Nav       string
	Workspace string
	CSRF      string
	Notice    string
	Error     string
	OAuth     bool
	Data      any
}

func (c *Console) render(w http.ResponseWriter, status int, name string, p page) {
	t, ok := c.pages[name]
	if !ok {
		http.Error(w, "no such page", http.StatusInternalServerError)
		return
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout.html", p); err != nil {
		c.opts.Log.Error("render console page", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// newPage starts a signed-in page.
func (c *Console) newPage(r *http.Request, s *session, nav, title string) page {
	return page{Title: title, Nav: nav, Workspace: s.Workspace, CSRF: s.CSRF, OAuth: c.opts.OAuthEnabled,
		Notice: notices[r.URL.Query().Get("done")]}
}

// notices are the messages a redirect after a change may show, by name (never text from the URL).
var notices = map[string]string{
	"connected":    "Linear is connected.",
	"defaults":     "Defaults saved.",
	"disconnected": "Linear is disconnected.",
	"rules":        "Routing rules saved.",
	"approved":     "Approved.",
	"denied":       "Denied.",
	"signedout":    "Signed out.",
	"target-del":   "Target deleted.",
	"rule-saved":   "Notification rule saved.",
	"rule-on":      "Notification rule enabled.",
	"rule-off":     "Notification rule disabled.",
	"rule-del":     "Notification rule deleted.",
}

// errorText is what a page shows for a failed API call: the API's message, never an internal detail.
func errorText(err error) string {
	var e *apiError
	if errors.As(err, &e) {
		return e.Error()
	}
	return "internal error"
}

// statusOf is the status a page answers with after a failed API call.
func statusOf(err error) int {
	var e *apiError
	if errors.As(err, &e) && e.Status >= 400 {
		return e.Status
	}
	return http.StatusInternalServerError
}

func randomToken() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func equalSecret(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

var funcs = template.FuncMap{
	"ago": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		d := time.Since(t).Round(time.Second)
		switch {
		case d < time.Minute:
			return fmt.Sprintf("%ds ago", int(d.Seconds()))
		case d < time.Hour:
			return fmt.Sprintf("%dm ago", int(d.Minutes()))
		case d < 48*time.Hour:
			return fmt.Sprintf("%dh ago", int(d.Hours()))
		}
		return fmt.Sprintf("%dd ago", int(d.Hours()/24))
	},
	"join": strings.Join,
	"priority": func(p int) string {
		return priorityNames[p]
	},
	"json": func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			return ""
		}
		return string(b)
	},
	"add": func(a, b int) int { return a + b },
	"deref": func(p *int) int {
		if p == nil {
			return 0
		}
		return *p
	},
	"priorityValues": func() []int { return []int{0, 1, 2, 3, 4} },
	"has":            slices.Contains[[]string],
	// invalid marks the input an API error names (its field, as fieldBase reads it) for assistive technology.
	// errID is the id of the form's error message, which describes the input.
	"invalid": func(e *apiError, name, errID string) template.HTMLAttr {
		if e != nil && fieldBase(e.Field) == name {
			return template.HTMLAttr(`aria-invalid="true" aria-describedby="` + template.HTMLEscapeString(errID) + `"`)
		}
		return ""
	},
	"derefInt": func(p *int) string {
		if p == nil {
			return ""
		}
		return fmt.Sprint(*p)
	},
}

var priorityNames = map[int]string{0: "No priority", 1: "Urgent", 2: "High", 3: "Medium", 4: "Low"}
