package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"

	"github.com/jackc/pgx/v5"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/envelope"
)

// QuestionSettings returns a workspace's settings, the defaults filled in.
func (db *DB) QuestionSettings(ctx context.Context, workspaceID string) (*linsync.QuestionSettings, error) {
	s, _, err := db.questionSettings(ctx, workspaceID)
	return s, err
}

func (db *DB) questionSettings(ctx context.Context, workspaceID string) (*linsync.QuestionSettings, []byte, error) {
	s := &linsync.QuestionSettings{DeletePolicy: linsync.DeletePolicyComment}
	var statusMap, stateFor, secret []byte
	err := db.pool.QueryRow(ctx, `SELECT status_map, state_for_status, delete_policy, callback_url,
		callback_secret_ciphertext, callback_secret_last4, question_url_template, updated_at FROM question_settings WHERE workspace_id = $1`,
		workspaceID).Scan(&statusMap, &stateFor, &s.DeletePolicy, &s.CallbackURL, &secret, &s.CallbackSecretLast4, &s.QuestionURLTemplate, &s.UpdatedAt)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, nil, fmt.Errorf("query question settings of workspace %s: %w", workspaceID, err)
	}
	s.StatusMap, s.StateForStatus = maps.Clone(linsync.DefaultStatusMap), maps.Clone(linsync.DefaultStateForStatus)
	if len(statusMap) > 0 {
		if err := json.Unmarshal(statusMap, &s.StatusMap); err != nil {
			return nil, nil, fmt.Errorf("decode status map: %w", err)
		}
	}
	if len(stateFor) > 0 {
		if err := json.Unmarshal(stateFor, &s.StateForStatus); err != nil {
			return nil, nil, fmt.Errorf("decode state for status: %w", err)
		}
	}
	return s, secret, nil
}

// SaveQuestionSettings stores a workspace's settings, the callback secret encrypted.
func (db *DB) SaveQuestionSettings(ctx context.Context, workspaceID string, in linsync.QuestionSettingsInput) (*linsync.QuestionSettings, error) {
	var statusMap, stateFor []byte
	var err error
	if in.StatusMap != nil {
		if statusMap, err = json.Marshal(in.StatusMap); err != nil {
			return nil, fmt.Errorf("encode status map: %w", err)
		}
	}
	if in.StateForStatus != nil {
		if stateFor, err = json.Marshal(in.StateForStatus); err != nil {
			return nil, fmt.Errorf("encode state for status: %w", err)
		}
	}
	var secret []byte
	last4 := ""
	if in.CallbackSecret != nil && *in.CallbackSecret != "" {
		if secret, err = db.cipher.Encrypt(ctx, []byte(*in.CallbackSecret)); err != nil {
			return nil, fmt.Errorf("encrypt callback secret: %w", err)
		}
		last4 = envelope.Last4(*in.CallbackSecret)
	}
	if in.DeletePolicy == "" {
		in.DeletePolicy = linsync.DeletePolicyComment
	}
	_, err = db.pool.Exec(ctx, `INSERT INTO question_settings (workspace_id, status_map, state_for_status, delete_policy,
			callback_url, callback_secret_ciphertext, callback_secret_last4, question_url_template)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $9)
		ON CONFLICT (workspace_id) DO UPDATE SET status_map = EXCLUDED.status_map,
			state_for_status = EXCLUDED.state_for_status, delete_policy = EXCLUDED.delete_policy,
			callback_url = EXCLUDED.callback_url, question_url_template = EXCLUDED.question_url_template,
			callback_secret_ciphertext = CASE WHEN $8 THEN EXCLUDED.callback_secret_ciphertext ELSE question_settings.callback_secret_ciphertext END,
			callback_secret_last4 = CASE WHEN $8 THEN EXCLUDED.callback_secret_last4 ELSE question_settings.callback_secret_last4 END,
			updated_at = now()`,
		workspaceID, statusMap, stateFor, in.DeletePolicy, in.CallbackURL, secret, last4, in.CallbackSecret != nil,
		in.QuestionURLTemplate)
	if err != nil {
		return nil, fmt.Errorf("save question settings of workspace %s: %w", workspaceID, err)
	}
	return db.QuestionSettings(ctx, workspaceID)
}

// CallbackTarget returns where and with which secret to notify the app of a workspace; an empty URL means no
// callback is configured.
func (db *DB) CallbackTarget(ctx context.Context, workspaceID string) (url string, secret []byte, err error) {
	s, sealed, err := db.questionSettings(ctx, workspaceID)
	if err != nil || s.CallbackURL == "" || sealed == nil {
		return "", nil, err
	}
	if secret, err = db.cipher.Decrypt(ctx, sealed); err != nil {
		return "", nil, fmt.Errorf("decrypt callback secret of workspace %s: %w", workspaceID, err)
	}
	return s.CallbackURL, secret, nil
}
