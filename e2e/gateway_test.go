package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/linsync/linsync"
)

// gatewayEnv is the whole stack with the agent gateway: the fake Linear connected by API key, a worker running the
// gateway's activities, two admin tokens and an agent key made through the API.
type gatewayEnv struct {
	*stack
	admin, admin2 string
	agentKey      string
	agentKeyID    string
}

func newGatewayEnv(t *testing.T, bend func(*stackOptions)) *gatewayEnv {
	t.Helper()
	o := stackOptions{workspace: "acme", connect: &stackConnection{}, captureLogs: true,
		worker: stackWorker{gateway: true},
		tokens: []stackToken{{name: "alice-admin", scopes: []string{linsync.ScopeAdmin}}, {name: "bob-admin", scopes: []string{linsync.ScopeAdmin}}}}
	if bend != nil {
		bend(&o)
	}
	g := &gatewayEnv{stack: newStack(t, o)}
	g.admin, g.admin2 = g.tokens["alice-admin"], g.tokens["bob-admin"]
	status, body := g.adminCall(g.admin, http.MethodPost, "/gateway/agent-keys", map[string]any{"name": "triage-bot"})
	require.Equal(t, http.StatusCreated, status, "%v", body)
	g.agentKey = body["key"].(string)
	g.agentKeyID = body["agent_key"].(map[string]any)["id"].(string)
	require.True(t, strings.HasPrefix(g.agentKey, "agk_"))
	return g
}

func (g *gatewayEnv) adminCall(token, method, path string, body any) (int, map[string]any) {
	g.t.Helper()
	var header []string
	if body != nil {
		header = append(header, "Content-Type", "application/json")
	}
	resp, raw := g.request(g.client, method, "/v1/workspaces/"+g.ws+path, body, append(header, "Authorization", "Bearer "+token)...)
	out := map[string]any{}
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out
}

// agent sends a GraphQL request to the proxy as an agent would, through the OpenAPI-checking client.
func (g *gatewayEnv) agent(req map[string]any, header ...string) (*http.Response, map[string]any) {
	g.t.Helper()
	return g.agentWith(g.client, g.agentKey, req, header...)
}

func (g *gatewayEnv) agentWith(hc *http.Client, key string, req any, header ...string) (*http.Response, map[string]any) {
	g.t.Helper()
	h := append([]string{"Content-Type", "application/json", "Authorization", "Bearer " + key, "X-Agent-Id", "agent-7"}, header...)
	resp, raw := g.request(hc, http.MethodPost, "/v1/workspaces/"+g.ws+"/proxy/linear/graphql", req, h...)
	out := map[string]any{}
	_ = json.Unmarshal(raw, &out)
	return resp, out
}

func (g *gatewayEnv) agentStatus(id string) (int, map[string]any) {
	g.t.Helper()
	resp, raw := g.request(g.client, http.MethodGet, "/v1/workspaces/"+g.ws+"/proxy/linear/approvals/"+id, nil,
		"Authorization", "Bearer "+g.agentKey)
	out := map[string]any{}
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out
}

// waitStatus polls the agent's status URL until the held request reaches want (the first fetch after forwarding
// takes Linear's answer, which is returned).
func (g *gatewayEnv) waitStatus(id, want string) map[string]any {
	g.t.Helper()
	var last map[string]any
	require.Eventually(g.t, func() bool {
		status, body := g.agentStatus(id)
		last = body
		return status == http.StatusOK && body["status"] == want
	}, 30*time.Second, 100*time.Millisecond, "approval %s never became %s: %v", id, want, last)
	return last
}

func deleteIssue(opName, id string) map[string]any {
	return map[string]any{"query": "mutation " + opName + "($id: String!) { issueDelete(id: $id) { success } }",
		"operationName": opName, "variables": map[string]any{"id": id}}
}

func (g *gatewayEnv) createIssue(title string) string {
	g.t.Helper()
	resp, body := g.agent(map[string]any{
		"query":     "mutation IssueCreate($input: IssueCreateInput!) { issueCreate(input: $input) { success issue { id identifier } } }",
		"variables": map[string]any{"input": map[string]any{"title": title, "teamId": g.sd.Plain.ID, "description": "private note of alice 7741"}}})
	require.Equal(g.t, http.StatusOK, resp.StatusCode, "%v", body)
	return body["data"].(map[string]any)["issueCreate"].(map[string]any)["issue"].(map[string]any)["identifier"].(string)
}

