package console

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

const (
	sessionCookie = "linsync_console"
	// signinCookie carries the sign-in form's CSRF token before there is a session (double submit).
	signinCookie = "linsync_console_signin"
	csrfField    = "csrf"
	csrfHeader   = "X-CSRF-Token"
)

// session is a signed-in admin, sealed in the session cookie: authenticated encryption under linsync's envelope
// key, so the cookie can be neither read nor changed nor made elsewhere. The token is the admin's API token, which
// every API call of the console carries; it never reaches the page.
type session struct {
	Workspace string `json:"w"`
	Token     string `json:"t"`
	CSRF      string `json:"c"`
	Expires   int64  `json:"e"`
}

func (c *Console) secure(r *http.Request) bool { return r.TLS != nil || c.opts.SecureCookies }

func (c *Console) writeSession(ctx context.Context, w http.ResponseWriter, r *http.Request, s *session) error {
	raw, err := json.Marshal(s)
	if err != nil {
		return err
	}
	sealed, err := c.opts.Sealer.Encrypt(ctx, raw)
	if err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: base64.RawURLEncoding.EncodeToString(sealed), Path: Prefix,
		Expires: time.Unix(s.Expires, 0), MaxAge: int(time.Until(time.Unix(s.Expires, 0)).Seconds()),
		HttpOnly: true, Secure: c.secure(r), SameSite: http.SameSiteLaxMode})
	return nil
}

func (c *Console) clearCookie(w http.ResponseWriter, r *http.Request, name string) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: Prefix, MaxAge: -1, HttpOnly: true, Secure: c.secure(r),
		SameSite: http.SameSiteLaxMode})
}

// readSession opens the session cookie; nil when there is none, it was not sealed by linsync, or it expired.
func (c *Console) readSession(r *http.Request) *session {
	ck, err := r.Cookie(sessionCookie)
	if err != nil || ck.Value == "" || len(ck.Value) > 4096 {
		return nil
	}
	sealed, err := base64.RawURLEncoding.DecodeString(ck.Value)
	if err != nil {
		return nil
	}
	raw, err := c.opts.Sealer.Decrypt(r.Context(), sealed)
	if err != nil {
		return nil
	}
	var s session
	if json.Unmarshal(raw, &s) != nil || s.Workspace == "" || s.Token == "" || s.CSRF == "" {
		return nil
	}
	if c.opts.Now().Unix() >= s.Expires {
		return nil
	}
	return &s
}

// csrfFrom is the CSRF token a request carries: htmx's header, or the form's hidden field. It parses a form body
// (urlencoded or multipart, at most 1 MiB) for the handler too; the token is never read from the URL.
func csrfFrom(w http.ResponseWriter, r *http.Request) string {
	ct := r.Header.Get("Content-Type")
	var form string
	if strings.HasPrefix(ct, "application/x-www-form-urlencoded") || strings.HasPrefix(ct, "multipart/form-data") {
		r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
		if err := r.ParseForm(); err == nil {
			form = r.PostForm.Get(csrfField)
		}
	}
	if v := r.Header.Get(csrfHeader); v != "" {
		return v
	}
	return form
}

// withSession requires a live session; a POST must also carry the session's CSRF token, or it is refused with 403
// before anything is read or changed.
func (c *Console) withSession(next func(http.ResponseWriter, *http.Request, *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s := c.readSession(r)
		if s == nil {
			if r.Method != http.MethodGet {
				http.Error(w, "sign in first", http.StatusUnauthorized)
				return
			}
			if r.Header.Get("HX-Request") != "" {
				w.Header().Set("HX-Redirect", Prefix+"/signin")
			}
			http.Redirect(w, r, Prefix+"/signin", http.StatusSeeOther)
			return
		}
		if r.Method != http.MethodGet && !equalSecret(s.CSRF, csrfFrom(w, r)) {
			c.render(w, http.StatusForbidden, "error", page{Title: "Refused", Workspace: s.Workspace, CSRF: s.CSRF,
				Error: "This form was refused: its CSRF token is missing or wrong. Reload the page and try again."})
			return
		}
		next(w, r, s)
	}
}

func (c *Console) handleHome(w http.ResponseWriter, r *http.Request) {
	if c.readSession(r) == nil {
		http.Redirect(w, r, Prefix+"/signin", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, Prefix+"/integration", http.StatusSeeOther)
}

type signinData struct {
	Workspace string
}

func (c *Console) handleSignInPage(w http.ResponseWriter, r *http.Request) {
	c.signinForm(w, r, http.StatusOK, r.URL.Query().Get("workspace"), notices[r.URL.Query().Get("done")], "")
}

func (c *Console) signinForm(w http.ResponseWriter, r *http.Request, status int, ws, notice, msg string) {
	// A page loaded twice (a second tab, a prefetch) keeps the token the first one has, so either form signs in.
	tok := randomToken()
	if ck, err := r.Cookie(signinCookie); err == nil && len(ck.Value) == len(tok) {
		tok = ck.Value
	}
	http.SetCookie(w, &http.Cookie{Name: signinCookie, Value: tok, Path: Prefix, MaxAge: 3600, HttpOnly: true,
		Secure: c.secure(r), SameSite: http.SameSiteStrictMode})
	c.render(w, status, "signin", page{Title: "Sign in", CSRF: tok, Notice: notice, Error: msg, Data: signinData{Workspace: ws}})
}

// handleSignIn checks the admin token against the workspace through the API (GET /v1/workspaces/{ws} needs the
// admin scope) and starts a session.
func (c *Console) handleSignIn(w http.ResponseWriter, r *http.Request) {
	pre, err := r.Cookie(signinCookie)
	if err != nil || !equalSecret(pre.Value, csrfFrom(w, r)) {
		c.signinForm(w, r, http.StatusForbidden, "", "", "The sign-in form expired or its CSRF token is wrong; try again.")
		return
	}
	ws := strings.TrimSpace(r.PostForm.Get("workspace"))
	tok := strings.TrimSpace(r.PostForm.Get("token"))
	if ws == "" || tok == "" {
		c.signinForm(w, r, http.StatusUnprocessableEntity, ws, "", "Both the workspace and an admin token are required.")
		return
	}
	s := &session{Workspace: ws, Token: tok, CSRF: randomToken(), Expires: c.opts.Now().Add(c.opts.SessionTTL).Unix()}
	var out struct {
		Workspace struct {
			Slug string `json:"slug"`
		} `json:"workspace"`
		Slug string `json:"slug"`
	}
	if _, err := c.call(r, s, http.MethodGet, "", nil, &out); err != nil {
		// One message for every refusal: which workspaces exist is not for a wrong token to learn.
		c.opts.Log.Info("console sign-in refused", "status", statusOf(err))
		c.signinForm(w, r, http.StatusUnauthorized, ws, "", "Sign-in refused: that workspace and admin token do not go together.")
		return
	}
	if slug := firstNonEmpty(out.Workspace.Slug, out.Slug); slug != "" {
		s.Workspace = slug
	}
	if err := c.writeSession(r.Context(), w, r, s); err != nil {
		c.opts.Log.Error("seal console session", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	c.clearCookie(w, r, signinCookie)
	http.Redirect(w, r, Prefix+"/integration", http.StatusSeeOther)
}

func (c *Console) handleSignOut(w http.ResponseWriter, r *http.Request, _ *session) {
	c.clearCookie(w, r, sessionCookie)
	http.Redirect(w, r, Prefix+"/signin?done=signedout", http.StatusSeeOther)
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
