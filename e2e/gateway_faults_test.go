package e2e

import (
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/api"
	"github.com/linsync/linsync/linear"
	"github.com/linsync/linsync/linear/lineartest"
)

// TestGatewayTwoApproversAndExpiry: a workspace asking for two approvers of high risk gets them distinct (the same
// admin twice counts once) before the delete is forwarded; a request nobody decides expires on its own and is never
// sent.
func TestGatewayTwoApproversAndExpiry(t *testing.T) {
	t.Parallel()
	g := newGatewayEnv(t, nil)
	status, body := g.adminCall(g.admin, http.MethodPut, "/gateway/settings", map[string]any{"high_risk_approvers": 2, "approval_timeout_seconds": 3})
	require.Equal(t, http.StatusOK, status, "%v", body)

	_, held := g.agent(deleteIssue("Expire", g.createIssue("Nobody decides")))
	expiring := held["approval_id"].(string)
	require.EqualValues(t, 2, held["required_approvals"])
	got := g.waitStatus(expiring, linsync.ApprovalExpired)
	require.Contains(t, got["reason"], "no decision before")
	status, _ = g.adminCall(g.admin, http.MethodPost, "/gateway/approvals/"+expiring+"/approve", map[string]any{"request_hash": held["request_hash"]})
	require.Equal(t, http.StatusConflict, status, "an expired request cannot be approved")
	require.Zero(t, g.forwardedDeletes())

	status, _ = g.adminCall(g.admin, http.MethodPut, "/gateway/settings", map[string]any{"approval_timeout_seconds": 600})
	require.Equal(t, http.StatusOK, status)
	_, held = g.agent(deleteIssue("TwoKeys", g.createIssue("Two approvers")))
	id, hash := held["approval_id"].(string), held["request_hash"]
	status, body = g.adminCall(g.admin, http.MethodPost, "/gateway/approvals/"+id+"/approve", map[string]any{"request_hash": hash})
	require.Equal(t, http.StatusOK, status, "%v", body)
	require.Equal(t, linsync.ApprovalPending, body["status"], "one of two")
	status, _ = g.adminCall(g.admin, http.MethodPost, "/gateway/approvals/"+id+"/approve", map[string]any{"request_hash": hash})
	require.Equal(t, http.StatusConflict, status, "the same approver twice")
	time.Sleep(300 * time.Millisecond)
	require.Zero(t, g.forwardedDeletes(), "one approval of two sends nothing")
	status, body = g.adminCall(g.admin2, http.MethodPost, "/gateway/approvals/"+id+"/approve", map[string]any{"request_hash": hash})
	require.Equal(t, http.StatusOK, status, "%v", body)
	g.waitStatus(id, linsync.ApprovalForwarded)
	require.Equal(t, 1, g.forwardedDeletes())
	approved := g.audit("?decision=approved")
	require.Len(t, approved, 1)
	require.Len(t, approved[0]["approvers"], 2)
	require.Len(t, g.audit("?decision=expired"), 1)
}

// lossyTransport carries the worker's requests to the fake Linear, refuses the first connection to Linear for a
// delete as if Linear were unreachable (not sent), and loses the answer to the next one after Linear has applied it
// (sent, outcome unknown).
type lossyTransport struct {
	deletes atomic.Int32
}

func (l *lossyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(strings.NewReader(string(body)))
	if !strings.Contains(string(body), "issueDelete") {
		return http.DefaultTransport.RoundTrip(r)
	}
	switch l.deletes.Add(1) {
	case 1:
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	case 2:
		resp, err := http.DefaultTransport.RoundTrip(r)
		if err == nil {
			resp.Body.Close()
		}
		return nil, &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}
	}
	return http.DefaultTransport.RoundTrip(r)
}

// TestGatewayForwardsOnceEvenWhenTheAnswerIsLost: an approved delete whose first attempt cannot connect is retried
// (nothing was sent); the second attempt reaches Linear, which deletes the issue, and the answer is lost. linsync
// does not send it a third time: the request ends outcome_unknown, audited as such, and Linear saw one delete.
func TestGatewayForwardsOnceEvenWhenTheAnswerIsLost(t *testing.T) {
	t.Parallel()
	lossy := &lossyTransport{}
	g := newGatewayEnv(t, func(o *stackOptions) { o.linearTransport = lossy })
	_, held := g.agent(deleteIssue("Lossy", g.createIssue("Lost answer")))
	id := held["approval_id"].(string)
	status, body := g.adminCall(g.admin, http.MethodPost, "/gateway/approvals/"+id+"/approve", map[string]any{"request_hash": held["request_hash"]})
	require.Equal(t, http.StatusOK, status, "%v", body)
	got := g.waitStatus(id, linsync.ApprovalOutcomeUnknown)
	require.Contains(t, got["reason"], "not sent again")
	time.Sleep(2 * time.Second) // a retry, if there were one, would come within the retry policy's first interval
	require.EqualValues(t, 2, lossy.deletes.Load(), "one refused connection, one send; no third attempt")
	require.Equal(t, 1, g.forwardedDeletes(), "Linear applied the delete once")
	require.Len(t, g.audit("?decision=outcome_unknown"), 1)
}

