package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/linsync/linsync"
)

// CreateApproval stores a request held for approval, the request itself sealed by the envelope keeper, and appends
// the audit entry that says it is held, in one transaction. a.ID, WorkflowID, ExpiresAt and RequiredApprovals must
// be set.
func (db *DB) CreateApproval(ctx context.Context, a *linsync.GatewayApproval, req linsync.GatewayRequest) (*linsync.GatewayAuditEntry, error) {
	plain, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode held request: %w", err)
	}
	sealed, err := db.cipher.Encrypt(ctx, plain)
	if err != nil {
		return nil, fmt.Errorf("seal held request: %w", err)
	}
	a.Status = linsync.ApprovalPending
	var entry *linsync.GatewayAuditEntry
	err = pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `
			INSERT INTO gateway_approvals (id, workspace_id, agent_key_id, agent_id, operation_name, operation_type,
				name_mismatch, actions, risk, complexity, variable_names, request_hash, request_sealed, status,
				required_approvals, workflow_id, expires_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) RETURNING created_at`,
			a.ID, a.WorkspaceID, a.AgentKeyID, a.AgentID, a.OperationName, a.OperationType, a.NameMismatch, a.Actions,
			a.Risk, a.Complexity, nonNil(a.VariableNames), a.RequestHash, sealed, a.Status, a.RequiredApprovals,
			a.WorkflowID, a.ExpiresAt).Scan(&a.CreatedAt); err != nil {
			return fmt.Errorf("insert approval: %w", err)
		}
		entry, err = appendAudit(ctx, tx, a.AuditEntry(linsync.DecisionApprovalRequired,
			fmt.Sprintf("held for %d approval(s) until %s", a.RequiredApprovals, a.ExpiresAt.UTC().Format(time.RFC3339))))
		return err
	})
	if err != nil {
		return nil, err
	}
	return entry, nil
}

const approvalColumns = `a.id, a.workspace_id, a.agent_key_id, k.name, a.agent_id, a.operation_name, a.operation_type,
	a.name_mismatch, a.actions, a.risk, a.complexity, a.variable_names, a.request_hash, a.status, a.required_approvals,
	a.approvers, a.denied_by, a.reason, a.created_at, a.expires_at, a.decided_at, a.forwarded_at,
	coalesce(a.linear_status, 0), a.latency_ms, a.response_fetched_at IS NOT NULL, a.workflow_id`

const approvalFrom = ` FROM gateway_approvals a JOIN agent_keys k ON k.id = a.agent_key_id`

func scanApproval(row interface{ Scan(...any) error }, a *linsync.GatewayApproval, extra ...any) error {
	err := row.Scan(append([]any{&a.ID, &a.WorkspaceID, &a.AgentKeyID, &a.AgentKeyName, &a.AgentID, &a.OperationName,
		&a.OperationType, &a.NameMismatch, &a.Actions, &a.Risk, &a.Complexity, &a.VariableNames, &a.RequestHash,
		&a.Status, &a.RequiredApprovals, &a.Approvers, &a.DeniedBy, &a.Reason, &a.CreatedAt, &a.ExpiresAt,
		&a.DecidedAt, &a.ForwardedAt, &a.LinearStatus, &a.LatencyMS, &a.ResponseFetched, &a.WorkflowID}, extra...)...)
	if a.Approvers == nil {
		a.Approvers = []linsync.Approver{}
	}
	return err
}

// FindApproval returns one of a workspace's held requests; another workspace's is ENOTFOUND.
func (db *DB) FindApproval(ctx context.Context, workspaceID, id string) (*linsync.GatewayApproval, error) {
	return findApproval(ctx, db.pool, workspaceID, id, "")
}

func findApproval(ctx context.Context, q queryRower, workspaceID, id, lock string) (*linsync.GatewayApproval, error) {
	if _, err := uuid.Parse(id); err != nil {
		return nil, linsync.Errorf(linsync.ENOTFOUND, "approval not found")
	}
	var a linsync.GatewayApproval
	if err := scanApproval(q.QueryRow(ctx, `SELECT `+approvalColumns+approvalFrom+` WHERE a.id = $1 AND a.workspace_id = $2`+lock,
		id, workspaceID), &a); err != nil {
		return nil, notFound(err, "approval")
	}
	return &a, nil
}

