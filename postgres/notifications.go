package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/envelope"
)

const targetColumns = `t.id, t.workspace_id, t.name, t.kind, t.url_last4, t.secret_last4, t.created_at`

func scanTarget(r pgx.CollectableRow) (linsync.NotificationTarget, error) {
	var t linsync.NotificationTarget
	err := r.Scan(&t.ID, &t.WorkspaceID, &t.Name, &t.Kind, &t.URLLast4, &t.SecretLast4, &t.CreatedAt)
	return t, err
}

// CreateNotificationTarget stores a target, its URL and secret sealed.
func (db *DB) CreateNotificationTarget(ctx context.Context, workspaceID string, in linsync.NotificationTargetInput) (*linsync.NotificationTarget, error) {
	sealedURL, err := db.cipher.Encrypt(ctx, []byte(in.URL))
	if err != nil {
		return nil, fmt.Errorf("encrypt target url: %w", err)
	}
	var sealedSecret []byte
	last4 := ""
	if in.Secret != "" {
		if sealedSecret, err = db.cipher.Encrypt(ctx, []byte(in.Secret)); err != nil {
			return nil, fmt.Errorf("encrypt target secret: %w", err)
		}
		last4 = envelope.Last4(in.Secret)
	}
	rows, err := db.pool.Query(ctx, `INSERT INTO notification_targets AS t (workspace_id, name, kind, url_ciphertext, url_last4,
			secret_ciphertext, secret_last4) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING `+targetColumns,
		workspaceID, in.Name, in.Kind, sealedURL, envelope.Last4(in.URL), sealedSecret, last4)
	if err != nil {
		return nil, fmt.Errorf("create notification target: %w", err)
	}
	t, err := pgx.CollectExactlyOneRow(rows, scanTarget)
	if isUniqueViolation(err, "") {
		return nil, &linsync.Error{Code: linsync.ECONFLICT, Field: "name", Message: fmt.Sprintf("a target named %q exists", in.Name)}
	}
	if err != nil {
		return nil, fmt.Errorf("create notification target: %w", err)
	}
	return &t, nil
}

// NotificationTarget returns one of a workspace's targets.
func (db *DB) NotificationTarget(ctx context.Context, workspaceID, id string) (*linsync.NotificationTarget, error) {
	if !isUUID(id) {
		return nil, linsync.Errorf(linsync.ENOTFOUND, "notification target not found")
	}
	rows, err := db.pool.Query(ctx, `SELECT `+targetColumns+` FROM notification_targets t WHERE t.workspace_id = $1 AND t.id = $2`,
		workspaceID, id)
	if err != nil {
		return nil, notFound(err, "notification target")
	}
	t, err := pgx.CollectExactlyOneRow(rows, scanTarget)
	if err != nil {
		return nil, notFound(err, "notification target")
	}
	return &t, nil
}

// NotificationTargetsPage returns a page of a workspace's targets, newest first.
func (db *DB) NotificationTargetsPage(ctx context.Context, workspaceID string, p linsync.Page) ([]linsync.NotificationTarget, string, error) {
	at, id, err := pageStart(p)
	if err != nil {
		return nil, "", err
	}
	rows, err := db.pool.Query(ctx, `SELECT `+targetColumns+` FROM notification_targets t WHERE t.workspace_id = $1
		AND (t.created_at, t.id) < ($2, $3::uuid) ORDER BY t.created_at DESC, t.id DESC LIMIT $4`, workspaceID, at, id, p.Limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("list notification targets: %w", err)
	}
	ts, err := pgx.CollectRows(rows, scanTarget)
	if err != nil {
		return nil, "", fmt.Errorf("scan notification targets: %w", err)
	}
	ts, next := pageOf(ts, p.Limit, func(t linsync.NotificationTarget) string { return encodeCursor(t.CreatedAt, t.ID) })
	return ts, next, nil
}

// NotificationTargetSecrets returns a target with its URL and signing secret in clear, for sending.
func (db *DB) NotificationTargetSecrets(ctx context.Context, workspaceID, id string) (*linsync.NotificationTarget, string, []byte, error) {
	t, err := db.NotificationTarget(ctx, workspaceID, id)
	if err != nil {
		return nil, "", nil, err
	}
	var sealedURL, sealedSecret []byte
	if err := db.pool.QueryRow(ctx, `SELECT url_ciphertext, secret_ciphertext FROM notification_targets WHERE id = $1`, id).
		Scan(&sealedURL, &sealedSecret); err != nil {
		return nil, "", nil, notFound(err, "notification target")
	}
	u, err := db.cipher.Decrypt(ctx, sealedURL)
	if err != nil {
		return nil, "", nil, fmt.Errorf("decrypt url of notification target %s: %w", id, err)
	}
	var secret []byte
	if sealedSecret != nil {
		if secret, err = db.cipher.Decrypt(ctx, sealedSecret); err != nil {
			return nil, "", nil, fmt.Errorf("decrypt secret of notification target %s: %w", id, err)
		}
	}
	return t, string(u), secret, nil
}