// TestGatewayAgentsKeepToTheirShare: with 40 requests an hour and a quarter kept for linsync's own work, agents'
// calls stop with Linear's RATELIMITED shape, Retry-After and nothing sent once 10 would be left, even under
// concurrent calls; linsync's own requests still get through.
func TestGatewayAgentsKeepToTheirShare(t *testing.T) {
	t.Parallel()
	g := newGatewayEnv(t, func(o *stackOptions) {
		o.linear = lineartest.Options{RequestsPerHour: 40}
		o.cfg = api.Config{GatewayReserve: 0.25}
	})
	query := map[string]any{"query": "{ viewer { id } }"}
	var limited *http.Response
	var limitedBody map[string]any
	for range 60 {
		resp, body := g.agent(query)
		if resp.StatusCode == http.StatusTooManyRequests {
			limited, limitedBody = resp, body
			break
		}
		require.Equal(t, http.StatusOK, resp.StatusCode, "%v", body)
		require.NotEmpty(t, resp.Header.Get(linear.HeaderRequestsRemaining), "Linear's rate-limit headers reach the agent")
	}
	require.NotNil(t, limited, "the agents' share ran out")
	retry, err := strconv.Atoi(limited.Header.Get("Retry-After"))
	require.NoError(t, err)
	require.Positive(t, retry)
	ext := limitedBody["errors"].([]any)[0].(map[string]any)["extensions"].(map[string]any)
	require.Equal(t, "RATELIMITED", ext["code"])
	sent := g.fake.CountRequests("")
	require.Equal(t, 30, sent, "40 an hour, 10 kept: agents sent 30")

	var wg sync.WaitGroup
	var ok atomic.Int32
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, _ := g.agentWith(&http.Client{}, g.agentKey, query)
			if resp.StatusCode == http.StatusOK {
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	require.Zero(t, ok.Load())
	require.Equal(t, sent, g.fake.CountRequests(""), "nothing more reached Linear")

	lc, _, err := g.clients.For(t.Context(), g.wsID)
	require.NoError(t, err)
	_, err = linear.Viewer(t.Context(), lc.GQL())
	require.NoError(t, err, "linsync's own work has what agents left")
	require.GreaterOrEqual(t, len(g.audit("?decision=refused")), 9)
}

// hangingTransport delivers the first delete to the fake Linear, which applies it, and then never answers, whatever
// the request's context says: to Temporal, the attempt's worker died between sending and recording the answer.
type hangingTransport struct {
	deletes atomic.Int32
	release chan struct{}
}

func (h *hangingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(strings.NewReader(string(body)))
	if !strings.Contains(string(body), "issueDelete") {
		return http.DefaultTransport.RoundTrip(r)
	}
	h.deletes.Add(1)
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil {
		resp.Body.Close()
	}
	<-h.release
	return nil, errors.New("the worker is gone")
}

// TestGatewayForwardNeverRepeatedAfterAWorkerDiesMidway: the attempt that sent the approved delete never reports
// back (its worker is as good as dead); Temporal times it out and retries; the retry finds the intent the first
// attempt recorded before sending and does not send: the request ends outcome_unknown and Linear saw one delete.
func TestGatewayForwardNeverRepeatedAfterAWorkerDiesMidway(t *testing.T) {
	t.Parallel()
	hang := &hangingTransport{release: make(chan struct{})}
	g := newGatewayEnv(t, func(o *stackOptions) {
		o.linearTransport = hang
		o.cfg = api.Config{GatewayForwardTimeout: 2 * time.Second}
	})
	t.Cleanup(func() { close(hang.release) }) // runs before the worker stops
	_, held := g.agent(deleteIssue("Midway", g.createIssue("Dies midway")))
	id := held["approval_id"].(string)
	status, body := g.adminCall(g.admin, http.MethodPost, "/gateway/approvals/"+id+"/approve", map[string]any{"request_hash": held["request_hash"]})
	require.Equal(t, http.StatusOK, status, "%v", body)
	got := g.waitStatus(id, linsync.ApprovalOutcomeUnknown)
	require.Contains(t, got["reason"], "did not record Linear's answer")
	require.EqualValues(t, 1, hang.deletes.Load(), "the retry sent nothing")
	require.Equal(t, 1, g.forwardedDeletes(), "Linear applied the delete once")
	unknown := g.audit("?decision=outcome_unknown")
	require.Len(t, unknown, 1)
}
