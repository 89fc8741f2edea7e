package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/linsync/linsync"
)

// TeamClaims returns the Linear teams of an organization that workspaces claim, team id → workspace id.
func (db *DB) TeamClaims(ctx context.Context, organizationID string) (map[string]string, error) {
	rows, err := db.pool.Query(ctx, `SELECT team_id, workspace_id::text FROM linear_team_claims WHERE organization_id = $1`,
		organizationID)
	if err != nil {
		return nil, fmt.Errorf("team claims of organization %s: %w", organizationID, err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var team, ws string
		if err := rows.Scan(&team, &ws); err != nil {
			return nil, fmt.Errorf("scan team claim: %w", err)
		}
		out[team] = ws
	}
	return out, rows.Err()
}

// WorkspaceTeamClaims returns the teams a workspace claims in an organization, in the order claimed.
func (db *DB) WorkspaceTeamClaims(ctx context.Context, workspaceID, organizationID string) ([]string, error) {
	rows, err := db.pool.Query(ctx, `SELECT team_id FROM linear_team_claims WHERE workspace_id = $1 AND organization_id = $2
		ORDER BY created_at, team_id`, workspaceID, organizationID)
	if err != nil {
		return nil, fmt.Errorf("team claims of workspace %s: %w", workspaceID, err)
	}
	teams, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("scan team claims of workspace %s: %w", workspaceID, err)
	}
	return teams, nil
}

// SetTeamClaims replaces the teams a workspace claims in an organization. A team another workspace claims is
// ECONFLICT, and nothing changes.
func (db *DB) SetTeamClaims(ctx context.Context, workspaceID, organizationID string, teams []string) error {
	return db.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM linear_team_claims WHERE workspace_id = $1 AND organization_id = $2`,
			workspaceID, organizationID); err != nil {
			return fmt.Errorf("clear team claims of workspace %s: %w", workspaceID, err)
		}
		for _, t := range teams {
			_, err := tx.Exec(ctx, `INSERT INTO linear_team_claims (organization_id, team_id, workspace_id) VALUES ($1, $2, $3)`,
				organizationID, t, workspaceID)
			var pe *pgconn.PgError
			if errors.As(err, &pe) && pe.Code == "23505" {
				return &linsync.Error{Code: linsync.ECONFLICT, Field: "team_ids",
					Message: fmt.Sprintf("team %s is claimed by another workspace of organization %s", t, organizationID)}
			}
			if err != nil {
				return fmt.Errorf("claim team %s for workspace %s: %w", t, workspaceID, err)
			}
		}
		return nil
	})
}

// QuestionTeams returns the Linear teams the workspace's linked questions were filed into.
func (db *DB) QuestionTeams(ctx context.Context, workspaceID string) ([]string, error) {
	rows, err := db.pool.Query(ctx, `SELECT DISTINCT team_id FROM questions WHERE workspace_id = $1 AND linked AND team_id <> ''
		ORDER BY team_id`, workspaceID)
	if err != nil {
		return nil, fmt.Errorf("question teams of workspace %s: %w", workspaceID, err)
	}
	teams, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("scan question teams of workspace %s: %w", workspaceID, err)
	}
	return teams, nil
}
