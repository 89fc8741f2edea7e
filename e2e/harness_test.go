package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/api"
	"github.com/linsync/linsync/linear"
	"github.com/linsync/linsync/linsynctest"
	"github.com/linsync/linsync/workflows"
)

func TestMain(m *testing.M) { os.Exit(linsynctest.RunWithTemporal(m)) }

const (
	testOrg    = "7a661544-df08-4cd1-a1e3-5ec611898806"
	testSecret = "test-webhook-secret"
)

// harness is a real API in front of a real Temporal dev server and a real Postgres database, with a worker on a
// task queue of its own (every capability's activities, as production registers them) and a workspace whose webhook
// is stored for testOrg; no Linear.
type harness struct {
	*stack
}

func newHarness(t *testing.T, cfg api.Config, tc client.Client, withWorker bool) *harness {
	t.Helper()
	o := stackOptions{cfg: cfg, temporal: tc, noLinear: true, workspace: "acme", workspaceName: "Acme", webhook: webhookStored}
	if withWorker {
		o.worker = stackWorker{deliveries: true, questions: true, access: true, deadLetters: true}
	}
	return &harness{stack: newStack(t, o)}
}

// delivery is one webhook request as Linear would send it; tests bend one part at a time.
type delivery struct {
	path      string
	body      []byte
	id        string
	signature string
	header    http.Header
	chunked   bool // send without Content-Length, so only the body reader can enforce the limit
}

// issueBody returns a minimal Issue/create body stamped at ts.
func issueBody(org string, ts time.Time) []byte {
	b, _ := json.Marshal(map[string]any{
		"action": "create", "type": "Issue", "organizationId": org, "webhookTimestamp": ts.UnixMilli(),
		"createdAt": ts.UTC().Format(time.RFC3339Nano), "webhookId": "wh-1",
		"data": map[string]any{"id": uuid.NewString(), "title": "Hello", "priority": 2},
	})
	return b
}

// teamedIssueBody is issueBody naming its team, as Linear's Issue bodies do: ingress matches the team against the
// organization's team claims (cached with the secrets, so such a delivery is accepted while Postgres is away too).
func teamedIssueBody(t *testing.T, org string) []byte {
	t.Helper()
	var b map[string]any
	require.NoError(t, json.Unmarshal(issueBody(org, time.Now()), &b))
	b["data"].(map[string]any)["teamId"] = "7ea30000-0000-4000-8000-00000000000a"
	out, err := json.Marshal(b)
	require.NoError(t, err)
	return out
}

func (h *harness) signed(body []byte) delivery {
	return delivery{path: "/webhooks/linear", body: body, id: uuid.NewString(), signature: linear.Sign([]byte(testSecret), body)}
}

func (h *harness) post(d delivery) (int, map[string]any) {
	h.t.Helper()
	var rd io.Reader = bytes.NewReader(d.body)
	if d.chunked {
		rd = io.NopCloser(rd)
	}
	req, err := http.NewRequestWithContext(h.t.Context(), http.MethodPost, h.srv.URL+d.path, rd)
	require.NoError(h.t, err)
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	if d.id != "" {
		req.Header.Set(linear.HeaderDelivery, d.id)
	}
	if d.signature != "" {
		req.Header.Set(linear.HeaderSignature, d.signature)
	}
	for k, v := range d.header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(h.t, err)
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out
}

// requireNotStarted asserts that the delivery is neither in the inbox (where an accepted delivery waits for its
// start) nor in Temporal.
func (h *harness) requireNotStarted(deliveryID string) {
	h.t.Helper()
	if deliveryID == "" {
		return
	}
	_, err := h.db.FindInboxItem(h.t.Context(), h.wsID, linsync.InboxDelivery, deliveryID)
	require.Equal(h.t, linsync.ENOTFOUND, linsync.ErrorCode(err), "delivery %s must not be in the inbox", deliveryID)
	_, err = h.temporal.DescribeWorkflowExecution(h.t.Context(), workflows.LinearDeliveryWorkflowID(h.wsID, deliveryID), "")
	var nf *serviceerror.NotFound
	require.ErrorAs(h.t, err, &nf, "delivery %s must not have started a workflow", deliveryID)
}

// waitStarted waits for the delivery's workflow to exist and returns its first run's id.
func (h *harness) waitStarted(deliveryID string) string {
	h.t.Helper()
	id := workflows.LinearDeliveryWorkflowID(h.wsID, deliveryID)
	var runID string
	require.Eventually(h.t, func() bool {
		desc, err := h.temporal.DescribeWorkflowExecution(h.t.Context(), id, "")
		if err != nil {
			return false
		}
		runID = desc.GetWorkflowExecutionInfo().GetExecution().GetRunId()
		return true
	}, 30*time.Second, 20*time.Millisecond, "workflow %s never started", id)
	return runID
}

// waitDone waits for the delivery's workflow to start (a 200 means the delivery is in the inbox; its workflow starts
// right after) and to finish, and returns its run id.
func (h *harness) waitDone(deliveryID string) string {
	h.t.Helper()
	runID := h.waitStarted(deliveryID)
	ctx, cancel := context.WithTimeout(h.t.Context(), 30*time.Second)
	defer cancel()
	require.NoError(h.t, h.temporal.GetWorkflow(ctx, workflows.LinearDeliveryWorkflowID(h.wsID, deliveryID), runID).Get(ctx, nil))
	return runID
}

func errorCode(body map[string]any) string {
	e, _ := body["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}
