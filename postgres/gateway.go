package postgres

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/envelope"
)

// AgentKeyPrefix marks linsync agent keys, so a leaked one is recognisable, and so the gateway tells them from API
// tokens.
const AgentKeyPrefix = "agk_"

// CreateAgentKey creates an agent key for a workspace with its policy and returns it with its secret, which is never
// stored.
func (db *DB) CreateAgentKey(ctx context.Context, workspaceID, name string, policy linsync.AgentPolicy) (*linsync.AgentKey, string, error) {
	if name == "" || len(name) > 100 {
		return nil, "", &linsync.Error{Code: linsync.EUNPROCESSABLE, Field: "name", Message: "name is required (at most 100 characters)"}
	}
	if err := policy.Validate(); err != nil {
		return nil, "", err
	}
	b := make([]byte, 30)
	if _, err := rand.Read(b); err != nil {
		return nil, "", fmt.Errorf("generate agent key: %w", err)
	}
	secret := AgentKeyPrefix + base64.RawURLEncoding.EncodeToString(b)
	k := &linsync.AgentKey{ID: uuid.NewString(), WorkspaceID: workspaceID, Name: name, Last4: envelope.Last4(secret), Policy: policy}
	err := db.pool.QueryRow(ctx, `
		INSERT INTO agent_keys (id, workspace_id, name, key_hash, key_last4, policy) VALUES ($1, $2, $3, $4, $5, $6)
		RETURNING created_at`, k.ID, workspaceID, name, HashToken(secret), k.Last4, policy).Scan(&k.CreatedAt)
	if err != nil {
		return nil, "", fmt.Errorf("insert agent key for workspace %s: %w", workspaceID, err)
	}
	return k, secret, nil
}

const agentKeyColumns = `k.id, k.workspace_id, k.name, k.key_last4, k.policy, k.created_at, k.last_used_at, k.revoked_at`

func scanAgentKey(row interface{ Scan(...any) error }, k *linsync.AgentKey, extra ...any) error {
	return row.Scan(append([]any{&k.ID, &k.WorkspaceID, &k.Name, &k.Last4, &k.Policy, &k.CreatedAt, &k.LastUsedAt,
		&k.RevokedAt}, extra...)...)
}

// AuthenticateAgentKey returns the live agent key whose secret is key and its workspace, and notes that it was used
// (at most once a minute). An unknown or revoked key is EUNAUTHORIZED.
func (db *DB) AuthenticateAgentKey(ctx context.Context, key string) (*linsync.AgentKey, *linsync.Workspace, error) {
	var k linsync.AgentKey
	var ws linsync.Workspace
	err := scanAgentKey(db.pool.QueryRow(ctx, `
		SELECT `+agentKeyColumns+`, w.id, w.slug, w.name, w.created_at
		FROM agent_keys k JOIN workspaces w ON w.id = k.workspace_id
		WHERE k.key_hash = $1 AND k.revoked_at IS NULL`, HashToken(key)), &k, &ws.ID, &ws.Slug, &ws.Name, &ws.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil, linsync.Errorf(linsync.EUNAUTHORIZED, "invalid or revoked agent key")
	}
	if err != nil {
		return nil, nil, fmt.Errorf("look up agent key: %w", err)
	}
	if k.LastUsedAt == nil || time.Since(*k.LastUsedAt) > time.Minute {
		_, _ = db.pool.Exec(ctx, `UPDATE agent_keys SET last_used_at = now() WHERE id = $1`, k.ID)
	}
	return &k, &ws, nil
}

// ListAgentKeys returns a workspace's agent keys, newest first, without secrets.
func (db *DB) ListAgentKeys(ctx context.Context, workspaceID string) ([]linsync.AgentKey, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+agentKeyColumns+` FROM agent_keys k WHERE k.workspace_id = $1
		ORDER BY k.created_at DESC, k.id`, workspaceID)
	if err != nil {
		return nil, fmt.Errorf("list agent keys of workspace %s: %w", workspaceID, err)
	}
	keys, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (linsync.AgentKey, error) {
		var k linsync.AgentKey
		return k, scanAgentKey(r, &k)
	})
	if err != nil {
		return nil, fmt.Errorf("scan agent keys: %w", err)
	}
	return keys, nil
}

