package postgres_test

import (
	"bytes"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/linsynctest"
	"github.com/linsync/linsync/postgres"
)

// TestGatewayAuditChainUnderConcurrentAppends: 4 writers append 25 entries each to one workspace's chain at once
// (two with durable commits, two without); the chain has 100 entries in sequence and verifies. Changing an entry, dropping one, or dropping the last breaks it at
// the right place.
func TestGatewayAuditChainUnderConcurrentAppends(t *testing.T) {
	t.Parallel()
	db := linsynctest.DB(t)
	ctx := t.Context()
	ws, err := db.CreateWorkspace(ctx, "acme", "Acme")
	require.NoError(t, err)
	other, err := db.CreateWorkspace(ctx, "other", "Other")
	require.NoError(t, err)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				_, err := db.AppendGatewayAudit(ctx, linsync.GatewayAuditEntry{WorkspaceID: ws.ID, AgentID: "agent",
					Decision: linsync.DecisionAllowed, Actions: []string{"read"}, Risk: "low", Complexity: w*100 + i}, w%2 == 0)
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	_, err = db.AppendGatewayAudit(ctx, linsync.GatewayAuditEntry{WorkspaceID: other.ID, Decision: linsync.DecisionDenied}, true)
	require.NoError(t, err)
	wg.Wait()
	v, err := db.VerifyGatewayAudit(ctx, ws.ID)
	require.NoError(t, err)
	require.True(t, v.OK, "%+v", v)
	require.EqualValues(t, 100, v.Entries)
	require.EqualValues(t, 100, v.HeadSeq)
	v, err = db.VerifyGatewayAudit(ctx, other.ID)
	require.NoError(t, err)
	require.True(t, v.OK)
	require.EqualValues(t, 1, v.Entries, "each workspace has its own chain")

	page, err := db.ListGatewayAudit(ctx, linsync.GatewayAuditFilter{WorkspaceID: ws.ID, Limit: 30})
	require.NoError(t, err)
	require.Len(t, page, 30)
	require.EqualValues(t, 100, page[0].Seq, "newest first")
	next, err := db.ListGatewayAudit(ctx, linsync.GatewayAuditFilter{WorkspaceID: ws.ID, Limit: 30, Before: page[29].Seq})
	require.NoError(t, err)
	require.EqualValues(t, 70, next[0].Seq)

	// Tampering: a changed decision, then a removed entry, then a removed tail.
	_, err = db.Pool().Exec(ctx, `UPDATE gateway_audit SET entry = jsonb_set(entry, '{decision}', '"denied"') WHERE workspace_id = $1 AND seq = 42`, ws.ID)
	require.NoError(t, err)
	v, err = db.VerifyGatewayAudit(ctx, ws.ID)
	require.NoError(t, err)
	require.False(t, v.OK)
	require.EqualValues(t, 42, v.BrokenAt)
	_, err = db.Pool().Exec(ctx, `UPDATE gateway_audit SET entry = jsonb_set(entry, '{decision}', '"allowed"') WHERE workspace_id = $1 AND seq = 42`, ws.ID)
	require.NoError(t, err)
	v, _ = db.VerifyGatewayAudit(ctx, ws.ID)
	require.True(t, v.OK, "restored: %+v", v)
	_, err = db.Pool().Exec(ctx, `DELETE FROM gateway_audit WHERE workspace_id = $1 AND seq = 17`, ws.ID)
	require.NoError(t, err)
	v, _ = db.VerifyGatewayAudit(ctx, ws.ID)
	require.False(t, v.OK)
	require.EqualValues(t, 17, v.BrokenAt)
	require.Contains(t, v.Problem, "missing")

	third, err := db.CreateWorkspace(ctx, "third", "Third")
	require.NoError(t, err)
	for range 3 {
		_, err = db.AppendGatewayAudit(ctx, linsync.GatewayAuditEntry{WorkspaceID: third.ID, Decision: linsync.DecisionAllowed}, true)
		require.NoError(t, err)
	}
	_, err = db.Pool().Exec(ctx, `DELETE FROM gateway_audit WHERE workspace_id = $1 AND seq = 3`, third.ID)
	require.NoError(t, err)
	v, _ = db.VerifyGatewayAudit(ctx, third.ID)
	require.False(t, v.OK, "a removed last entry is noticed by the head")
}