func (g *gatewayEnv) forwardedDeletes() int {
	n := 0
	for _, r := range g.fake.Requests() {
		if strings.Contains(r.Query, "issueDelete") && r.Status == http.StatusOK {
			n++
		}
	}
	return n
}

func (g *gatewayEnv) audit(query string) []map[string]any {
	g.t.Helper()
	status, body := g.adminCall(g.admin, http.MethodGet, "/gateway/audit"+query, nil)
	require.Equal(g.t, http.StatusOK, status, "%v", body)
	var out []map[string]any
	for _, e := range body["entries"].([]any) {
		out = append(out, e.(map[string]any))
	}
	return out
}

// TestGatewayEndToEnd is the issue's "done when" on the real stack: an agent creates an issue through the proxy; a
// delete disguised as IssueCreate is classified by its root field and held; the approver sees the actions, the
// summary and the hash, approves, and the delete is forwarded once and its answer fetched once; a denial, a deny
// policy, and requests Linear would refuse are not forwarded; Prefer: wait answers synchronously; the audit lists
// all of it, verifies, and holds nothing secret or personal, nor do the logs.
func TestGatewayEndToEnd(t *testing.T) {
	t.Parallel()
	g := newGatewayEnv(t, nil)

	// Allowed: medium risk, forwarded with Linear's answer and rate-limit headers.
	id := g.createIssue("Gateway bug")
	require.Equal(t, 1, g.fake.CountRequests("IssueCreate"))

	// A delete named IssueCreate: held for approval by its root field.
	resp, held := g.agent(deleteIssue("IssueCreate", id))
	require.Equal(t, http.StatusAccepted, resp.StatusCode, "%v", held)
	approvalID := held["approval_id"].(string)
	require.Equal(t, "/v1/workspaces/acme/proxy/linear/approvals/"+approvalID, resp.Header.Get("Location"))
	require.Equal(t, "high", held["risk"])
	require.Equal(t, 0, g.forwardedDeletes(), "nothing sent before approval")

	status, view := g.adminCall(g.admin, http.MethodGet, "/gateway/approvals/"+approvalID, nil)
	require.Equal(t, http.StatusOK, status, "%v", view)
	require.Equal(t, "issue.delete", view["actions"].([]any)[0].(map[string]any)["action"])
	require.Equal(t, "operation named IssueCreate runs issueDelete", view["name_mismatch"])
	require.Contains(t, view["summary"], `issueDelete(id: "`+id+`")`)
	require.Equal(t, held["request_hash"], view["request_hash"])

	status, body := g.adminCall(g.admin, http.MethodPost, "/gateway/approvals/"+approvalID+"/approve", map[string]any{"request_hash": "0000"})
	require.Equal(t, http.StatusConflict, status, "approving another request's hash: %v", body)
	status, body = g.adminCall(g.admin, http.MethodPost, "/gateway/approvals/"+approvalID+"/approve", map[string]any{"request_hash": view["request_hash"]})
	require.Equal(t, http.StatusOK, status, "%v", body)
	done := g.waitStatus(approvalID, linsync.ApprovalForwarded)
	require.EqualValues(t, 200, done["linear_status"])
	require.Equal(t, true, done["response"].(map[string]any)["data"].(map[string]any)["issueDelete"].(map[string]any)["success"])
	status, _ = g.agentStatus(approvalID)
	require.Equal(t, http.StatusGone, status, "Linear's answer is given once")
	status, body = g.adminCall(g.admin2, http.MethodPost, "/gateway/approvals/"+approvalID+"/approve", map[string]any{"request_hash": view["request_hash"]})
	require.Equal(t, http.StatusConflict, status, "an approval works once: %v", body)
	require.Equal(t, 1, g.forwardedDeletes(), "forwarded exactly once")

	// Denied by an admin: the agent learns why; nothing is sent.
	other := g.createIssue("Keep me")
	_, held = g.agent(deleteIssue("RemoveIt", other))
	denied := held["approval_id"].(string)
	status, _ = g.adminCall(g.admin, http.MethodPost, "/gateway/approvals/"+denied+"/deny", map[string]any{"reason": "not without a ticket"})
	require.Equal(t, http.StatusOK, status)
	got := g.waitStatus(denied, linsync.ApprovalDenied)
	require.Contains(t, got["reason"], "not without a ticket")
	require.Equal(t, 1, g.forwardedDeletes())

	// Prefer: wait holds the call until the approval comes, and answers with Linear's own answer.
	third := g.createIssue("Approve me while I wait")
	go func() {
		var pending []any
		require.Eventually(t, func() bool {
			_, list := g.adminCall(g.admin, http.MethodGet, "/gateway/approvals?status=pending", nil)
			pending, _ = list["approvals"].([]any)
			return len(pending) == 1
		}, 20*time.Second, 50*time.Millisecond)
		a := pending[0].(map[string]any)
		g.adminCall(g.admin2, http.MethodPost, "/gateway/approvals/"+a["id"].(string)+"/approve", map[string]any{"request_hash": a["request_hash"]})
	}()
	resp, body = g.agent(deleteIssue("WaitForIt", third), "Prefer", "wait=55") // a bound, not a speed target: the suite runs many stacks on two cores
	require.Equal(t, http.StatusOK, resp.StatusCode, "%v", body)
	require.Equal(t, "wait=55", resp.Header.Get("Preference-Applied"))
	require.Equal(t, true, body["data"].(map[string]any)["issueDelete"].(map[string]any)["success"])
	require.Equal(t, 2, g.forwardedDeletes())

	// A policy that denies comments: refused in Linear's shape, not sent.
	status, _ = g.adminCall(g.admin, http.MethodPut, "/gateway/agent-keys/"+g.agentKeyID+"/policy",
		map[string]any{"actions": []map[string]any{{"match": "comment.*", "effect": "deny"}}})
	require.Equal(t, http.StatusOK, status)
	before := len(g.fake.Requests())
	resp, body = g.agent(map[string]any{"query": `mutation { commentCreate(input: {issueId: "` + id + `", body: "hi"}) { success } }`})
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	require.Equal(t, "FORBIDDEN", body["errors"].([]any)[0].(map[string]any)["extensions"].(map[string]any)["code"])

	// What Linear would refuse is refused here and never sent: a bad document, a batch, a subscription, a query
	// over the complexity limit, no agent id.
	plain := &http.Client{}
	for name, c := range map[string]struct {
		body   any
		header []string
		code   string
	}{
		"invalid":      {map[string]any{"query": "mutation { issueCreate(input: {teamId: \"x\"}) { nope } }"}, nil, "GRAPHQL_VALIDATION_FAILED"},
		"syntax":       {map[string]any{"query": "mutation { issueCreate("}, nil, "GRAPHQL_VALIDATION_FAILED"},
		"batch":        {[]any{map[string]any{"query": "{ viewer { id } }"}}, nil, "GRAPHQL_VALIDATION_FAILED"},
		"subscription": {map[string]any{"query": "subscription { issueCreated { id } }"}, nil, "GRAPHQL_VALIDATION_FAILED"},
		"complex":      {map[string]any{"query": "{ issues(first: 100) { nodes { comments(first: 100) { nodes { id body } } } } }"}, nil, "GRAPHQL_VALIDATION_FAILED"},
	} {
		resp, body := g.agentWith(plain, g.agentKey, c.body, c.header...)
		require.Equal(t, http.StatusBadRequest, resp.StatusCode, "%s: %v", name, body)
		if c.code != "" {
			require.Equal(t, c.code, body["errors"].([]any)[0].(map[string]any)["extensions"].(map[string]any)["code"], name)
		}
	}
	resp, raw := g.request(plain, http.MethodPost, "/v1/workspaces/acme/proxy/linear/graphql", map[string]any{"query": "{ viewer { id } }"},
		"Authorization", "Bearer "+g.agentKey)
	require.Equal(t, http.StatusBadRequest, resp.StatusCode, "no X-Agent-Id: %s", raw)
	require.Equal(t, before, len(g.fake.Requests()), "nothing refused reached Linear")

	// The audit lists every call, in a chain that verifies, filtered and paged.
	entries := g.audit("?limit=200")
	var decisions []string
	for _, e := range entries {
		decisions = append(decisions, e["decision"].(string))
	}
	for _, want := range []string{"allowed", "approval_required", "approved", "rejected", "denied", "refused"} {
		require.Contains(t, decisions, want)
	}
	var approved map[string]any
	for _, e := range entries {
		if e["decision"] == "approved" && e["approval_id"] == approvalID {
			approved = e
		}
	}
	require.NotNil(t, approved)
	require.Equal(t, "alice-admin", approved["approvers"].([]any)[0].(map[string]any)["token_name"])
	require.EqualValues(t, 200, approved["linear_status"])
	require.Equal(t, "operation named IssueCreate runs issueDelete", approved["name_mismatch"])
	require.Equal(t, []any{"issue.delete"}, approved["actions"])
	allowed := g.audit("?decision=allowed&action=issue.create")
	require.Len(t, allowed, 3)
	require.Equal(t, []any{"input.description", "input.teamId", "input.title"}, allowed[0]["variable_names"])
	page := g.audit("?limit=2")
	require.Len(t, page, 2)
	_, body = g.adminCall(g.admin, http.MethodGet, "/gateway/audit?limit=2", nil)
	next := g.audit("?limit=2&cursor=" + body["next_cursor"].(string))
	require.Less(t, next[0]["seq"], page[1]["seq"])
	status, v := g.adminCall(g.admin, http.MethodGet, "/gateway/audit:verify", nil)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, true, v["ok"], "%v", v)
	require.EqualValues(t, len(entries), v["entries"])

	// Metrics by action, risk and decision.
	require.Equal(t, 3.0, gatherValue(t, g.reg, "linsync_gateway_requests_total",
		map[string]string{"action": "issue.create", "risk": "medium", "decision": "allowed"}))
	require.Equal(t, 1.0, gatherValue(t, g.reg, "linsync_gateway_requests_total",
		map[string]string{"action": "comment.create", "risk": "medium", "decision": "denied"}))
	require.Equal(t, 2.0, gatherValue(t, g.workerReg, "linsync_gateway_held_requests_total", map[string]string{"outcome": "forwarded"}))

	// Nothing secret or personal in the audit or the logs: no key, no variable's value, no document.
	auditJSON, err := json.Marshal(entries)
	require.NoError(t, err)
	logs := g.logs.String()
	require.Contains(t, logs, "/proxy/linear/graphql", "the logs were captured")
	for name, secret := range map[string]string{"agent key": g.agentKey, "linear api key": g.apiKey,
		"admin token": g.admin, "a variable's value": "private note of alice 7741", "a title": "Gateway bug",
		"an issue id": id} {
		require.NotContains(t, string(auditJSON), secret, "%s in the audit", name)
		require.NotContains(t, logs, secret, "%s in the logs", name)
	}
	var dump string
	require.NoError(t, g.db.Pool().QueryRow(t.Context(), `SELECT string_agg(a::text, ' ') FROM gateway_approvals a`).Scan(&dump))
	require.NotContains(t, dump, id, "held requests are sealed at rest")

	// The key's last use is recorded; once revoked it opens nothing.
	status, keys := g.adminCall(g.admin, http.MethodGet, "/gateway/agent-keys", nil)
	require.Equal(t, http.StatusOK, status)
	require.NotEmpty(t, keys["agent_keys"].([]any)[0].(map[string]any)["last_used_at"])
	status, _ = g.adminCall(g.admin, http.MethodDelete, "/gateway/agent-keys/"+g.agentKeyID, nil)
	require.Equal(t, http.StatusNoContent, status)
	resp, _ = g.agent(map[string]any{"query": "{ viewer { id } }"})
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	status, _ = g.agentStatus(approvalID)
	require.Equal(t, http.StatusUnauthorized, status)
}

