package postgres

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/linsync/linsync"
)

// CreateWorkspace creates a workspace with a unique slug.
func (db *DB) CreateWorkspace(ctx context.Context, slug, name string) (*linsync.Workspace, error) {
	return createWorkspace(ctx, db.pool, slug, name)
}

// CreateWorkspaceWithToken creates a workspace and its first token in one transaction, so a failure leaves neither
// (and a retry is not refused as a conflict without ever having shown the token). The token's secret is returned
// once.
func (db *DB) CreateWorkspaceWithToken(ctx context.Context, slug, name, tokenName string, scopes []string) (*linsync.Workspace, *linsync.APIToken, string, error) {
	var ws *linsync.Workspace
	var tok *linsync.APIToken
	var secret string
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		var err error
		if ws, err = createWorkspace(ctx, tx, slug, name); err != nil {
			return err
		}
		tok, secret, err = createToken(ctx, tx, ws.ID, tokenName, scopes)
		return err
	})
	if err != nil {
		return nil, nil, "", err
	}
	return ws, tok, secret, nil
}

// queryRower is a pool or a transaction.
type queryRower interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func createWorkspace(ctx context.Context, q queryRower, slug, name string) (*linsync.Workspace, error) {
	if err := linsync.CheckSlug(slug); err != nil {
		return nil, err
	}
	ws := &linsync.Workspace{ID: uuid.NewString(), Slug: slug, Name: name}
	err := q.QueryRow(ctx,
		`INSERT INTO workspaces (id, slug, name) VALUES ($1, $2, $3) RETURNING created_at`,
		ws.ID, slug, name).Scan(&ws.CreatedAt)
	switch {
	case isUniqueViolation(err, "workspaces_slug_key"):
		return nil, linsync.Errorf(linsync.ECONFLICT, "workspace %q already exists", slug)
	case isCheckViolation(err):
		return nil, &linsync.Error{Code: linsync.EINVALID, Field: "slug",
			Message: "slug must be 1-63 lower-case letters, digits or dashes, starting with a letter or digit"}
	case err != nil:
		return nil, fmt.Errorf("insert workspace %s: %w", slug, err)
	}
	return ws, nil
}

// DeleteWorkspace removes a workspace and everything that belongs to it.
func (db *DB) DeleteWorkspace(ctx context.Context, id string) error {
	if _, err := db.pool.Exec(ctx, `DELETE FROM workspaces WHERE id = $1`, id); err != nil {
		return fmt.Errorf("delete workspace %s: %w", id, err)
	}
	return nil
}

// FindWorkspace returns the workspace whose id or slug is key.
func (db *DB) FindWorkspace(ctx context.Context, key string) (*linsync.Workspace, error) {
	var ws linsync.Workspace
	err := db.pool.QueryRow(ctx,
		`SELECT id, slug, name, created_at FROM workspaces WHERE slug = $1 OR id::text = $1`, key).
		Scan(&ws.ID, &ws.Slug, &ws.Name, &ws.CreatedAt)
	if err != nil {
		return nil, notFound(err, "workspace")
	}
	return &ws, nil
}

// AddLinearWebhook stores a Linear webhook with its signing secret encrypted.
func (db *DB) AddLinearWebhook(ctx context.Context, in linsync.LinearWebhookInput) (*linsync.LinearWebhook, error) {
	w, err := db.RegisterLinearWebhook(ctx, linsync.WebhookRegistration{WorkspaceID: in.WorkspaceID, OrganizationID: in.OrganizationID,
		TeamID: in.TeamID, LinearWebhookID: in.LinearWebhookID, Secret: in.Secret})
	if err != nil {
		return nil, err
	}
	return &linsync.LinearWebhook{ID: w.ID, WorkspaceID: w.WorkspaceID, OrganizationID: w.OrganizationID, TeamID: w.TeamID,
		LinearWebhookID: w.LinearWebhookID, SecretLast4: w.SecretLast4, CreatedAt: w.CreatedAt}, nil
}

// WebhookVerifiersForWorkspace returns the verifiers of the workspace whose id or slug is key.
// ENOTFOUND when there is no such workspace or it has no Linear webhook.
func (db *DB) WebhookVerifiersForWorkspace(ctx context.Context, key string) ([]linsync.WebhookVerifier, error) {
	return db.webhookVerifiers(ctx, `w.slug = $1 OR w.id::text = $1`, key, "workspace")
}

// WebhookVerifiersForOrganization returns the verifiers of every Linear webhook of a Linear organization.
// ENOTFOUND when none is registered.
func (db *DB) WebhookVerifiersForOrganization(ctx context.Context, organizationID string) ([]linsync.WebhookVerifier, error) {
	if organizationID == "" {
		return nil, linsync.Errorf(linsync.ENOTFOUND, "organization not found")
	}
	return db.webhookVerifiers(ctx, `h.organization_id = $1`, organizationID, "organization")
}

func (db *DB) webhookVerifiers(ctx context.Context, where, arg, what string) ([]linsync.WebhookVerifier, error) {
	rows, err := db.pool.Query(ctx, `
		SELECT h.id, w.id, w.slug, h.organization_id, coalesce(h.team_id, ''), coalesce(h.linear_webhook_id, ''),
		       h.secret_ciphertext, CASE WHEN h.previous_secret_expires_at > now() THEN h.previous_secret_ciphertext END,
		       h.pending_secret_ciphertext
		FROM linear_webhooks h JOIN workspaces w ON w.id = h.workspace_id
		WHERE `+where+` ORDER BY h.created_at, h.id`, arg)
	if err != nil {
		return nil, fmt.Errorf("query webhook secrets by %s: %w", what, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (linsync.WebhookVerifier, error) {
		var v linsync.WebhookVerifier
		var current, prior, pending []byte
		err := r.Scan(&v.ID, &v.WorkspaceID, &v.WorkspaceSlug, &v.OrganizationID, &v.TeamID, &v.LinearWebhookID,
			&current, &prior, &pending)
		for _, ct := range [][]byte{current, prior, pending} {
			if ct != nil {
				v.Sealed = append(v.Sealed, ct)
			}
		}
		return v, err
	})
	if err != nil {
		return nil, fmt.Errorf("scan webhook secrets by %s: %w", what, err)
	}
	if len(out) == 0 {
		return nil, linsync.Errorf(linsync.ENOTFOUND, "%s not found", what)
	}
	return out, nil
}

// OpenWebhookSecrets decrypts a verifier's sealed secrets (WebhookVerifier.Sealed), in their order: current,
// previous during its grace window, pending during a rotation.
func (db *DB) OpenWebhookSecrets(ctx context.Context, sealed [][]byte) ([][]byte, error) {
	out := make([][]byte, 0, len(sealed))
	for _, ct := range sealed {
		s, err := db.cipher.Decrypt(ctx, ct)
		if err != nil {
			return nil, fmt.Errorf("decrypt webhook secret: %w", err)
		}
		out = append(out, s)
	}
	return out, nil
}
