package postgres

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/envelope"
)

func stateHash(state string) []byte {
	h := sha256.Sum256([]byte(state))
	return h[:]
}

// CreateOAuthState stores an authorization in flight and sweeps expired ones.
func (db *DB) CreateOAuthState(ctx context.Context, st linsync.OAuthState) error {
	ct, err := db.cipher.Encrypt(ctx, []byte(st.CodeVerifier))
	if err != nil {
		return fmt.Errorf("encrypt PKCE verifier: %w", err)
	}
	if st.DefaultLabels == nil {
		st.DefaultLabels = []string{}
	}
	if _, err := db.pool.Exec(ctx, `DELETE FROM oauth_states WHERE expires_at < now() - interval '1 hour'`); err != nil {
		return fmt.Errorf("sweep expired oauth states: %w", err)
	}
	_, err = db.pool.Exec(ctx, `INSERT INTO oauth_states (state_hash, workspace_id, code_verifier_ciphertext, redirect_uri,
		default_team_id, default_priority, default_labels, expires_at, browser_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		stateHash(st.State), st.WorkspaceID, ct, st.RedirectURI, st.DefaultTeamID, st.DefaultPriority, st.DefaultLabels,
		st.ExpiresAt, stateHash(st.BrowserNonce))
	if err != nil {
		return fmt.Errorf("insert oauth state for workspace %s: %w", st.WorkspaceID, err)
	}
	return nil
}

// ConsumeOAuthState takes the authorization whose state this is, once, provided browserNonce is the nonce of the
// browser that started it: a second call with the same state, an unknown state and an expired one are all EINVALID,
// and say nothing about which it was. A state brought back by another browser is EFORBIDDEN and is not consumed, so
// the browser that started the authorization can still complete it.
func (db *DB) ConsumeOAuthState(ctx context.Context, state, browserNonce string) (*linsync.OAuthState, error) {
	invalid := linsync.Errorf(linsync.EINVALID, "invalid or expired OAuth state; start the authorization again")
	if state == "" {
		return nil, invalid
	}
	var st linsync.OAuthState
	var verifier []byte
	err := db.pool.QueryRow(ctx, `DELETE FROM oauth_states WHERE state_hash = $1 AND browser_hash = $2
		RETURNING workspace_id, code_verifier_ciphertext, redirect_uri, default_team_id, default_priority,
		default_labels, expires_at`, stateHash(state), stateHash(browserNonce)).
		Scan(&st.WorkspaceID, &verifier, &st.RedirectURI, &st.DefaultTeamID, &st.DefaultPriority, &st.DefaultLabels, &st.ExpiresAt)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		var live bool
		if qerr := db.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM oauth_states WHERE state_hash = $1 AND expires_at > now())`,
			stateHash(state)).Scan(&live); qerr != nil {
			return nil, fmt.Errorf("look up oauth state: %w", qerr)
		}
		if live {
			return nil, linsync.Errorf(linsync.EFORBIDDEN, "this authorization was started in another browser or client; "+
				"finish it there (the callback needs the cookie set when it started)")
		}
		return nil, invalid
	case err != nil:
		return nil, fmt.Errorf("consume oauth state: %w", err)
	case !time.Now().Before(st.ExpiresAt):
		return nil, invalid
	}
	plain, err := db.cipher.Decrypt(ctx, verifier)
	if err != nil {
		return nil, fmt.Errorf("decrypt PKCE verifier: %w", err)
	}
	st.CodeVerifier = string(plain)
	return &st, nil
}

// RefreshOAuthConnection refreshes a workspace's OAuth tokens when they expire within `within`, and returns the
// connection and its credentials as they then are.
//
// Linear rotates refresh tokens: each refresh returns a new one and consumes the old. Refreshes are therefore
// serialised across goroutines and processes on the connection's row (SELECT … FOR UPDATE); whoever gets the lock
// second re-reads the row, finds fresh tokens and does not refresh again. The new tokens are written in the same
// transaction, guarded by the credential version read under the lock, so they are never lost to a concurrent writer.
// The call to Linear happens under the lock; refresh must honour ctx's deadline.
func (db *DB) RefreshOAuthConnection(ctx context.Context, workspaceID string, within time.Duration, refresh linsync.OAuthRefreshFunc) (*linsync.LinearConnection, *linsync.LinearCredentials, error) {
	var conn linsync.LinearConnection
	var creds linsync.LinearCredentials
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		var cred, rt []byte
		row := tx.QueryRow(ctx, `SELECT `+connectionColumns+`, credential_ciphertext, refresh_token_ciphertext
			FROM linear_connections WHERE workspace_id = $1 FOR UPDATE`, workspaceID)
		if err := scanConnection(row, &conn, &cred, &rt); err != nil {
			return notFound(err, "linear connection")
		}
		if conn.Status != linsync.ConnectionActive {
			return linsync.Errorf(linsync.ECONFLICT, "Linear connection is %s: %s", conn.Status, conn.StatusReason)
		}
		plain, err := db.cipher.Decrypt(ctx, cred)
		if err != nil {
			return fmt.Errorf("decrypt linear credential of workspace %s: %w", workspaceID, err)
		}
		creds.Credential = string(plain)
		if rt != nil {
			if plain, err = db.cipher.Decrypt(ctx, rt); err != nil {
				return fmt.Errorf("decrypt refresh token of workspace %s: %w", workspaceID, err)
			}
			creds.RefreshToken = string(plain)
		}
		fresh := conn.AccessTokenExpiresAt == nil || time.Until(*conn.AccessTokenExpiresAt) > within
		if conn.AuthKind != linsync.AuthOAuth || fresh {
			return nil // another caller refreshed while we waited for the lock, or nothing to refresh
		}
		if creds.RefreshToken == "" {
			return linsync.Errorf(linsync.EUNAUTHORIZED, "the OAuth grant has no refresh token; connect again")
		}
		tok, err := refresh(ctx, creds.RefreshToken)
		if err != nil {
			return err
		}
		if tok.RefreshToken == "" {
			tok.RefreshToken = creds.RefreshToken // no rotation offered: keep the one we have
		}
		if err := db.storeRefreshed(ctx, tx, &conn, tok); err != nil {
			return err
		}
		creds = linsync.LinearCredentials{Credential: tok.AccessToken, RefreshToken: tok.RefreshToken}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return &conn, &creds, nil
}

