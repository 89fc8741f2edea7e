package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/api"
	"github.com/linsync/linsync/workflows"
)

// TestFailedEventsAPI walks the failed-events API through the OpenAPI-validating client: list, inspect, a dry run
// that notices a stale payload, a replay that runs once, and a bulk replay that finds nothing left to do.
func TestFailedEventsAPI(t *testing.T) {
	t.Parallel()
	h := newHarness(t, api.Config{}, nil, true)
	ctx := t.Context()
	_, token, err := h.db.CreateToken(ctx, h.wsID, "ops", []string{linsync.ScopeAdmin})
	require.NoError(t, err)
	hc, _ := newOpenAPIClient(t)
	call := func(method, path string, body any) (int, map[string]any) {
		t.Helper()
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, err := http.NewRequestWithContext(ctx, method, h.srv.URL+"/v1/workspaces/acme"+path, rd)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var out map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
		return resp.StatusCode, out
	}

	// A delivery that failed for good, as the dead-letter interceptor records it.
	deliveryID := uuid.NewString()
	sent := time.Now().Add(-time.Hour).UTC().Truncate(time.Millisecond)
	in := workflows.LinearDeliveryInput{DeliveryID: deliveryID, WorkspaceID: h.wsID, EventType: "Project", Action: "update",
		EntityID: "proj-1", KnownType: true, WebhookTimestamp: sent, ReceivedAt: sent,
		Body: json.RawMessage(`{"type":"Project","action":"update","data":{"id":"proj-1","name":"P"}}`)}
	input, err := json.Marshal([]any{in})
	require.NoError(t, err)
	dl, err := h.db.RecordDeadLetter(ctx, linsync.DeadLetter{WorkspaceID: h.wsID, Kind: "LinearDelivery",
		WorkflowID: workflows.LinearDeliveryWorkflowID(h.wsID, deliveryID), RunID: "run-1", TaskQueue: h.taskQueue, Input: input,
		ErrorClass: "LinearTransient", ErrorMessage: "linear unavailable", Attempts: 5, UIURL: "http://ui/x"})
	require.NoError(t, err)

	status, body := call(http.MethodGet, "/failed-events?kind=LinearDelivery&error_class=LinearTransient", nil)
	require.Equal(t, 200, status, body)
	require.Len(t, body["failed_events"], 1)
	status, body = call(http.MethodGet, "/failed-events?kind=Other", nil)
	require.Equal(t, 200, status)
	require.Empty(t, body["failed_events"])
	status, body = call(http.MethodGet, "/failed-events/"+dl.ID, nil)
	require.Equal(t, 200, status)
	require.Equal(t, float64(5), body["attempts"])

	status, body = call(http.MethodPost, "/failed-events/"+dl.ID+"/replay?dry_run=true", nil)
	require.Equal(t, 200, status, body)
	plan := body["plan"].([]any)[0].(map[string]any)
	require.Equal(t, true, plan["would_replay"])
	require.Contains(t, plan["reason"], "re-runs Project/update for proj-1")

	// A newer change to the same entity was applied since: the dry run says the replay would carry stale data.
	newer := sent.Add(time.Minute)
	_, err = h.db.RecordDelivery(ctx, linsync.Delivery{DeliveryID: uuid.NewString(), WorkspaceID: h.wsID, EventType: "Project",
		Action: "update", EntityID: "proj-1", WebhookTimestamp: &newer, WorkflowID: "w", Outcome: linsync.OutcomeProcessed, ReceivedAt: newer})
	require.NoError(t, err)
	_, body = call(http.MethodPost, "/failed-events/"+dl.ID+"/replay?dry_run=true", nil)
	require.Contains(t, body["plan"].([]any)[0].(map[string]any)["reason"], "a newer Project/update")
	got, err := h.db.FindDeadLetter(ctx, h.wsID, dl.ID)
	require.NoError(t, err)
	require.Equal(t, linsync.DeadLetterOpen, got.Status, "a dry run changes nothing")

	status, body = call(http.MethodPost, "/failed-events/"+dl.ID+"/replay", nil)
	require.Equal(t, 200, status, body)
	result := body["result"].(map[string]any)
	require.Equal(t, "started", result["outcome"])
	h.waitDone(deliveryID)
	rec, err := h.db.FindDelivery(ctx, h.wsID, deliveryID)
	require.NoError(t, err)
	require.Equal(t, result["run_id"], rec.RunID, "the replayed run did the work")

	status, body = call(http.MethodPost, "/failed-events/"+dl.ID+"/replay", nil)
	require.Equal(t, 200, status)
	require.Equal(t, "already_completed", body["result"].(map[string]any)["outcome"], "replaying twice starts nothing")

	status, body = call(http.MethodPost, "/failed-events:replay?dry_run=true", map[string]any{"kind": "LinearDelivery"})
	require.Equal(t, 200, status, body)
	require.Empty(t, body["plan"], "nothing open is left")
	status, body = call(http.MethodPost, "/failed-events:replay", map[string]any{"kind": "LinearDelivery", "rate_per_second": 20})
	require.Equal(t, 202, status, body)
	reqID := body["request_id"].(string)
	require.Eventually(t, func() bool {
		status, body = call(http.MethodGet, "/failed-events:replay/"+reqID, nil)
		return status == 200 && body["finished"] == true
	}, 10*time.Second, 100*time.Millisecond)
	require.Equal(t, float64(0), body["total"])

	status, body = call(http.MethodGet, "/failed-events/"+uuid.NewString(), nil)
	require.Equal(t, 404, status)
	require.Equal(t, "not_found", errorCode(body))
	// Outside the document on purpose, so sent without the validating client.
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.srv.URL+"/v1/workspaces/acme/failed-events?since=yesterday", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 400, resp.StatusCode, "a bad filter is refused, naming the field")
}

// TestBulkReplayDryRunHasADeadline: a dry run asks Temporal about every failed event; when Temporal does not answer,
// the dry run still answers within its overall deadline, says it is incomplete, and replays nothing.
func TestBulkReplayDryRunHasADeadline(t *testing.T) {
	t.Parallel()
	// A Temporal that accepts connections and never answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { conn.Close() })
		}
	}()
	silent, err := client.NewLazyClient(client.Options{HostPort: ln.Addr().String(), Logger: quiet{}})
	require.NoError(t, err)
	t.Cleanup(silent.Close)
	h := newHarness(t, api.Config{DryRunDeadline: 500 * time.Millisecond}, silent, false)
	_, tok, err := h.db.CreateToken(t.Context(), h.wsID, "ops", []string{linsync.ScopeAdmin})
	require.NoError(t, err)
	for i := range 3 {
		_, err := h.db.RecordDeadLetter(t.Context(), linsync.DeadLetter{WorkspaceID: h.wsID, Kind: "FileEvent",
			WorkflowID: fmt.Sprintf("event:%s:slow-%d", h.wsID, i), RunID: "run", TaskQueue: h.taskQueue,
			Input: json.RawMessage(`[]`), ErrorClass: "LinearTransient", ErrorMessage: "x", Attempts: 5})
		require.NoError(t, err)
	}
	resp, raw := h.request(h.client, http.MethodPost, "/v1/workspaces/"+h.ws+"/failed-events:replay?dry_run=true",
		map[string]any{}, "Authorization", "Bearer "+tok, "Content-Type", "application/json")
	require.Equal(t, http.StatusOK, resp.StatusCode, string(raw))
	var out map[string]any
	require.NoError(t, json.Unmarshal(raw, &out))
	require.Equal(t, true, out["incomplete"], "%v", out)
	require.Less(t, len(out["plan"].([]any)), 3)
}
