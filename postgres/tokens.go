package postgres

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"slices"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/envelope"
)

// tokenPrefix marks linsync API tokens, so a leaked one is recognisable in a secret scanner.
const tokenPrefix = "lsk_"

// HashToken is how tokens are stored and looked up: a SHA-256 digest (tokens carry 256 random bits, so no salt or
// slow hash is needed).
func HashToken(token string) []byte {
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}

// CreateToken creates an API token for a workspace and returns it with its secret, which is never stored.
func (db *DB) CreateToken(ctx context.Context, workspaceID, name string, scopes []string) (*linsync.APIToken, string, error) {
	return createToken(ctx, db.pool, workspaceID, name, scopes)
}

func createToken(ctx context.Context, q queryRower, workspaceID, name string, scopes []string) (*linsync.APIToken, string, error) {
	if name == "" {
		return nil, "", &linsync.Error{Code: linsync.EUNPROCESSABLE, Field: "name", Message: "name is required"}
	}
	if len(scopes) == 0 {
		return nil, "", &linsync.Error{Code: linsync.EUNPROCESSABLE, Field: "scopes", Message: "at least one scope is required"}
	}
	for i, s := range scopes {
		if !slices.Contains(linsync.Scopes, s) {
			return nil, "", &linsync.Error{Code: linsync.EUNPROCESSABLE, Field: fmt.Sprintf("scopes[%d]", i),
				Message: fmt.Sprintf("unknown scope %q (known: %v)", s, linsync.Scopes)}
		}
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, "", fmt.Errorf("generate token: %w", err)
	}
	secret := tokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	t := &linsync.APIToken{ID: uuid.NewString(), WorkspaceID: workspaceID, Name: name, Scopes: scopes, Last4: envelope.Last4(secret)}
	err := q.QueryRow(ctx, `
		INSERT INTO api_tokens (id, workspace_id, name, scopes, token_hash, token_last4)
		VALUES ($1, $2, $3, $4, $5, $6) RETURNING created_at`,
		t.ID, workspaceID, name, scopes, HashToken(secret), t.Last4).Scan(&t.CreatedAt)
	if err != nil {
		return nil, "", fmt.Errorf("insert token for workspace %s: %w", workspaceID, err)
	}
	return t, secret, nil
}

const tokenColumns = `t.id, t.workspace_id, t.name, t.scopes, t.token_last4, t.created_at, t.last_used_at, t.revoked_at`

func scanToken(r pgx.CollectableRow) (linsync.APIToken, error) {
	var t linsync.APIToken
	err := r.Scan(&t.ID, &t.WorkspaceID, &t.Name, &t.Scopes, &t.Last4, &t.CreatedAt, &t.LastUsedAt, &t.RevokedAt)
	return t, err
}

// Authenticate returns the live token whose secret is token and its workspace, and notes that it was used.
// An unknown or revoked token is EUNAUTHORIZED.
func (db *DB) Authenticate(ctx context.Context, token string) (*linsync.APIToken, *linsync.Workspace, error) {
	unauthorized := linsync.Errorf(linsync.EUNAUTHORIZED, "invalid or revoked API token")
	if len(token) < len(tokenPrefix)+8 {
		return nil, nil, unauthorized
	}
	var t linsync.APIToken
	var ws linsync.Workspace
	err := db.pool.QueryRow(ctx, `
		SELECT `+tokenColumns+`, w.id, w.slug, w.name, w.created_at
		FROM api_tokens t JOIN workspaces w ON w.id = t.workspace_id
		WHERE t.token_hash = $1 AND t.revoked_at IS NULL`, HashToken(token)).
		Scan(&t.ID, &t.WorkspaceID, &t.Name, &t.Scopes, &t.Last4, &t.CreatedAt, &t.LastUsedAt, &t.RevokedAt,
			&ws.ID, &ws.Slug, &ws.Name, &ws.CreatedAt)
	if err == pgx.ErrNoRows {
		return nil, nil, unauthorized
	}
	if err != nil {
		return nil, nil, fmt.Errorf("look up token: %w", err)
	}
	// Coarse on purpose: one write a minute per token, not one per request.
	_, _ = db.pool.Exec(ctx, `UPDATE api_tokens SET last_used_at = now()
		WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')`, t.ID)
	return &t, &ws, nil
}

// ListTokens returns a workspace's tokens, newest first, without secrets.
func (db *DB) ListTokens(ctx context.Context, workspaceID string) ([]linsync.APIToken, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+tokenColumns+` FROM api_tokens t WHERE t.workspace_id = $1 ORDER BY t.created_at DESC`, workspaceID)
	if err != nil {
		return nil, fmt.Errorf("list tokens of workspace %s: %w", workspaceID, err)
	}
	ts, err := pgx.CollectRows(rows, scanToken)
	if err != nil {
		return nil, fmt.Errorf("scan tokens: %w", err)
	}
	return ts, nil
}

// RevokeToken revokes one of a workspace's tokens. A token of another workspace is ENOTFOUND.
func (db *DB) RevokeToken(ctx context.Context, workspaceID, tokenID string) error {
	if _, err := uuid.Parse(tokenID); err != nil {
		return linsync.Errorf(linsync.ENOTFOUND, "token not found")
	}
	tag, err := db.pool.Exec(ctx, `UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now())
		WHERE id = $1 AND workspace_id = $2`, tokenID, workspaceID)
	if err != nil {
		return fmt.Errorf("revoke token %s: %w", tokenID, err)
	}
	if tag.RowsAffected() == 0 {
		return linsync.Errorf(linsync.ENOTFOUND, "token not found")
	}
	return nil
}