// DeleteNotificationTarget deletes a target no rule names; a target in use is a conflict naming a rule.
func (db *DB) DeleteNotificationTarget(ctx context.Context, workspaceID, id string) error {
	if !isUUID(id) {
		return linsync.Errorf(linsync.ENOTFOUND, "notification target not found")
	}
	var rule string
	err := db.pool.QueryRow(ctx, `SELECT name FROM notification_rules WHERE workspace_id = $1 AND $2::uuid = ANY (target_ids)
		ORDER BY name LIMIT 1`, workspaceID, id).Scan(&rule)
	if err == nil {
		return &linsync.Error{Code: linsync.ECONFLICT, Field: "id",
			Message: fmt.Sprintf("rule %q sends to this target: change or delete the rule first", rule)}
	}
	if err != pgx.ErrNoRows {
		return fmt.Errorf("find rules of notification target %s: %w", id, err)
	}
	tag, err := db.pool.Exec(ctx, `DELETE FROM notification_targets WHERE workspace_id = $1 AND id = $2`, workspaceID, id)
	if err != nil {
		return fmt.Errorf("delete notification target %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return linsync.Errorf(linsync.ENOTFOUND, "notification target not found")
	}
	return nil
}

// MissingNotificationTargets returns the ids among ids that are not targets of the workspace.
func (db *DB) MissingNotificationTargets(ctx context.Context, workspaceID string, ids []string) ([]string, error) {
	var missing []string
	for _, id := range ids {
		if !isUUID(id) {
			missing = append(missing, id)
			continue
		}
		var ok bool
		if err := db.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM notification_targets WHERE workspace_id = $1 AND id = $2)`,
			workspaceID, id).Scan(&ok); err != nil {
			return nil, fmt.Errorf("check notification target %s: %w", id, err)
		}
		if !ok {
			missing = append(missing, id)
		}
	}
	return missing, nil
}

const ruleColumns = `r.id, r.workspace_id, r.name, r.enabled, r.match, r.target_ids::text[], r.template, r.digest_minutes,
	r.notify_on_own_changes, r.created_at, r.updated_at`

func scanRule(row pgx.CollectableRow) (linsync.NotificationRule, error) {
	var r linsync.NotificationRule
	var match []byte
	if err := row.Scan(&r.ID, &r.WorkspaceID, &r.Name, &r.Enabled, &match, &r.TargetIDs, &r.Template, &r.DigestMinutes,
		&r.NotifyOnOwnChanges, &r.CreatedAt, &r.UpdatedAt); err != nil {
		return r, err
	}
	if err := json.Unmarshal(match, &r.Match); err != nil {
		return r, fmt.Errorf("decode match of rule %s: %w", r.ID, err)
	}
	return r, nil
}

// SaveNotificationRule creates r (no id) or replaces the rule r.ID of the workspace.
func (db *DB) SaveNotificationRule(ctx context.Context, workspaceID string, r linsync.NotificationRule) (*linsync.NotificationRule, error) {
	match, err := json.Marshal(r.Match)
	if err != nil {
		return nil, fmt.Errorf("encode match: %w", err)
	}
	var rows pgx.Rows
	if r.ID == "" {
		rows, err = db.pool.Query(ctx, `INSERT INTO notification_rules AS r (workspace_id, name, enabled, match, target_ids,
				template, digest_minutes, notify_on_own_changes) VALUES ($1, $2, $3, $4, $5::uuid[], $6, $7, $8) RETURNING `+ruleColumns,
			workspaceID, r.Name, r.Enabled, match, r.TargetIDs, r.Template, r.DigestMinutes, r.NotifyOnOwnChanges)
	} else {
		if !isUUID(r.ID) {
			return nil, linsync.Errorf(linsync.ENOTFOUND, "notification rule not found")
		}
		rows, err = db.pool.Query(ctx, `UPDATE notification_rules AS r SET name = $3, enabled = $4, match = $5,
				target_ids = $6::uuid[], template = $7, digest_minutes = $8, notify_on_own_changes = $9, updated_at = now()
			WHERE r.workspace_id = $1 AND r.id = $2 RETURNING `+ruleColumns,
			workspaceID, r.ID, r.Name, r.Enabled, match, r.TargetIDs, r.Template, r.DigestMinutes, r.NotifyOnOwnChanges)
	}
	if err != nil {
		return nil, fmt.Errorf("save notification rule: %w", err)
	}
	saved, err := pgx.CollectExactlyOneRow(rows, scanRule)
	switch {
	case isUniqueViolation(err, ""):
		return nil, &linsync.Error{Code: linsync.ECONFLICT, Field: "name", Message: fmt.Sprintf("a rule named %q exists", r.Name)}
	case err != nil:
		return nil, notFound(err, "notification rule")
	}
	return &saved, nil
}

// NotificationRule returns one of a workspace's rules.
func (db *DB) NotificationRule(ctx context.Context, workspaceID, id string) (*linsync.NotificationRule, error) {
	if !isUUID(id) {
		return nil, linsync.Errorf(linsync.ENOTFOUND, "notification rule not found")
	}
	rows, err := db.pool.Query(ctx, `SELECT `+ruleColumns+` FROM notification_rules r WHERE r.workspace_id = $1 AND r.id = $2`,
		workspaceID, id)
	if err != nil {
		return nil, notFound(err, "notification rule")
	}
	r, err := pgx.CollectExactlyOneRow(rows, scanRule)
	if err != nil {
		return nil, notFound(err, "notification rule")
	}
	return &r, nil
}

// NotificationRulesPage returns a page of a workspace's rules, newest first.
func (db *DB) NotificationRulesPage(ctx context.Context, workspaceID string, p linsync.Page) ([]linsync.NotificationRule, string, error) {
	at, id, err := pageStart(p)
	if err != nil {
		return nil, "", err
	}
	rows, err := db.pool.Query(ctx, `SELECT `+ruleColumns+` FROM notification_rules r WHERE r.workspace_id = $1
		AND (r.created_at, r.id) < ($2, $3::uuid) ORDER BY r.created_at DESC, r.id DESC LIMIT $4`, workspaceID, at, id, p.Limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("list notification rules: %w", err)
	}
	rs, err := pgx.CollectRows(rows, scanRule)
	if err != nil {
		return nil, "", fmt.Errorf("scan notification rules: %w", err)
	}
	rs, next := pageOf(rs, p.Limit, func(r linsync.NotificationRule) string { return encodeCursor(r.CreatedAt, r.ID) })
	return rs, next, nil
}

// EnabledNotificationRules returns every enabled rule of a workspace, oldest first: what each delivery is
// evaluated against.
func (db *DB) EnabledNotificationRules(ctx context.Context, workspaceID string) ([]linsync.NotificationRule, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+ruleColumns+` FROM notification_rules r WHERE r.workspace_id = $1 AND r.enabled
		ORDER BY r.created_at, r.id`, workspaceID)
	if err != nil {
		return nil, fmt.Errorf("list enabled notification rules: %w", err)
	}
	rs, err := pgx.CollectRows(rows, scanRule)
	if err != nil {
		return nil, fmt.Errorf("scan notification rules: %w", err)
	}
	return rs, nil
}

// DeleteNotificationRule deletes a rule (its waiting digest items go with it).
func (db *DB) DeleteNotificationRule(ctx context.Context, workspaceID, id string) error {
	if !isUUID(id) {
		return linsync.Errorf(linsync.ENOTFOUND, "notification rule not found")
	}
	tag, err := db.pool.Exec(ctx, `DELETE FROM notification_rules WHERE workspace_id = $1 AND id = $2`, workspaceID, id)
	if err != nil {
		return fmt.Errorf("delete notification rule %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return linsync.Errorf(linsync.ENOTFOUND, "notification rule not found")
	}
	return nil
}

// NotificationSend is the record of one message: a delivery's (or digest window's) message of a rule to a target.
type NotificationSend struct {
	WorkspaceID string     `json:"workspace_id"`
	DeliveryID  string     `json:"delivery_id"`
	RuleID      string     `json:"rule_id"`
	TargetID    string     `json:"target_id"`
	Status      string     `json:"status"`
	Attempts    int        `json:"attempts"`
	HTTPStatus  int        `json:"http_status"`
	Error       string     `json:"error,omitempty"`
	SentAt      *time.Time `json:"sent_at,omitempty"`
}

// Send statuses.
const (
	SendSending = "sending"
	SendSent    = "sent"
	SendFailed  = "failed"
)

// ClaimNotificationSend records an attempt at a message and returns its status before this attempt: "sent" means
// it went out already, and must not be sent again.
func (db *DB) ClaimNotificationSend(ctx context.Context, s NotificationSend) (string, error) {
	var status string
	err := db.pool.QueryRow(ctx, `INSERT INTO notification_sends AS s (workspace_id, delivery_id, rule_id, target_id, status, attempts)
			VALUES ($1, $2, $3, $4, 'sending', 1)
		ON CONFLICT (workspace_id, delivery_id, rule_id, target_id) DO UPDATE
			SET attempts = s.attempts + CASE WHEN s.status = 'sent' THEN 0 ELSE 1 END,
			    status = CASE WHEN s.status = 'sent' THEN 'sent' ELSE 'sending' END
		RETURNING s.status`,
		s.WorkspaceID, s.DeliveryID, s.RuleID, s.TargetID).Scan(&status)
	if err != nil {
		return "", fmt.Errorf("claim notification send: %w", err)
	}
	return status, nil
}

// FinishNotificationSend records how an attempt ended: sent, failed for good, or (status "sending") failed and to be
// retried.
func (db *DB) FinishNotificationSend(ctx context.Context, s NotificationSend) error {
	_, err := db.pool.Exec(ctx, `UPDATE notification_sends SET status = $5, http_status = $6, error = $7,
			sent_at = CASE WHEN $5 = 'sent' THEN now() ELSE sent_at END
		WHERE workspace_id = $1 AND delivery_id = $2 AND rule_id = $3 AND target_id = $4 AND status <> 'sent'`,
		s.WorkspaceID, s.DeliveryID, s.RuleID, s.TargetID, s.Status, s.HTTPStatus, s.Error)
	if err != nil {
		return fmt.Errorf("finish notification send: %w", err)
	}
	return nil
}

// NotificationSends returns the records of a delivery's (or digest window's) messages.
func (db *DB) NotificationSends(ctx context.Context, workspaceID, deliveryID string) ([]NotificationSend, error) {
	rows, err := db.pool.Query(ctx, `SELECT workspace_id, delivery_id, rule_id, target_id, status, attempts, http_status, error, sent_at
		FROM notification_sends WHERE workspace_id = $1 AND delivery_id = $2 ORDER BY rule_id, target_id`, workspaceID, deliveryID)
	if err != nil {
		return nil, fmt.Errorf("list notification sends: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (NotificationSend, error) {
		var s NotificationSend
		err := r.Scan(&s.WorkspaceID, &s.DeliveryID, &s.RuleID, &s.TargetID, &s.Status, &s.Attempts, &s.HTTPStatus, &s.Error, &s.SentAt)
		return s, err
	})
}

// AddDigestItem keeps a match of a digest rule until its window's message; adding the same delivery twice keeps one.
func (db *DB) AddDigestItem(ctx context.Context, workspaceID, ruleID, deliveryID string, ev linsync.NotificationEvent) error {
	raw, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("encode digest item: %w", err)
	}
	_, err = db.pool.Exec(ctx, `INSERT INTO notification_digest_items (workspace_id, rule_id, delivery_id, event)
		VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`, workspaceID, ruleID, deliveryID, raw)
	if err != nil {
		return fmt.Errorf("add digest item: %w", err)
	}
	return nil
}

// DigestItems returns the kept matches of a rule among deliveryIDs, oldest first.
func (db *DB) DigestItems(ctx context.Context, ruleID string, deliveryIDs []string) ([]linsync.NotificationEvent, error) {
	rows, err := db.pool.Query(ctx, `SELECT event FROM notification_digest_items WHERE rule_id = $1 AND delivery_id = ANY ($2)
		ORDER BY added_at, delivery_id`, ruleID, deliveryIDs)
	if err != nil {
		return nil, fmt.Errorf("list digest items: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (linsync.NotificationEvent, error) {
		var raw []byte
		var ev linsync.NotificationEvent
		if err := r.Scan(&raw); err != nil {
			return ev, err
		}
		return ev, json.Unmarshal(raw, &ev)
	})
}

// DeleteDigestItems drops a window's matches once its message is sent.
func (db *DB) DeleteDigestItems(ctx context.Context, ruleID string, deliveryIDs []string) error {
	if _, err := db.pool.Exec(ctx, `DELETE FROM notification_digest_items WHERE rule_id = $1 AND delivery_id = ANY ($2)`,
		ruleID, deliveryIDs); err != nil {
		return fmt.Errorf("delete digest items: %w", err)
	}
	return nil
}

// pageStart is where a newest-first page of (created_at, id) starts.
func pageStart(p linsync.Page) (time.Time, string, error) {
	if p.Cursor == "" {
		return time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), "ffffffff-ffff-ffff-ffff-ffffffffffff", nil
	}
	return decodeCursor(p.Cursor)
}

// isUUID reports whether s can be compared with a uuid column (anything else names no row).
func isUUID(s string) bool {
	_, err := uuid.Parse(s)
	return err == nil && len(s) == 36
}