// ApprovalRequest returns the held request, opened.
func (db *DB) ApprovalRequest(ctx context.Context, workspaceID, id string) (linsync.GatewayRequest, error) {
	var sealed []byte
	var req linsync.GatewayRequest
	if err := db.pool.QueryRow(ctx, `SELECT request_sealed FROM gateway_approvals WHERE id = $1 AND workspace_id = $2`,
		id, workspaceID).Scan(&sealed); err != nil {
		return req, notFound(err, "approval")
	}
	return db.openRequest(ctx, sealed)
}

func (db *DB) openRequest(ctx context.Context, sealed []byte) (linsync.GatewayRequest, error) {
	var req linsync.GatewayRequest
	plain, err := db.cipher.Decrypt(ctx, sealed)
	if err != nil {
		return req, fmt.Errorf("open held request: %w", err)
	}
	if err := json.Unmarshal(plain, &req); err != nil {
		return req, fmt.Errorf("decode held request: %w", err)
	}
	return req, nil
}

// ListApprovals returns a page of a workspace's held requests, newest first, optionally of one status; before is the
// id of the last approval of the previous page.
func (db *DB) ListApprovals(ctx context.Context, workspaceID, status, before string, limit int) ([]linsync.GatewayApproval, error) {
	if limit <= 0 || limit > MaxAuditPage {
		limit = 50
	}
	q := `SELECT ` + approvalColumns + approvalFrom + ` WHERE a.workspace_id = $1 AND ($2 = '' OR a.status = $2)`
	args := []any{workspaceID, status, limit}
	if before != "" {
		if _, err := uuid.Parse(before); err != nil {
			return nil, &linsync.Error{Code: linsync.EINVALID, Field: "cursor", Message: "cursor is not one this API gave"}
		}
		q += ` AND (a.created_at, a.id) < (SELECT created_at, id FROM gateway_approvals WHERE id = $4)`
		args = append(args, before)
	}
	rows, err := db.pool.Query(ctx, q+` ORDER BY a.created_at DESC, a.id DESC LIMIT $3`, args...)
	if err != nil {
		return nil, fmt.Errorf("list approvals of workspace %s: %w", workspaceID, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (linsync.GatewayApproval, error) {
		var a linsync.GatewayApproval
		return a, scanApproval(r, &a)
	})
	if err != nil {
		return nil, fmt.Errorf("scan approvals: %w", err)
	}
	return out, nil
}

// decide runs change on the approval's row, locked, in a transaction, and appends the audit entry it returns (if
// any) in the same transaction.
func (db *DB) decide(ctx context.Context, workspaceID, id string,
	change func(tx pgx.Tx, a *linsync.GatewayApproval, now time.Time) (*linsync.GatewayAuditEntry, error)) (*linsync.GatewayApproval, error) {
	var out *linsync.GatewayApproval
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		a, err := findApproval(ctx, tx, workspaceID, id, " FOR UPDATE OF a")
		if err != nil {
			return err
		}
		var now time.Time
		if err := tx.QueryRow(ctx, `SELECT now()`).Scan(&now); err != nil {
			return fmt.Errorf("read the time: %w", err)
		}
		entry, err := change(tx, a, now)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `
			UPDATE gateway_approvals SET status = $2, approvers = $3, denied_by = $4, reason = $5, decided_at = $6,
				forwarded_at = $7, linear_status = nullif($8, 0), latency_ms = $9
			WHERE id = $1`, a.ID, a.Status, a.Approvers, a.DeniedBy, a.Reason, a.DecidedAt, a.ForwardedAt, a.LinearStatus,
			a.LatencyMS); err != nil {
			return fmt.Errorf("update approval %s: %w", a.ID, err)
		}
		if entry != nil {
			if _, err := appendAudit(ctx, tx, *entry); err != nil {
				return err
			}
		}
		out = a
		return nil
	})
	return out, err
}

// Approve records an admin's approval of a held request: it must still be pending and unexpired, the hash must be
// the request's (so the approver approves what they saw), and each approver counts once. With enough approvals the
// request is approved; its workflow forwards it.
func (db *DB) Approve(ctx context.Context, workspaceID, id, requestHash string, by linsync.Approver) (*linsync.GatewayApproval, error) {
	return db.decide(ctx, workspaceID, id, func(_ pgx.Tx, a *linsync.GatewayApproval, now time.Time) (*linsync.GatewayAuditEntry, error) {
		if err := pendingAt(a, now); err != nil {
			return nil, err
		}
		if requestHash != a.RequestHash {
			return nil, &linsync.Error{Code: linsync.ECONFLICT, Field: "request_hash",
				Message: "request_hash is not the held request's: approve the request you were shown"}
		}
		if slices.ContainsFunc(a.Approvers, func(p linsync.Approver) bool { return p.TokenID == by.TokenID }) {
			return nil, linsync.Errorf(linsync.ECONFLICT, "this token already approved the request; it needs %d distinct approvers", a.RequiredApprovals)
		}
		by.At = now
		a.Approvers = append(a.Approvers, by)
		if len(a.Approvers) >= a.RequiredApprovals {
			a.Status, a.DecidedAt = linsync.ApprovalApproved, &now
		}
		return nil, nil
	})
}