// RevokeAgentKey revokes one of a workspace's agent keys; another workspace's is ENOTFOUND.
func (db *DB) RevokeAgentKey(ctx context.Context, workspaceID, keyID string) error {
	if _, err := uuid.Parse(keyID); err != nil {
		return linsync.Errorf(linsync.ENOTFOUND, "agent key not found")
	}
	tag, err := db.pool.Exec(ctx, `UPDATE agent_keys SET revoked_at = coalesce(revoked_at, now())
		WHERE id = $1 AND workspace_id = $2`, keyID, workspaceID)
	if err != nil {
		return fmt.Errorf("revoke agent key %s: %w", keyID, err)
	}
	if tag.RowsAffected() == 0 {
		return linsync.Errorf(linsync.ENOTFOUND, "agent key not found")
	}
	return nil
}

// SetAgentKeyPolicy replaces an agent key's policy and returns the key.
func (db *DB) SetAgentKeyPolicy(ctx context.Context, workspaceID, keyID string, policy linsync.AgentPolicy) (*linsync.AgentKey, error) {
	if _, err := uuid.Parse(keyID); err != nil {
		return nil, linsync.Errorf(linsync.ENOTFOUND, "agent key not found")
	}
	if err := policy.Validate(); err != nil {
		return nil, err
	}
	var k linsync.AgentKey
	err := scanAgentKey(db.pool.QueryRow(ctx, `UPDATE agent_keys k SET policy = $3 WHERE id = $1 AND workspace_id = $2
		RETURNING `+agentKeyColumns, keyID, workspaceID, policy), &k)
	if err != nil {
		return nil, notFound(err, "agent key")
	}
	return &k, nil
}

// GatewaySettings returns the workspace's gateway settings, the defaults when it set none.
func (db *DB) GatewaySettings(ctx context.Context, workspaceID string) (linsync.GatewaySettings, error) {
	s := linsync.DefaultGatewaySettings
	err := db.pool.QueryRow(ctx, `SELECT high_risk_approvers, approval_timeout_seconds FROM gateway_settings
		WHERE workspace_id = $1`, workspaceID).Scan(&s.HighRiskApprovers, &s.ApprovalTimeoutSeconds)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return s, fmt.Errorf("read gateway settings of workspace %s: %w", workspaceID, err)
	}
	return s, nil
}

// PutGatewaySettings stores the workspace's gateway settings.
func (db *DB) PutGatewaySettings(ctx context.Context, workspaceID string, s linsync.GatewaySettings) error {
	if err := s.Validate(); err != nil {
		return err
	}
	_, err := db.pool.Exec(ctx, `
		INSERT INTO gateway_settings (workspace_id, high_risk_approvers, approval_timeout_seconds) VALUES ($1, $2, $3)
		ON CONFLICT (workspace_id) DO UPDATE SET high_risk_approvers = $2, approval_timeout_seconds = $3, updated_at = now()`,
		workspaceID, s.HighRiskApprovers, s.ApprovalTimeoutSeconds)
	if err != nil {
		return fmt.Errorf("store gateway settings of workspace %s: %w", workspaceID, err)
	}
	return nil
}

