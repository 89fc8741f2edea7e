package linear

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Linear's OAuth2 endpoints (https://linear.app/developers/oauth-2-0-authentication).
const (
	DefaultAuthorizeURL = "https://linear.app/oauth/authorize"
	DefaultTokenURL     = "https://api.linear.app/oauth/token"
	DefaultRevokeURL    = "https://api.linear.app/oauth/revoke"
)

// OAuthConfig is a Linear OAuth application as linsync uses it.
type OAuthConfig struct {
	ClientID     string
	ClientSecret string
	// RedirectURL is linsync's callback, registered with the application in Linear.
	RedirectURL string
	// Scopes are requested comma-separated, as Linear wants; "read" is always granted.
	Scopes []string
	// Actor is "user" (default: actions appear as the authorizing user) or "app".
	Actor        string
	AuthorizeURL string
	TokenURL     string
	RevokeURL    string
	// HTTPClient defaults to a client with a 15 s timeout.
	HTTPClient *http.Client
	// Now defaults to time.Now; it stamps token expiry.
	Now func() time.Time
}

// OAuthClient talks to Linear's authorize, token and revoke endpoints.
type OAuthClient struct {
	cfg  OAuthConfig
	http *http.Client
}

// NewOAuthClient returns a client for cfg; ClientID and RedirectURL are required.
func NewOAuthClient(cfg OAuthConfig) (*OAuthClient, error) {
	if cfg.ClientID == "" || cfg.RedirectURL == "" {
		return nil, errors.New("create linear oauth client: client id and redirect URL are required")
	}
	if cfg.Actor != "" && cfg.Actor != "user" && cfg.Actor != "app" {
		return nil, fmt.Errorf("create linear oauth client: actor must be user or app, not %q", cfg.Actor)
	}
	if cfg.AuthorizeURL == "" {
		cfg.AuthorizeURL = DefaultAuthorizeURL
	}
	if cfg.TokenURL == "" {
		cfg.TokenURL = DefaultTokenURL
	}
	if cfg.RevokeURL == "" {
		cfg.RevokeURL = DefaultRevokeURL
	}
	if len(cfg.Scopes) == 0 {
		cfg.Scopes = []string{"read", "write"}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 15 * time.Second}
	}
	return &OAuthClient{cfg: cfg, http: hc}, nil
}

// ClientID is the application's client id.
func (o *OAuthClient) ClientID() string { return o.cfg.ClientID }

// RedirectURL is the callback registered with the application.
func (o *OAuthClient) RedirectURL() string { return o.cfg.RedirectURL }

// NewPKCE returns a random PKCE code verifier and its S256 code challenge.
func NewPKCE() (verifier, challenge string) {
	verifier = RandomToken(32)
	return verifier, PKCEChallenge(verifier)
}

