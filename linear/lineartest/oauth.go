package lineartest

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
)

// OAuthApp is an OAuth application registered with the fake's authorization server.
type OAuthApp struct {
	ClientID     string
	ClientSecret string
	RedirectURIs []string
	// User is the email of the user who consents at the authorize endpoint. Default: the seeded bot.
	User string
	// AccessTTL is the lifetime of access tokens (Linear: 24 h). Default 24 h.
	AccessTTL time.Duration
	// CodeTTL is the lifetime of authorization codes. Default 10 min.
	CodeTTL time.Duration
	// RefreshGrace is how long a consumed refresh token may be replayed (Linear: 30 min). Default 30 min; negative
	// disables replay.
	RefreshGrace time.Duration
}

// OAuthStats counts what the fake's token endpoint did, so tests can prove how many refreshes happened.
type OAuthStats struct {
	CodeExchanges   int
	Refreshes       int // refreshes that consumed a live refresh token
	RefreshReplays  int // refreshes that replayed a consumed token within the grace period
	RefreshRejected int
	Revocations     int
}

type oauthCode struct {
	clientID, redirectURI, challenge, method, userID string
	scopes                                           []string
	expires                                          time.Time
	used                                             bool
}

type refreshToken struct {
	clientID, userID string
	scopes           []string
	consumedAt       *time.Time
	// replacement is what consuming it returned, handed out again on a replay within the grace period.
	replacement map[string]any
}

type oauthServer struct {
	app     *OAuthApp
	codes   map[string]*oauthCode
	refresh map[string]*refreshToken
	access  map[string]string // access token → refresh token of its grant
	stats   OAuthStats
}

// EnableOAuth registers app with the fake's authorization server at BaseURL()+"/oauth/{authorize,token,revoke}".
func (s *Server) EnableOAuth(app OAuthApp) {
	if app.AccessTTL <= 0 {
		app.AccessTTL = 24 * time.Hour
	}
	if app.CodeTTL <= 0 {
		app.CodeTTL = 10 * time.Minute
	}
	if app.RefreshGrace == 0 {
		app.RefreshGrace = 30 * time.Minute
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if app.User == "" {
		for _, u := range s.users {
			if u.Name == "linsync" {
				app.User = u.Email
			}
		}
	}
	s.oauth = &oauthServer{app: &app, codes: map[string]*oauthCode{}, refresh: map[string]*refreshToken{}, access: map[string]string{}}
}

// OAuthStats returns the token endpoint's counters.
func (s *Server) OAuthStats() OAuthStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.oauth == nil {
		return OAuthStats{}
	}
	return s.oauth.stats
}

// ExpireOAuthCodes makes every authorization code issued so far expired, as if the user took too long.
func (s *Server) ExpireOAuthCodes() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.oauth == nil {
		return
	}
	for _, c := range s.oauth.codes {
		c.expires = time.Time{}
	}
}

// RevokeKey makes a personal API key stop authenticating, as when its owner deletes it in Linear's settings.
func (s *Server) RevokeKey(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.keys, key)
}

// AccessTokenValid reports whether an OAuth access token still authenticates.
func (s *Server) AccessTokenValid(token string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.keys["Bearer "+token]
	return ok
}

// RefreshTokenValid reports whether a refresh token can still be used (unconsumed and not revoked).
func (s *Server) RefreshTokenValid(token string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.oauth == nil {
		return false
	}
	rt := s.oauth.refresh[token]
	return rt != nil && rt.consumedAt == nil
}

// serveOAuth is the authorization server: GET /oauth/authorize (consents at once and redirects with a code),
// POST /oauth/token (authorization_code with PKCE, refresh_token with rotation) and POST /oauth/revoke.
func (s *Server) serveOAuth(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	enabled := s.oauth != nil
	s.mu.Unlock()
	if !enabled {
		http.NotFound(w, r)
		return
	}
	switch r.URL.Path {
	case "/oauth/authorize":
		s.oauthAuthorize(w, r)
	case "/oauth/token":
		s.oauthToken(w, r)
	case "/oauth/revoke":
		s.oauthRevoke(w, r)
	default:
		http.NotFound(w, r)
	}
}