// TestGatewayForwardsWithTheOAuthToken: a workspace connected by OAuth forwards its agents' calls with
// "Authorization: Bearer <access token>", as Linear expects for OAuth; the agent never sees it.
func TestGatewayForwardsWithTheOAuthToken(t *testing.T) {
	t.Parallel()
	e := newAccessEnv(t, accessOptions{})
	ws, tok := e.workspace("oauthy")
	e.connectOAuth(ws, tok)
	_, agentKey, err := e.db.CreateAgentKey(t.Context(), ws.ID, "bot", linsync.AgentPolicy{})
	require.NoError(t, err)
	e.fake.ResetRequests()
	resp, raw := e.request(e.client, http.MethodPost, "/v1/workspaces/oauthy/proxy/linear/graphql",
		map[string]any{"query": "{ viewer { id email } }"}, "Content-Type", "application/json",
		"Authorization", "Bearer "+agentKey, "X-Agent-Id", "oauth-agent")
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", raw)
	require.Contains(t, string(raw), e.sd.Bot.Email)
	reqs := e.fake.Requests()
	require.Len(t, reqs, 1)
	require.Equal(t, e.sd.Bot.ID, reqs[0].Auth, "the fake resolved the OAuth bearer token")
	_, creds, err := e.db.ConnectionCredentials(t.Context(), ws.ID)
	require.NoError(t, err)
	require.NotContains(t, string(raw), creds.Credential, "the credential is not the agent's")
}
