package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/api"
	"github.com/linsync/linsync/linear/lineartest"
	"github.com/linsync/linsync/linsynctest"
)

const (
	codecTestToken = "codec-test-token-3c1f"
	codecUIOrigin  = "http://temporal-ui.test:8233"
)

// TestTemporalHistoriesHoldNoPlaintext runs the question loop (an app's question with the asker's email, a human's
// comment in Linear delivered by webhook) and reads every history of the stack's task queue straight from Temporal,
// with a client that has no codec: no email and no comment is in them. The codec endpoint, called as the Temporal
// UI calls it, opens the same payloads for an operator holding the codec token, and for no one else.
func TestTemporalHistoriesHoldNoPlaintext(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{linear: lineartest.Options{Now: tickingClock()},
		cfg:       api.Config{CodecToken: codecTestToken, CodecOrigins: []string{codecUIOrigin}},
		worker:    stackWorker{deliveries: true, questions: true, deadLetters: true},
		workspace: "qa", workspaceName: "QA", webhook: webhookStored, connect: &stackConnection{},
		tokens:  []stackToken{{"qa", []string{linsync.ScopeQuestionsWrite}}, {"admin", []string{linsync.ScopeAdmin}}},
		deliver: true})
	h := &qHarness{stack: s, token: s.tokens["qa"], acts: s.acts.Questions}

	const asker, comment = "private.asker@example.com", "the salary table is finance.salaries_2026"
	id := h.createQuestion(map[string]any{"title": "Where are the salaries?", "body": "Need them for the audit.",
		"asker_email": asker})
	q := h.get(id)
	_, err := h.fake.Human(h.sd.Alice.Email).Comment(issueOf(q), comment)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		_, out := h.do(http.MethodGet, "/questions/"+id+"/replies", nil)
		return strings.Contains(fmt.Sprint(out), comment)
	}, 30*time.Second, 100*time.Millisecond, "the comment came back as a reply")
	h.quiesce(id)

	// A client without the codec, as anyone with access to the Temporal server (or its database) would read it.
	raw, _ := linsynctest.Temporal(t)
	var histories [][]byte
	var payloads []*commonpb.Payload
	for _, wf := range listWorkflows(t, raw, s.taskQueue, 2) {
		it := raw.GetWorkflowHistory(t.Context(), wf.GetExecution().GetWorkflowId(), wf.GetExecution().GetRunId(), false, 0)
		for it.HasNext() {
			ev, err := it.Next()
			require.NoError(t, err)
			b, err := proto.Marshal(ev)
			require.NoError(t, err)
			histories = append(histories, b)
			payloads = append(payloads, payloadsIn(ev.ProtoReflect())...)
		}
	}
	require.NotEmpty(t, payloads)
	for _, plain := range []string{asker, comment, h.sd.Alice.Email, "Where are the salaries?"} {
		for _, b := range histories {
			require.False(t, bytes.Contains(b, []byte(plain)), "a history holds %q in plaintext", plain)
		}
	}
	for _, p := range payloads {
		require.Equal(t, "binary/encrypted", string(p.GetMetadata()["encoding"]), "every payload is sealed")
	}

	// The codec endpoint opens them for the operator (as the Temporal UI asks: JSON Payloads, X-Namespace).
	body, err := protojson.Marshal(&commonpb.Payloads{Payloads: payloads})
	require.NoError(t, err)
	decode := func(token, origin string) (*http.Response, string) {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, s.srv.URL+"/codec/decode", bytes.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Namespace", "default")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		out, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp, string(out)
	}
	resp, out := decode(codecTestToken, codecUIOrigin)
	require.Equal(t, http.StatusOK, resp.StatusCode, out)
	require.Equal(t, codecUIOrigin, resp.Header.Get("Access-Control-Allow-Origin"))
	var opened commonpb.Payloads
	require.NoError(t, protojson.Unmarshal([]byte(out), &opened))
	var all strings.Builder
	for _, p := range opened.Payloads {
		all.Write(p.GetData())
	}
	require.Contains(t, all.String(), comment, "the operator reads the comment")
	require.Contains(t, all.String(), h.sd.Alice.Email, "and the commenter's email")

	for name, token := range map[string]string{"no token": "", "a workspace admin's token": s.tokens["admin"],
		"a wrong token": "codec-test-token-3c1e"} {
		resp, out := decode(token, "")
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "%s: %s", name, out)
		require.NotContains(t, out, comment)
	}
	resp, _ = decode(codecTestToken, "https://evil.example")
	require.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"), "no CORS for other origins")

	pre, err := http.NewRequestWithContext(t.Context(), http.MethodOptions, s.srv.URL+"/codec/decode", nil)
	require.NoError(t, err)
	pre.Header.Set("Origin", codecUIOrigin)
	pre.Header.Set("Access-Control-Request-Method", "POST")
	presp, err := http.DefaultClient.Do(pre)
	require.NoError(t, err)
	presp.Body.Close()
	require.Equal(t, http.StatusNoContent, presp.StatusCode)
	require.Contains(t, presp.Header.Get("Access-Control-Allow-Headers"), "Authorization")
}

// listWorkflows lists the executions of taskQueue, waiting until at least min are visible.
func listWorkflows(t *testing.T, c client.Client, taskQueue string, min int) []*workflowpb.WorkflowExecutionInfo {
	t.Helper()
	var out []*workflowpb.WorkflowExecutionInfo
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query: fmt.Sprintf("TaskQueue = %q", taskQueue), PageSize: 1000})
		if err != nil {
			return false
		}
		out = resp.Executions
		return len(out) >= min
	}, 20*time.Second, 200*time.Millisecond, "workflows of task queue %s", taskQueue)
	return out
}

// payloadsIn collects every Payload inside m, however deep.
func payloadsIn(m protoreflect.Message) []*commonpb.Payload {
	switch v := m.Interface().(type) {
	case *commonpb.Payload:
		return []*commonpb.Payload{v}
	case *commonpb.SearchAttributes:
		// Indexed by the server, so never encoded by a codec; linsync keeps only workflow.GetVersion's change ids
		// there (TemporalChangeVersion), never personal data.
		return nil
	}
	var out []*commonpb.Payload
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			for i := range v.List().Len() {
				out = append(out, payloadsIn(v.List().Get(i).Message())...)
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				out = append(out, payloadsIn(mv.Message())...)
				return true
			})
		case fd.Message() != nil && !fd.IsList() && !fd.IsMap():
			out = append(out, payloadsIn(v.Message())...)
		}
		return true
	})
	return out
}