// PKCEChallenge is the S256 code challenge of verifier: base64url(SHA-256(verifier)) without padding.
func PKCEChallenge(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// RandomToken returns n random bytes, base64url-encoded without padding.
func RandomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

// AuthorizeURL is where the admin's browser goes to grant access: scopes comma-separated, state, PKCE S256 and,
// when configured, actor=app.
func (o *OAuthClient) AuthorizeURL(state, codeChallenge string) string {
	q := url.Values{}
	q.Set("client_id", o.cfg.ClientID)
	q.Set("redirect_uri", o.cfg.RedirectURL)
	q.Set("response_type", "code")
	q.Set("scope", strings.Join(o.cfg.Scopes, ","))
	q.Set("state", state)
	q.Set("code_challenge", codeChallenge)
	q.Set("code_challenge_method", "S256")
	if o.cfg.Actor == "app" {
		q.Set("actor", "app")
	}
	sep := "?"
	if strings.Contains(o.cfg.AuthorizeURL, "?") {
		sep = "&"
	}
	return o.cfg.AuthorizeURL + sep + q.Encode()
}

// Token is what Linear's token endpoint granted.
type Token struct {
	AccessToken  string
	RefreshToken string
	ExpiresAt    time.Time
	Scopes       []string
}

// OAuthError is a refusal by Linear's OAuth endpoints. It never carries a token.
type OAuthError struct {
	Status      int
	Code        string // e.g. invalid_grant
	Description string
}

func (e *OAuthError) Error() string {
	msg := fmt.Sprintf("linear oauth: status %d", e.Status)
	if e.Code != "" {
		msg += ": " + e.Code
	}
	if e.Description != "" {
		msg += " (" + e.Description + ")"
	}
	return msg
}

// Permanent reports whether retrying the same request cannot succeed: Linear refused it (4xx other than 429).
func (e *OAuthError) Permanent() bool {
	return e.Status >= 400 && e.Status < 500 && e.Status != http.StatusTooManyRequests
}

// IsPermanentOAuthError reports whether err is a refusal that retrying will not change (a bad code, a consumed or
// revoked refresh token, a wrong client).
func IsPermanentOAuthError(err error) bool {
	var oe *OAuthError
	return errors.As(err, &oe) && oe.Permanent()
}

// Exchange trades an authorization code and its PKCE verifier for tokens.
func (o *OAuthClient) Exchange(ctx context.Context, code, codeVerifier string) (*Token, error) {
	form := url.Values{}
	form.Set("grant_type", "authorization_code")
	form.Set("code", code)
	form.Set("redirect_uri", o.cfg.RedirectURL)
	form.Set("code_verifier", codeVerifier)
	tok, err := o.token(ctx, form)
	if err != nil {
		return nil, fmt.Errorf("exchange authorization code: %w", err)
	}
	return tok, nil
}

// Refresh trades a refresh token for new tokens. Linear rotates refresh tokens: the returned RefreshToken replaces
// the one given, which is consumed (replayable for 30 minutes).
func (o *OAuthClient) Refresh(ctx context.Context, refreshToken string) (*Token, error) {
	form := url.Values{}
	form.Set("grant_type", "refresh_token")
	form.Set("refresh_token", refreshToken)
	tok, err := o.token(ctx, form)
	if err != nil {
		return nil, fmt.Errorf("refresh access token: %w", err)
	}
	return tok, nil
}

// token calls the token endpoint, authenticating the client with body parameters (one method only, as RFC 6749
// asks; Linear accepts them or HTTP Basic).
func (o *OAuthClient) token(ctx context.Context, form url.Values) (*Token, error) {
	form.Set("client_id", o.cfg.ClientID)
	if o.cfg.ClientSecret != "" {
		form.Set("client_secret", o.cfg.ClientSecret)
	}
	body, err := o.post(ctx, o.cfg.TokenURL, form)
	if err != nil {
		return nil, err
	}
	var resp struct {
		AccessToken  string          `json:"access_token"`
		TokenType    string          `json:"token_type"`
		ExpiresIn    int64           `json:"expires_in"`
		RefreshToken string          `json:"refresh_token"`
		Scope        json.RawMessage `json:"scope"`
	}
	if err := json.Unmarshal(body, &resp); err != nil || resp.AccessToken == "" {
		return nil, &OAuthError{Status: http.StatusBadGateway, Code: "invalid_response", Description: "token endpoint answered without an access token"}
	}
	tok := &Token{AccessToken: resp.AccessToken, RefreshToken: resp.RefreshToken, Scopes: parseScopes(resp.Scope)}
	if resp.ExpiresIn > 0 {
		tok.ExpiresAt = o.cfg.Now().Add(time.Duration(resp.ExpiresIn) * time.Second).UTC()
	}
	return tok, nil
}

// parseScopes reads the granted scopes: space-separated, or an array for applications created before 2023-12.
func parseScopes(raw json.RawMessage) []string {
	var list []string
	if json.Unmarshal(raw, &list) == nil {
		return list
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' })
	}
	return nil
}

// Revoke revokes an access or refresh token (hint: "access_token" or "refresh_token"). A token Linear no longer
// knows (400) counts as revoked.
func (o *OAuthClient) Revoke(ctx context.Context, token, hint string) error {
	form := url.Values{}
	form.Set("token", token)
	if hint != "" {
		form.Set("token_type_hint", hint)
	}
	_, err := o.post(ctx, o.cfg.RevokeURL, form)
	var oe *OAuthError
	if errors.As(err, &oe) && oe.Status == http.StatusBadRequest {
		return nil
	}
	if err != nil {
		return fmt.Errorf("revoke %s: %w", hint, err)
	}
	return nil
}

func (o *OAuthClient) post(ctx context.Context, endpoint string, form url.Values) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("build oauth request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := o.http.Do(req)
	if err != nil {
		// The error names the URL only; the form (with tokens) is in the body, never in an error.
		return nil, fmt.Errorf("call linear oauth endpoint: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("read linear oauth response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		_ = json.Unmarshal(body, &e)
		return nil, &OAuthError{Status: resp.StatusCode, Code: e.Error, Description: e.Description}
	}
	return body, nil
}