func oauthFail(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

func (s *Server) oauthAuthorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.oauth
	switch {
	case q.Get("client_id") != o.app.ClientID:
		oauthFail(w, http.StatusBadRequest, "invalid_client", "unknown client_id")
		return
	case !slices.Contains(o.app.RedirectURIs, q.Get("redirect_uri")):
		oauthFail(w, http.StatusBadRequest, "invalid_request", "redirect_uri is not registered")
		return
	case q.Get("response_type") != "code":
		oauthFail(w, http.StatusBadRequest, "unsupported_response_type", "response_type must be code")
		return
	case q.Get("scope") == "" || strings.Contains(q.Get("scope"), " "):
		oauthFail(w, http.StatusBadRequest, "invalid_scope", "scope must be comma-separated")
		return
	case q.Get("code_challenge") != "" && q.Get("code_challenge_method") != "S256" && q.Get("code_challenge_method") != "plain":
		oauthFail(w, http.StatusBadRequest, "invalid_request", "code_challenge_method must be S256 or plain")
		return
	case q.Get("actor") != "" && q.Get("actor") != "user" && q.Get("actor") != "app":
		oauthFail(w, http.StatusBadRequest, "invalid_request", "actor must be user or app")
		return
	}
	u := s.userByEmail(o.app.User)
	if u == nil {
		oauthFail(w, http.StatusBadRequest, "access_denied", "no consenting user")
		return
	}
	code := "code_" + strings.ReplaceAll(uuid.NewString(), "-", "")
	o.codes[code] = &oauthCode{clientID: o.app.ClientID, redirectURI: q.Get("redirect_uri"), challenge: q.Get("code_challenge"),
		method: q.Get("code_challenge_method"), userID: u.ID, scopes: strings.Split(q.Get("scope"), ","),
		expires: s.now().Add(o.app.CodeTTL)}
	back, _ := url.Parse(q.Get("redirect_uri"))
	bq := back.Query()
	bq.Set("code", code)
	if st := q.Get("state"); st != "" {
		bq.Set("state", st)
	}
	back.RawQuery = bq.Encode()
	http.Redirect(w, r, back.String(), http.StatusFound)
}

func (s *Server) oauthToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		oauthFail(w, http.StatusMethodNotAllowed, "invalid_request", "POST the token request")
		return
	}
	if err := r.ParseForm(); err != nil {
		oauthFail(w, http.StatusBadRequest, "invalid_request", "malformed form")
		return
	}
	f := r.PostForm
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.oauth
	id, secret, basic := r.BasicAuth()
	if !basic {
		id, secret = f.Get("client_id"), f.Get("client_secret")
	}
	if id != o.app.ClientID {
		oauthFail(w, http.StatusUnauthorized, "invalid_client", "unknown client")
		return
	}
	switch f.Get("grant_type") {
	case "authorization_code":
		s.exchangeCode(w, f, secret)
	case "refresh_token":
		s.refreshGrant(w, f)
	default:
		oauthFail(w, http.StatusBadRequest, "unsupported_grant_type", "grant_type must be authorization_code or refresh_token")
	}
}

