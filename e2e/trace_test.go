package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/linear"
	"github.com/linsync/linsync/linear/lineartest"
)

// TestWebhookIsOneTrace follows one Linear webhook from the HTTP request through its workflow and activity to the
// GraphQL request the activity makes: every span of it is in one trace, one tree under the request's server span.
// The webhook is an assignee change written the way older Linear payloads are (the assignee's id, no email), for
// which the question sync asks Linear who the user is.
func TestWebhookIsOneTrace(t *testing.T) {
	t.Parallel()
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	s := newStack(t, stackOptions{linear: lineartest.Options{Now: tickingClock()}, tracer: tp,
		worker:    stackWorker{deliveries: true, questions: true, deadLetters: true},
		workspace: "qa", webhook: webhookStored, connect: &stackConnection{},
		tokens: []stackToken{{"qa", []string{linsync.ScopeQuestionsWrite}}}})
	h := &qHarness{stack: s, token: s.tokens["qa"]}
	q := h.waitQuestion(h.createQuestion(map[string]any{"title": "Where is the revenue table?",
		"body": "Q3 please", "asker_email": h.sd.Alice.Email, "external_id": "q-trace"}),
		"linked", func(q map[string]any) bool { return q["linear"] != nil })
	spans.Reset()

	now := time.Now().UTC()
	body, err := json.Marshal(map[string]any{
		"action": "update", "type": "Issue", "organizationId": h.sd.OrganizationID, "webhookId": "wh-trace",
		"webhookTimestamp": now.UnixMilli(), "createdAt": now.Format(time.RFC3339Nano),
		"actor": map[string]any{"id": h.sd.Alice.ID, "type": "user", "name": "Alice"},
		"data": map[string]any{"id": issueOf(q), "title": "Where is the revenue table?", "priority": 0,
			"assigneeId": h.sd.Bob.ID, "teamId": h.sd.Triage.ID, "updatedAt": now.Format(time.RFC3339Nano)},
		"updatedFrom": map[string]any{"assigneeId": nil, "updatedAt": now.Add(-time.Minute).Format(time.RFC3339Nano)},
	})
	require.NoError(t, err)
	resp, raw := h.request(http.DefaultClient, http.MethodPost, "/webhooks/linear", json.RawMessage(body),
		"Content-Type", "application/json", linear.HeaderDelivery, uuid.NewString(),
		linear.HeaderSignature, linear.Sign([]byte(testSecret), body))
	require.Equal(t, http.StatusOK, resp.StatusCode, string(raw))

	var lookup tracetest.SpanStub
	require.Eventually(t, func() bool {
		for _, sp := range spans.GetSpans() {
			if sp.Name == "linear User" {
				lookup = sp
				return true
			}
		}
		return false
	}, 30*time.Second, 50*time.Millisecond, "the activity's look-up of the assignee in Linear was not traced: %v", spanNames(spans.GetSpans()))
	require.Equal(t, trace.SpanKindClient, lookup.SpanKind)

	// Let the rest of the delivery end (and what it started, such as the question's sync, whose spans belong to the
	// same trace), then take its trace: complete once every span's parent has ended too.
	var tree []tracetest.SpanStub
	byID := map[trace.SpanID]tracetest.SpanStub{}
	var roots []string
	assert.Eventually(t, func() bool {
		tree, roots = tree[:0], roots[:0]
		clear(byID)
		done := false
		for _, sp := range spans.GetSpans() {
			if sp.SpanContext.TraceID() == lookup.SpanContext.TraceID() {
				tree = append(tree, sp)
				byID[sp.SpanContext.SpanID()] = sp
				done = done || strings.HasPrefix(sp.Name, "RunWorkflow:LinearDelivery")
			}
		}
		for _, sp := range tree {
			if _, ok := byID[sp.Parent.SpanID()]; !ok {
				roots = append(roots, sp.Name)
			}
		}
		return done && len(roots) == 1
	}, 30*time.Second, 50*time.Millisecond, "the delivery's trace did not close")
	require.Equal(t, []string{"POST /webhooks/linear"}, roots, "one tree, rooted in the webhook request")

	// The look-up's ancestry runs through the activity, the workflow and the start back to the request.
	var path []string
	for sp, ok := lookup, true; ok; sp, ok = byID[sp.Parent.SpanID()] {
		path = append(path, sp.Name)
	}
	require.Equal(t, []string{"linear User", "RunActivity:ApplyLinearIssue", "StartActivity:ApplyLinearIssue",
		"RunWorkflow:LinearDelivery", "StartWorkflow:LinearDelivery", "POST /webhooks/linear"}, path)
	for _, sp := range tree {
		if sp.Name == "POST /webhooks/linear" {
			require.Equal(t, trace.SpanKindServer, sp.SpanKind)
		}
	}
}

func spanNames(spans tracetest.SpanStubs) []string {
	out := make([]string, 0, len(spans))
	for _, sp := range spans {
		out = append(out, sp.Name)
	}
	return out
}