// AppendGatewayAudit appends an entry to its workspace's audit chain and returns it as stored, with its sequence
// number, time and hashes. With durable false the commit does not wait for the write-ahead log to reach the disk
// (synchronous_commit off, for this transaction only): a crash of Postgres itself within a fraction of a second
// may then lose the newest entries, never corrupt the chain, and the append costs no disk flush.
//
// It is on the gateway's hot path, so it costs two round trips to Postgres: one that opens the transaction and
// locks the chain's head, one that appends the entry, advances the head and commits.
func (db *DB) AppendGatewayAudit(ctx context.Context, e linsync.GatewayAuditEntry, durable bool) (_ *linsync.GatewayAuditEntry, err error) {
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("acquire connection for the audit: %w", err)
	}
	defer conn.Release()
	open := &pgx.Batch{}
	open.Queue(`BEGIN`)
	if !durable {
		open.Queue(`SET LOCAL synchronous_commit = off`)
	}
	var seq int64
	var prev string
	var now time.Time
	open.Queue(lockAuditHead, e.WorkspaceID).QueryRow(func(row pgx.Row) error { return row.Scan(&seq, &prev, &now) })
	if err := conn.SendBatch(ctx, open).Close(); err != nil {
		_, _ = conn.Exec(context.WithoutCancel(ctx), `ROLLBACK`)
		return nil, fmt.Errorf("lock audit head of workspace %s: %w", e.WorkspaceID, err)
	}
	next, args, err := chainAudit(e, seq, prev, now)
	if err != nil {
		_, _ = conn.Exec(context.WithoutCancel(ctx), `ROLLBACK`)
		return nil, err
	}
	commit := &pgx.Batch{}
	commit.Queue(appendAuditEntry, args...)
	commit.Queue(`COMMIT`)
	if err := conn.SendBatch(ctx, commit).Close(); err != nil {
		_, _ = conn.Exec(context.WithoutCancel(ctx), `ROLLBACK`)
		return nil, fmt.Errorf("append audit entry: %w", err)
	}
	return next, nil
}

// lockAuditHead creates the workspace's chain head on its first append, and locks it on every one.
const lockAuditHead = `
	INSERT INTO gateway_audit_heads (workspace_id, seq, hash) VALUES ($1, 0, '')
	ON CONFLICT (workspace_id) DO UPDATE SET seq = gateway_audit_heads.seq
	RETURNING seq, hash, now()`

// appendAuditEntry inserts an entry and advances the head to it, in one statement.
const appendAuditEntry = `
	WITH entry AS (
		INSERT INTO gateway_audit (workspace_id, seq, at, entry, agent_key_id, agent_id, decision, risk, actions, prev_hash, hash)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11))
	UPDATE gateway_audit_heads SET seq = $2, hash = $11 WHERE workspace_id = $1`

// chainAudit links e after the head (seq, prev) at now, and returns it with appendAuditEntry's arguments.
func chainAudit(e linsync.GatewayAuditEntry, seq int64, prev string, now time.Time) (*linsync.GatewayAuditEntry, []any, error) {
	e.Seq, e.PrevHash = seq+1, prev
	e.At = now.UTC().Truncate(time.Microsecond)
	if e.Actions == nil {
		e.Actions = []string{}
	}
	e.Hash = linsync.AuditHash(e)
	entry, err := json.Marshal(e)
	if err != nil {
		return nil, nil, fmt.Errorf("encode audit entry: %w", err)
	}
	return &e, []any{e.WorkspaceID, e.Seq, e.At, entry, e.AgentKeyID, e.AgentID, e.Decision, e.Risk, e.Actions, e.PrevHash, e.Hash}, nil
}

// appendAudit chains e to the workspace's head inside tx, as part of a larger change (a decision on a held request).
// The head's row lock serialises appends per workspace, so concurrent appends never fork the chain.
func appendAudit(ctx context.Context, tx pgx.Tx, e linsync.GatewayAuditEntry) (*linsync.GatewayAuditEntry, error) {
	var seq int64
	var prev string
	var now time.Time
	if err := tx.QueryRow(ctx, lockAuditHead, e.WorkspaceID).Scan(&seq, &prev, &now); err != nil {
		return nil, fmt.Errorf("lock audit head of workspace %s: %w", e.WorkspaceID, err)
	}
	next, args, err := chainAudit(e, seq, prev, now)
	if err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, appendAuditEntry, args...); err != nil {
		return nil, fmt.Errorf("append audit entry: %w", err)
	}
	return next, nil
}