// TestAgentKeysHashedAndScoped: the secret is shown once and stored only hashed; a revoked key stops working.
func TestAgentKeysHashedAndScoped(t *testing.T) {
	t.Parallel()
	db := linsynctest.DB(t)
	ctx := t.Context()
	ws, err := db.CreateWorkspace(ctx, "acme", "Acme")
	require.NoError(t, err)
	k, secret, err := db.CreateAgentKey(ctx, ws.ID, "triage-bot", linsync.AgentPolicy{})
	require.NoError(t, err)
	require.True(t, len(secret) > 40 && secret[:4] == postgres.AgentKeyPrefix)
	var stored []byte
	require.NoError(t, db.Pool().QueryRow(ctx, `SELECT key_hash FROM agent_keys WHERE id = $1`, k.ID).Scan(&stored))
	require.Equal(t, postgres.HashToken(secret), stored)
	var dump string
	require.NoError(t, db.Pool().QueryRow(ctx, `SELECT row_to_json(k)::text FROM agent_keys k WHERE id = $1`, k.ID).Scan(&dump))
	require.NotContains(t, dump, secret[4:])
	got, gws, err := db.AuthenticateAgentKey(ctx, secret)
	require.NoError(t, err)
	require.Equal(t, k.ID, got.ID)
	require.Equal(t, ws.ID, gws.ID)
	_, _, err = db.CreateAgentKey(ctx, ws.ID, "bad", linsync.AgentPolicy{Risk: map[string]string{"low": "perhaps"}})
	require.Equal(t, linsync.EUNPROCESSABLE, linsync.ErrorCode(err))
	require.NoError(t, db.RevokeAgentKey(ctx, ws.ID, k.ID))
	_, _, err = db.AuthenticateAgentKey(ctx, secret)
	require.Equal(t, linsync.EUNAUTHORIZED, linsync.ErrorCode(err))
}

