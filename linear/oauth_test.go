package linear_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/linsync/linsync/linear"
	"github.com/linsync/linsync/linear/lineartest"
)

// TestOAuthClientAgainstFakeAuthorizationServer proves the PKCE S256 exchange (a wrong verifier is refused as
// permanent), refresh-token rotation with the 30-minute replay grace, and revocation.
func TestOAuthClientAgainstFakeAuthorizationServer(t *testing.T) {
	t.Parallel()
	fake := lineartest.Start(t, lineartest.Options{})
	redirect := "https://linsync.example/v1/oauth/linear/callback"
	fake.EnableOAuth(lineartest.OAuthApp{ClientID: "cid", ClientSecret: "csecret", RedirectURIs: []string{redirect}})
	oc, err := linear.NewOAuthClient(linear.OAuthConfig{ClientID: "cid", ClientSecret: "csecret", RedirectURL: redirect,
		AuthorizeURL: fake.BaseURL() + "/oauth/authorize", TokenURL: fake.BaseURL() + "/oauth/token",
		RevokeURL: fake.BaseURL() + "/oauth/revoke", Scopes: []string{"read", "write"}})
	require.NoError(t, err)

	code := func(challenge string) string {
		t.Helper()
		hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := hc.Get(oc.AuthorizeURL("st", challenge))
		require.NoError(t, err)
		resp.Body.Close()
		loc, err := url.Parse(resp.Header.Get("Location"))
		require.NoError(t, err)
		require.Equal(t, "st", loc.Query().Get("state"))
		return loc.Query().Get("code")
	}
	verifier, challenge := linear.NewPKCE()
	_, err = oc.Exchange(t.Context(), code(challenge), "not-the-verifier")
	require.True(t, linear.IsPermanentOAuthError(err), "wrong verifier: %v", err)

	c := code(challenge)
	tok, err := oc.Exchange(t.Context(), c, verifier)
	require.NoError(t, err)
	require.Equal(t, []string{"read", "write"}, tok.Scopes)
	require.False(t, tok.ExpiresAt.IsZero())
	_, err = oc.Exchange(t.Context(), c, verifier)
	require.True(t, linear.IsPermanentOAuthError(err), "a code is single use")

	next, err := oc.Refresh(t.Context(), tok.RefreshToken)
	require.NoError(t, err)
	require.NotEqual(t, tok.RefreshToken, next.RefreshToken, "refresh tokens rotate")
	replay, err := oc.Refresh(t.Context(), tok.RefreshToken)
	require.NoError(t, err, "a consumed refresh token replays within the grace period")
	require.Equal(t, next.RefreshToken, replay.RefreshToken)
	require.Equal(t, 1, fake.OAuthStats().Refreshes)

	require.NoError(t, oc.Revoke(t.Context(), next.RefreshToken, "refresh_token"))
	require.False(t, fake.RefreshTokenValid(next.RefreshToken))
	require.NoError(t, oc.Revoke(t.Context(), next.RefreshToken, "refresh_token"), "revoking twice is harmless")
	_, err = oc.Refresh(t.Context(), next.RefreshToken)
	require.True(t, linear.IsPermanentOAuthError(err))
}