// Deny records an admin's denial of a pending request, with the reason, and audits it.
func (db *DB) Deny(ctx context.Context, workspaceID, id, reason string, by linsync.Approver) (*linsync.GatewayApproval, error) {
	return db.decide(ctx, workspaceID, id, func(_ pgx.Tx, a *linsync.GatewayApproval, now time.Time) (*linsync.GatewayAuditEntry, error) {
		if err := pendingAt(a, now); err != nil {
			return nil, err
		}
		by.At = now
		a.Status, a.DeniedBy, a.DecidedAt, a.Reason = linsync.ApprovalDenied, &by, &now, reason
		e := a.AuditEntry(linsync.DecisionRejected, "denied by "+by.TokenName+": "+reason)
		return &e, nil
	})
}

func pendingAt(a *linsync.GatewayApproval, now time.Time) error {
	if a.Status != linsync.ApprovalPending {
		return linsync.Errorf(linsync.ECONFLICT, "the request is %s; it can no longer be decided", a.Status)
	}
	if !now.Before(a.ExpiresAt) {
		return linsync.Errorf(linsync.ECONFLICT, "the request expired at %s", a.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return nil
}

// ExpireApproval ends a request still pending when its time is up, and audits it; a request decided meanwhile is
// returned as it is.
func (db *DB) ExpireApproval(ctx context.Context, workspaceID, id string) (*linsync.GatewayApproval, error) {
	return db.decide(ctx, workspaceID, id, func(_ pgx.Tx, a *linsync.GatewayApproval, now time.Time) (*linsync.GatewayAuditEntry, error) {
		if a.Status != linsync.ApprovalPending {
			return nil, nil
		}
		a.Status, a.DecidedAt, a.Reason = linsync.ApprovalExpired, &now, "no decision before "+a.ExpiresAt.UTC().Format(time.RFC3339)
		e := a.AuditEntry(linsync.DecisionExpired, a.Reason)
		return &e, nil
	})
}

// BeginForward records the intent to forward an approved request before anything is sent, and returns the request.
// Only an approved request begins: one already forwarding was begun by an attempt that may have sent it and then
// died, so it becomes outcome_unknown (audited) and is never sent again; any other status is returned as it is,
// with ok false.
func (db *DB) BeginForward(ctx context.Context, workspaceID, id string) (a *linsync.GatewayApproval, req linsync.GatewayRequest, ok bool, err error) {
	var sealed []byte
	a, err = db.decide(ctx, workspaceID, id, func(tx pgx.Tx, a *linsync.GatewayApproval, now time.Time) (*linsync.GatewayAuditEntry, error) {
		switch a.Status {
		case linsync.ApprovalApproved:
			if err := tx.QueryRow(ctx, `UPDATE gateway_approvals SET forward_started_at = $2 WHERE id = $1 RETURNING request_sealed`,
				a.ID, now).Scan(&sealed); err != nil {
				return nil, fmt.Errorf("record the forward of approval %s: %w", a.ID, err)
			}
			a.Status = linsync.ApprovalForwarding
		case linsync.ApprovalForwarding:
			a.Status, a.Reason = linsync.ApprovalOutcomeUnknown,
				"an earlier attempt began forwarding the request and did not record Linear's answer; it is not sent again"
			e := a.AuditEntry(linsync.DecisionOutcomeUnknown, a.Reason)
			return &e, nil
		}
		return nil, nil
	})
	if err != nil || sealed == nil {
		return a, req, false, err
	}
	req, err = db.openRequest(ctx, sealed)
	return a, req, err == nil, err
}

// ForwardResult is how a forward ended.
type ForwardResult struct {
	// Status is forwarded (Linear answered), failed (certainly not sent, and not to be), outcome_unknown, or
	// approved (certainly not sent: the forward may be tried again).
	Status       string
	LinearStatus int
	Latency      time.Duration
	// Response is Linear's answer, kept sealed for the agent to fetch once.
	Response []byte
	Reason   string
}

// FinishForward records how the forward begun by BeginForward ended, with Linear's answer sealed, and audits the
// approved call (unless it goes back to approved to be tried again).
func (db *DB) FinishForward(ctx context.Context, workspaceID, id string, r ForwardResult) (*linsync.GatewayApproval, error) {
	var sealed []byte
	if r.Response != nil {
		var err error
		if sealed, err = db.cipher.Encrypt(ctx, r.Response); err != nil {
			return nil, fmt.Errorf("seal linear's answer: %w", err)
		}
	}
	return db.decide(ctx, workspaceID, id, func(tx pgx.Tx, a *linsync.GatewayApproval, now time.Time) (*linsync.GatewayAuditEntry, error) {
		if a.Status != linsync.ApprovalForwarding {
			return nil, linsync.Errorf(linsync.ECONFLICT, "approval %s is %s, not forwarding", a.ID, a.Status)
		}
		a.Status, a.Reason, a.LinearStatus, a.LatencyMS = r.Status, r.Reason, r.LinearStatus, r.Latency.Milliseconds()
		if _, err := tx.Exec(ctx, `UPDATE gateway_approvals SET response_sealed = $2 WHERE id = $1`, a.ID, sealed); err != nil {
			return nil, fmt.Errorf("store linear's answer to approval %s: %w", a.ID, err)
		}
		decision := linsync.DecisionApproved
		switch r.Status {
		case linsync.ApprovalApproved:
			return nil, nil
		case linsync.ApprovalForwarded:
			a.ForwardedAt = &now
		case linsync.ApprovalOutcomeUnknown:
			decision = linsync.DecisionOutcomeUnknown
		case linsync.ApprovalFailed:
			decision = linsync.DecisionFailed
		default:
			return nil, fmt.Errorf("finish forward of approval %s: unknown status %q", a.ID, r.Status)
		}
		e := a.AuditEntry(decision, r.Reason)
		return &e, nil
	})
}

// TakeApprovalResponse returns the held request of the agent key and, the first time after it was forwarded,
// Linear's answer, which is then forgotten: the answer is fetched once. Another key's request is ENOTFOUND.
func (db *DB) TakeApprovalResponse(ctx context.Context, workspaceID, agentKeyID, id string) (*linsync.GatewayApproval, []byte, error) {
	var a *linsync.GatewayApproval
	var answer []byte
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		var sealed []byte
		var err error
		if a, err = findApproval(ctx, tx, workspaceID, id, " FOR UPDATE OF a"); err != nil {
			return err
		}
		if a.AgentKeyID != agentKeyID {
			return linsync.Errorf(linsync.ENOTFOUND, "approval not found")
		}
		if a.Status != linsync.ApprovalForwarded || a.ResponseFetched {
			return nil
		}
		if err := tx.QueryRow(ctx, `SELECT response_sealed FROM gateway_approvals WHERE id = $1`, a.ID).Scan(&sealed); err != nil {
			return fmt.Errorf("read linear's answer to approval %s: %w", a.ID, err)
		}
		if _, err := tx.Exec(ctx, `UPDATE gateway_approvals SET response_fetched_at = now(), response_sealed = NULL
			WHERE id = $1`, a.ID); err != nil {
			return fmt.Errorf("take linear's answer to approval %s: %w", a.ID, err)
		}
		if sealed != nil {
			if answer, err = db.cipher.Decrypt(ctx, sealed); err != nil {
				return fmt.Errorf("open linear's answer: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	if answer != nil {
		a.ResponseFetched = true
	}
	return a, answer, nil
}

// FailApproval ends a request that could not be sent: an approved one whose forward gave up without ever reaching
// Linear, or a pending one whose workflow could not be started. It records the reason and audits it.
func (db *DB) FailApproval(ctx context.Context, workspaceID, id, reason string) (*linsync.GatewayApproval, error) {
	return db.decide(ctx, workspaceID, id, func(_ pgx.Tx, a *linsync.GatewayApproval, _ time.Time) (*linsync.GatewayAuditEntry, error) {
		if a.Status != linsync.ApprovalApproved && a.Status != linsync.ApprovalPending {
			return nil, nil
		}
		a.Status, a.Reason = linsync.ApprovalFailed, reason
		e := a.AuditEntry(linsync.DecisionFailed, reason)
		return &e, nil
	})
}