// TestApprovalLifecycle: the request is sealed at rest; approvals are bound to the hash, counted per token, once;
// the forward begins once and a second begin finds the first one's intent and gives up the request as
// outcome_unknown; the answer is fetched once.
func TestApprovalLifecycle(t *testing.T) {
	t.Parallel()
	db := linsynctest.DB(t)
	ctx := t.Context()
	ws, err := db.CreateWorkspace(ctx, "acme", "Acme")
	require.NoError(t, err)
	k, _, err := db.CreateAgentKey(ctx, ws.ID, "bot", linsync.AgentPolicy{})
	require.NoError(t, err)
	newApproval := func(required int) *linsync.GatewayApproval {
		a := &linsync.GatewayApproval{ID: uuid.NewString(), WorkspaceID: ws.ID, AgentKeyID: k.ID, AgentID: "agent-7",
			OperationName: "D", OperationType: "mutation", Risk: "high", RequestHash: "h-" + uuid.NewString(),
			Actions:           []linsync.GatewayAction{{Field: "issueDelete", Action: "issue.delete", Risk: "high"}},
			RequiredApprovals: required, WorkflowID: "wf", ExpiresAt: time.Now().Add(time.Hour)}
		_, err := db.CreateApproval(ctx, a, linsync.GatewayRequest{Query: `mutation D { issueDelete(id: "SECRET-ISSUE-42") { success } }`})
		require.NoError(t, err)
		return a
	}
	a := newApproval(2)
	var sealed []byte
	require.NoError(t, db.Pool().QueryRow(ctx, `SELECT request_sealed FROM gateway_approvals WHERE id = $1`, a.ID).Scan(&sealed))
	require.False(t, bytes.Contains(sealed, []byte("SECRET-ISSUE-42")), "the held request is encrypted at rest")

	alice := linsync.Approver{TokenID: uuid.NewString(), TokenName: "alice"}
	bob := linsync.Approver{TokenID: uuid.NewString(), TokenName: "bob"}
	_, err = db.Approve(ctx, ws.ID, a.ID, "wrong", alice)
	require.Equal(t, linsync.ECONFLICT, linsync.ErrorCode(err))
	got, err := db.Approve(ctx, ws.ID, a.ID, a.RequestHash, alice)
	require.NoError(t, err)
	require.Equal(t, linsync.ApprovalPending, got.Status, "one of two approvals")
	_, err = db.Approve(ctx, ws.ID, a.ID, a.RequestHash, alice)
	require.Equal(t, linsync.ECONFLICT, linsync.ErrorCode(err), "the same approver twice counts once")
	got, err = db.Approve(ctx, ws.ID, a.ID, a.RequestHash, bob)
	require.NoError(t, err)
	require.Equal(t, linsync.ApprovalApproved, got.Status)
	_, err = db.Deny(ctx, ws.ID, a.ID, "too late", bob)
	require.Equal(t, linsync.ECONFLICT, linsync.ErrorCode(err))

	_, req, ok, err := db.BeginForward(ctx, ws.ID, a.ID)
	require.NoError(t, err)
	require.True(t, ok)
	require.Contains(t, req.Query, "SECRET-ISSUE-42")
	// A second attempt (the first died after recording its intent) never gets the request.
	again, _, ok, err := db.BeginForward(ctx, ws.ID, a.ID)
	require.NoError(t, err)
	require.False(t, ok)
	require.Equal(t, linsync.ApprovalOutcomeUnknown, again.Status)
	_, err = db.FinishForward(ctx, ws.ID, a.ID, postgres.ForwardResult{Status: linsync.ApprovalForwarded})
	require.Equal(t, linsync.ECONFLICT, linsync.ErrorCode(err), "the late first attempt cannot overwrite the verdict")

	b := newApproval(1)
	_, err = db.Approve(ctx, ws.ID, b.ID, b.RequestHash, alice)
	require.NoError(t, err)
	_, _, ok, err = db.BeginForward(ctx, ws.ID, b.ID)
	require.NoError(t, err)
	require.True(t, ok)
	answer := []byte(`{"data":{"issueDelete":{"success":true}}}`)
	_, err = db.FinishForward(ctx, ws.ID, b.ID, postgres.ForwardResult{Status: linsync.ApprovalForwarded, LinearStatus: 200, Response: answer})
	require.NoError(t, err)
	_, _, err = db.TakeApprovalResponse(ctx, ws.ID, uuid.NewString(), b.ID)
	require.Equal(t, linsync.ENOTFOUND, linsync.ErrorCode(err), "another key's request")
	got, body, err := db.TakeApprovalResponse(ctx, ws.ID, k.ID, b.ID)
	require.NoError(t, err)
	require.JSONEq(t, string(answer), string(body))
	require.True(t, got.ResponseFetched)
	got, body, err = db.TakeApprovalResponse(ctx, ws.ID, k.ID, b.ID)
	require.NoError(t, err)
	require.Nil(t, body, "fetched once")
	require.True(t, got.ResponseFetched)

	c := newApproval(1)
	_, err = db.Pool().Exec(ctx, `UPDATE gateway_approvals SET expires_at = now() - interval '1 second' WHERE id = $1`, c.ID)
	require.NoError(t, err)
	_, err = db.Approve(ctx, ws.ID, c.ID, c.RequestHash, alice)
	require.Equal(t, linsync.ECONFLICT, linsync.ErrorCode(err), "expired")
	got, err = db.ExpireApproval(ctx, ws.ID, c.ID)
	require.NoError(t, err)
	require.Equal(t, linsync.ApprovalExpired, got.Status)

	entries, err := db.ListGatewayAudit(ctx, linsync.GatewayAuditFilter{WorkspaceID: ws.ID})
	require.NoError(t, err)
	var decisions []string
	for _, e := range entries {
		decisions = append(decisions, e.Decision)
		raw, _ := json.Marshal(e)
		require.NotContains(t, string(raw), "SECRET-ISSUE-42", "no request content in the audit")
	}
	require.Equal(t, []string{"expired", "approval_required", "approved", "approval_required", "outcome_unknown", "approval_required"}, decisions)
	require.Len(t, entries[2].Approvers, 1)
	v, err := db.VerifyGatewayAudit(ctx, ws.ID)
	require.NoError(t, err)
	require.True(t, v.OK, "%+v", v)
}