// exchangeCode redeems an authorization code once. Callers hold s.mu.
func (s *Server) exchangeCode(w http.ResponseWriter, f url.Values, secret string) {
	o := s.oauth
	c := o.codes[f.Get("code")]
	switch {
	case c == nil || c.used:
		oauthFail(w, http.StatusBadRequest, "invalid_grant", "authorization code is invalid or was already used")
		return
	case !s.now().Before(c.expires):
		oauthFail(w, http.StatusBadRequest, "invalid_grant", "authorization code expired")
		return
	case f.Get("redirect_uri") != c.redirectURI:
		oauthFail(w, http.StatusBadRequest, "invalid_grant", "redirect_uri does not match the authorization request")
		return
	}
	switch {
	case c.challenge != "":
		v := f.Get("code_verifier")
		want := v
		if c.method == "S256" {
			sum := sha256.Sum256([]byte(v))
			want = base64.RawURLEncoding.EncodeToString(sum[:])
		}
		if v == "" || subtle.ConstantTimeCompare([]byte(want), []byte(c.challenge)) != 1 {
			oauthFail(w, http.StatusBadRequest, "invalid_grant", "code_verifier does not match code_challenge")
			return
		}
	case subtle.ConstantTimeCompare([]byte(secret), []byte(o.app.ClientSecret)) != 1:
		oauthFail(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
		return
	}
	c.used = true
	o.stats.CodeExchanges++
	writeJSON(w, s.issueTokens(c.userID, c.scopes))
}

// refreshGrant rotates a refresh token: the old one is consumed and a new pair issued; a consumed token replayed
// within the grace period gets the same answer again. Callers hold s.mu.
func (s *Server) refreshGrant(w http.ResponseWriter, f url.Values) {
	o := s.oauth
	rt := o.refresh[f.Get("refresh_token")]
	now := s.now()
	switch {
	case rt == nil:
		o.stats.RefreshRejected++
		oauthFail(w, http.StatusBadRequest, "invalid_grant", "refresh token is invalid or revoked")
	case rt.consumedAt != nil && o.app.RefreshGrace > 0 && now.Sub(*rt.consumedAt) < o.app.RefreshGrace && rt.replacement != nil:
		o.stats.RefreshReplays++
		writeJSON(w, rt.replacement)
	case rt.consumedAt != nil:
		o.stats.RefreshRejected++
		oauthFail(w, http.StatusBadRequest, "invalid_grant", "refresh token was already used")
	default:
		rt.consumedAt = &now
		o.stats.Refreshes++
		rt.replacement = s.issueTokens(rt.userID, rt.scopes)
		writeJSON(w, rt.replacement)
	}
}

// issueTokens mints an access token (which then authenticates GraphQL requests) and a refresh token. Callers hold
// s.mu.
func (s *Server) issueTokens(userID string, scopes []string) map[string]any {
	o := s.oauth
	access := "lin_oauth_" + strings.ReplaceAll(uuid.NewString(), "-", "")
	refresh := "lin_refresh_" + strings.ReplaceAll(uuid.NewString(), "-", "")
	s.keys["Bearer "+access] = userID
	o.access[access] = refresh
	o.refresh[refresh] = &refreshToken{clientID: o.app.ClientID, userID: userID, scopes: scopes}
	return map[string]any{"access_token": access, "token_type": "Bearer", "expires_in": int64(o.app.AccessTTL / time.Second),
		"scope": strings.Join(scopes, " "), "refresh_token": refresh}
}

// oauthRevoke revokes an access token or a refresh token (with every access token of its grant).
func (s *Server) oauthRevoke(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || r.PostForm.Get("token") == "" {
		oauthFail(w, http.StatusBadRequest, "invalid_request", "token is required")
		return
	}
	tok := r.PostForm.Get("token")
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.oauth
	_, isAccess := o.access[tok]
	_, isRefresh := o.refresh[tok]
	if !isAccess && !isRefresh {
		oauthFail(w, http.StatusBadRequest, "invalid_token", "token is unknown or already revoked")
		return
	}
	o.stats.Revocations++
	if isAccess {
		delete(s.keys, "Bearer "+tok)
		delete(o.access, tok)
	}
	if isRefresh {
		delete(o.refresh, tok)
		for at, rt := range o.access {
			if rt == tok {
				delete(s.keys, "Bearer "+at)
				delete(o.access, at)
			}
		}
	}
	w.WriteHeader(http.StatusOK)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// WebhookInfo is a webhook as an admin sees it in Linear's settings, secret included.
type WebhookInfo struct {
	ID, URL, Secret string
	TeamID          string // "" for all public teams
	AllPublicTeams  bool
	Enabled         bool
	ResourceTypes   []string
}

// Webhooks returns every webhook registered in the fake, sorted by id.
func (s *Server) Webhooks() []WebhookInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]WebhookInfo, 0, len(s.webhooks))
	for _, wh := range s.webhooks {
		w := WebhookInfo{ID: wh.ID, URL: wh.URL, Secret: wh.Secret, AllPublicTeams: wh.AllPublicTeams, Enabled: wh.Enabled,
			ResourceTypes: slices.Clone(wh.ResourceTypes)}
		if wh.TeamID != nil {
			w.TeamID = *wh.TeamID
		}
		out = append(out, w)
	}
	slices.SortFunc(out, func(a, b WebhookInfo) int { return strings.Compare(a.ID, b.ID) })
	return out
}