// MaxAuditPage is the most audit entries one page holds.
const MaxAuditPage = 200

// ListGatewayAudit returns a page of a workspace's audit entries matching f, newest first.
func (db *DB) ListGatewayAudit(ctx context.Context, f linsync.GatewayAuditFilter) ([]linsync.GatewayAuditEntry, error) {
	limit := f.Limit
	if limit <= 0 || limit > MaxAuditPage {
		limit = 50
	}
	q := `SELECT entry FROM gateway_audit WHERE workspace_id = $1`
	args := []any{f.WorkspaceID}
	add := func(cond string, v any) {
		args = append(args, v)
		q += fmt.Sprintf(" AND "+cond, len(args))
	}
	if f.AgentKeyID != "" {
		add("agent_key_id = $%d", f.AgentKeyID)
	}
	if f.AgentID != "" {
		add("agent_id = $%d", f.AgentID)
	}
	if f.Decision != "" {
		add("decision = $%d", f.Decision)
	}
	if f.Risk != "" {
		add("risk = $%d", f.Risk)
	}
	if f.Action != "" {
		add("$%d = ANY (actions)", f.Action)
	}
	if !f.Since.IsZero() {
		add("at >= $%d", f.Since)
	}
	if !f.Until.IsZero() {
		add("at < $%d", f.Until)
	}
	if f.Before > 0 {
		add("seq < $%d", f.Before)
	}
	args = append(args, limit)
	q += fmt.Sprintf(" ORDER BY seq DESC LIMIT $%d", len(args))
	rows, err := db.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list audit of workspace %s: %w", f.WorkspaceID, err)
	}
	entries, err := pgx.CollectRows(rows, scanAuditEntry)
	if err != nil {
		return nil, fmt.Errorf("scan audit entries: %w", err)
	}
	return entries, nil
}

func scanAuditEntry(r pgx.CollectableRow) (linsync.GatewayAuditEntry, error) {
	var raw []byte
	var e linsync.GatewayAuditEntry
	if err := r.Scan(&raw); err != nil {
		return e, err
	}
	return e, json.Unmarshal(raw, &e)
}

// VerifyGatewayAudit walks a workspace's audit chain in order and checks every link and hash against the recorded head.
func (db *DB) VerifyGatewayAudit(ctx context.Context, workspaceID string) (linsync.AuditVerification, error) {
	var headSeq int64
	var headHash string
	err := db.pool.QueryRow(ctx, `SELECT seq, hash FROM gateway_audit_heads WHERE workspace_id = $1`, workspaceID).Scan(&headSeq, &headHash)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return linsync.AuditVerification{}, fmt.Errorf("read audit head of workspace %s: %w", workspaceID, err)
	}
	rows, err := db.pool.Query(ctx, `SELECT entry, seq, prev_hash, hash FROM gateway_audit WHERE workspace_id = $1 ORDER BY seq`, workspaceID)
	if err != nil {
		return linsync.AuditVerification{}, fmt.Errorf("read audit of workspace %s: %w", workspaceID, err)
	}
	defer rows.Close()
	var c linsync.AuditChecker
	for rows.Next() {
		var raw []byte
		var e linsync.GatewayAuditEntry
		var seq int64
		var prev, hash string
		if err := rows.Scan(&raw, &seq, &prev, &hash); err != nil {
			return linsync.AuditVerification{}, fmt.Errorf("scan audit entry: %w", err)
		}
		if err := json.Unmarshal(raw, &e); err != nil {
			e = linsync.GatewayAuditEntry{Hash: "unreadable"}
		}
		// The row's own columns must agree with the entry they index.
		if e.Seq != seq || e.PrevHash != prev || e.Hash != hash {
			e.Hash = "columns disagree with the entry"
		}
		c.Add(e)
	}
	if err := rows.Err(); err != nil {
		return linsync.AuditVerification{}, fmt.Errorf("read audit of workspace %s: %w", workspaceID, err)
	}
	return c.Result(headSeq, headHash), nil
}
