package activities

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/linsync/linsync"
)

// TestPostNotificationClassifies: what a target answers decides the retry, the one classification of notification
// failures.
func TestPostNotificationClassifies(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	noJitter := func(n int64) int64 { return 0 }
	cases := []struct {
		status       int
		header       map[string]string
		wantType     string
		nonRetryable bool
		minDelay     time.Duration
	}{
		{http.StatusOK, nil, "", false, 0},
		{http.StatusNoContent, nil, "", false, 0},
		{http.StatusTooManyRequests, map[string]string{"Retry-After": "30"}, ErrTypeNotificationRateLimited, false, 30 * time.Second},
		{http.StatusTooManyRequests, map[string]string{"Retry-After": now.Add(2 * time.Minute).Format(http.TimeFormat)}, ErrTypeNotificationRateLimited, false, 2 * time.Minute},
		{http.StatusTooManyRequests, nil, ErrTypeNotificationRateLimited, false, time.Minute},
		{http.StatusInternalServerError, nil, ErrTypeNotificationTransient, false, 0},
		{http.StatusBadGateway, nil, ErrTypeNotificationTransient, false, 0},
		{http.StatusRequestTimeout, nil, ErrTypeNotificationTransient, false, 0},
		{http.StatusNotFound, nil, ErrTypeNotificationRefused, true, 0},
		{http.StatusBadRequest, nil, ErrTypeNotificationRefused, true, 0},
		{http.StatusForbidden, nil, ErrTypeNotificationRefused, true, 0},
	}
	for _, tc := range cases {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			for k, v := range tc.header {
				w.Header().Set(k, v)
			}
			w.WriteHeader(tc.status)
		}))
		code, err := PostNotification(context.Background(), srv.Client(), linsync.NotifySlack, srv.URL, nil, "msg_1",
			[]byte(`{"text":"x"}`), now, 1, noJitter)
		srv.Close()
		require.Equal(t, tc.status, code)
		if tc.wantType == "" {
			require.NoError(t, err)
			continue
		}
		var app *temporal.ApplicationError
		require.True(t, errors.As(err, &app), "%d: %v", tc.status, err)
		require.Equal(t, tc.wantType, app.Type(), "%d", tc.status)
		require.Equal(t, tc.nonRetryable, app.NonRetryable(), "%d", tc.status)
		if tc.minDelay > 0 {
			require.GreaterOrEqual(t, app.NextRetryDelay(), tc.minDelay, "%d: never before Retry-After", tc.status)
		}
		if tc.wantType == ErrTypeNotificationTransient {
			require.Positive(t, app.NextRetryDelay(), "transient failures back off")
		}
	}
}

// TestPostNotificationSignsWebhooksAndRefusesPrivate: a generic webhook is signed with the target's secret; a
// private address is refused by the public client without naming it.
func TestPostNotificationSignsWebhooksAndRefusesPrivate(t *testing.T) {
	t.Parallel()
	var got http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = r.Header.Clone() }))
	defer srv.Close()
	now := time.Unix(1_790_000_000, 0)
	body := []byte(`{"type":"linsync.notification"}`)
	_, err := PostNotification(context.Background(), PublicHTTPClient(true, time.Second), linsync.NotifyWebhook, srv.URL,
		[]byte("whsec_c2VjcmV0"), "msg_abc", body, now, 1, nil)
	require.NoError(t, err)
	require.Equal(t, "msg_abc", got.Get("webhook-id"))
	require.Equal(t, "1790000000", got.Get("webhook-timestamp"))
	require.Equal(t, SignCallback([]byte("whsec_c2VjcmV0"), "msg_abc", "1790000000", body), got.Get("webhook-signature"))

	_, err = PostNotification(context.Background(), PublicHTTPClient(false, time.Second), linsync.NotifySlack, srv.URL+"/secret-path",
		nil, "msg_abc", body, now, 1, nil)
	var app *temporal.ApplicationError
	require.ErrorAs(t, err, &app)
	require.True(t, app.NonRetryable())
	require.NotContains(t, err.Error(), "secret-path")
	require.NotContains(t, err.Error(), "127.0.0.1")
}