func (db *DB) storeRefreshed(ctx context.Context, tx pgx.Tx, conn *linsync.LinearConnection, tok *linsync.OAuthTokens) error {
	access, err := db.cipher.Encrypt(ctx, []byte(tok.AccessToken))
	if err != nil {
		return fmt.Errorf("encrypt access token: %w", err)
	}
	refresh, err := db.cipher.Encrypt(ctx, []byte(tok.RefreshToken))
	if err != nil {
		return fmt.Errorf("encrypt refresh token: %w", err)
	}
	scopes := tok.Scopes
	if scopes == nil {
		scopes = conn.OAuthScopes
	}
	row := tx.QueryRow(ctx, `UPDATE linear_connections
		SET credential_ciphertext = $3, credential_last4 = $4, refresh_token_ciphertext = $5,
		    access_token_expires_at = $6, oauth_scopes = $7, credential_version = credential_version + 1, updated_at = now()
		WHERE id = $1 AND credential_version = $2
		RETURNING `+connectionColumns, conn.ID, conn.CredentialVersion, access, envelope.Last4(tok.AccessToken),
		refresh, tok.ExpiresAt, scopes)
	if err := scanConnection(row, conn); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("store refreshed tokens of workspace %s: credential changed underneath", conn.WorkspaceID)
		}
		return fmt.Errorf("store refreshed tokens of workspace %s: %w", conn.WorkspaceID, err)
	}
	return nil
}

// DisconnectConnection marks a workspace's connection disconnected and drops its secrets; the row stays as history.
func (db *DB) DisconnectConnection(ctx context.Context, workspaceID, reason string) (*linsync.LinearConnection, error) {
	var c linsync.LinearConnection
	row := db.pool.QueryRow(ctx, `UPDATE linear_connections
		SET status = 'disconnected', status_reason = $2, credential_ciphertext = ''::bytea, refresh_token_ciphertext = NULL,
		    credential_version = credential_version + 1, status_changed_at = now(), updated_at = now()
		WHERE workspace_id = $1 RETURNING `+connectionColumns, workspaceID, reason)
	if err := scanConnection(row, &c); err != nil {
		return nil, notFound(err, "linear connection")
	}
	return &c, nil
}

// RevokeOAuthConnections marks the workspace's active OAuth connection to a Linear organization revoked with
// reason and returns it; it is idempotent (an already revoked connection is left as it is). Only the workspace whose
// webhook carried the revocation is touched: a delivery never acts on another tenant's connection.
func (db *DB) RevokeOAuthConnections(ctx context.Context, workspaceID, organizationID, reason string) ([]*linsync.LinearConnection, error) {
	rows, err := db.pool.Query(ctx, `UPDATE linear_connections
		SET status = 'revoked', status_reason = $2, credential_version = credential_version + 1,
		    status_changed_at = now(), updated_at = now()
		WHERE organization_id = $1 AND workspace_id::text = $3 AND auth_kind = 'oauth'
		  AND status IN ('active', 'needs_reconnect')
		RETURNING `+connectionColumns, organizationID, reason, workspaceID)
	if err != nil {
		return nil, fmt.Errorf("revoke oauth connections of organization %s: %w", organizationID, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*linsync.LinearConnection, error) {
		var c linsync.LinearConnection
		return &c, scanConnection(r, &c)
	})
	if err != nil {
		return nil, fmt.Errorf("scan revoked oauth connections of organization %s: %w", organizationID, err)
	}
	return out, nil
}

// OAuthConnectionsForOrganization returns the OAuth connections to a Linear organization that were not disconnected
// (active, waiting for a reconnect, or already revoked, so that Linear's retry of a revocation is a duplicate), for
// the OAuth application's own webhook to find its workspaces.
func (db *DB) OAuthConnectionsForOrganization(ctx context.Context, organizationID string) ([]*linsync.LinearConnection, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+connectionColumns+` FROM linear_connections
		WHERE organization_id = $1 AND auth_kind = 'oauth' AND status <> 'disconnected'
		ORDER BY workspace_id`, organizationID)
	if err != nil {
		return nil, fmt.Errorf("oauth connections of organization %s: %w", organizationID, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*linsync.LinearConnection, error) {
		var c linsync.LinearConnection
		return &c, scanConnection(r, &c)
	})
	if err != nil {
		return nil, fmt.Errorf("scan oauth connections of organization %s: %w", organizationID, err)
	}
	return out, nil
}
