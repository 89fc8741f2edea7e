package linear_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/linsync/linsync/linear"
	"github.com/linsync/linsync/linear/lineartest"
)

// TestForwardKeepsTheAgentsShare: with 20 requests an hour and a quarter of every window kept for linsync, agents'
// requests stop when 5 would be left, unsent and refused locally with the window's reset as the retry time, while
// linsync's own requests go on.
func TestForwardKeepsTheAgentsShare(t *testing.T) {
	t.Parallel()
	srv := lineartest.Start(t, lineartest.Options{RequestsPerHour: 20})
	sd := srv.Seed()
	c, err := linear.New(linear.Options{Credential: linear.Credential{APIKey: sd.APIKey}, Endpoint: srv.URL()})
	require.NoError(t, err)
	body := []byte(`{"query":"{ viewer { id } }"}`)
	sent := 0
	var refusal *linear.SendError
	for range 40 {
		fw, err := c.Forward(t.Context(), "Agent", body, linear.ForwardOptions{Reserve: 0.25})
		if err != nil {
			require.ErrorAs(t, err, &refusal)
			break
		}
		require.Equal(t, http.StatusOK, fw.Status, string(fw.Body))
		require.NotEmpty(t, fw.Header.Get(linear.HeaderRequestsRemaining), "Linear's rate-limit headers are passed back")
		sent++
	}
	require.NotNil(t, refusal, "the agents' share ran out")
	require.False(t, refusal.Sent)
	require.Equal(t, linear.ClassRateLimited, refusal.Err.Class)
	require.False(t, refusal.Err.RetryAt.IsZero())
	require.Equal(t, 15, sent, "20 an hour, 5 kept: the first request learns the window, 15 leave 5")
	require.Equal(t, 15, srv.CountRequests(""), "nothing refused reached Linear")
	_, err = linear.Viewer(t.Context(), c.GQL())
	require.NoError(t, err, "linsync's own work still has its share")
}

// TestForwardPassesLinearsErrorsBack: Linear's answer, even an error, is the agent's; a request that never reached
// Linear says so.
func TestForwardPassesLinearsErrorsBack(t *testing.T) {
	t.Parallel()
	srv := lineartest.Start(t, lineartest.Options{})
	sd := srv.Seed()
	c, err := linear.New(linear.Options{Credential: linear.Credential{APIKey: sd.APIKey}, Endpoint: srv.URL()})
	require.NoError(t, err)
	fw, err := c.Forward(t.Context(), "Bad", []byte(`{"query":"{ nope }"}`), linear.ForwardOptions{})
	require.NoError(t, err)
	require.Equal(t, http.StatusBadRequest, fw.Status)
	require.Contains(t, string(fw.Body), "GRAPHQL_VALIDATION_FAILED")

	_, err = c.Forward(t.Context(), "Big", []byte(`{"query":"{ viewer { id name email } }"}`), linear.ForwardOptions{MaxResponseBytes: 10})
	var se *linear.SendError
	require.ErrorAs(t, err, &se)
	require.True(t, se.Sent, "an answer too large arrived: the request was sent")
	require.True(t, errors.Is(err, linear.ErrResponseTooLarge))

	dead, err := linear.New(linear.Options{Credential: linear.Credential{APIKey: sd.APIKey}, Endpoint: "http://127.0.0.1:1/graphql"})
	require.NoError(t, err)
	_, err = dead.Forward(context.Background(), "Nowhere", []byte(`{"query":"{ viewer { id } }"}`), linear.ForwardOptions{})
	require.ErrorAs(t, err, &se)
	require.False(t, se.Sent, "no connection was made")
}
