package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"

	"github.com/linsync/linsync"
)

func workspaceCmd(ctx context.Context, cfg Config, args []string, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "create" {
		return fmt.Errorf("usage: linsync workspace create --slug SLUG --linear-org ORG_ID [--name NAME] [--team TEAM_ID] [--webhook-secret SECRET]")
	}
	fs := flag.NewFlagSet("workspace create", flag.ContinueOnError)
	fs.SetOutput(stdout)
	slug := fs.String("slug", "", "workspace slug: lower-case letters, digits and dashes (required)")
	name := fs.String("name", "", "display name (defaults to the slug)")
	org := fs.String("linear-org", "", "Linear organization id whose webhooks this workspace receives (required)")
	team := fs.String("team", "", "Linear team id, when several workspaces share one organization")
	secret := fs.String("webhook-secret", "", "the Linear webhook's signing secret (generated when empty)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *slug == "" || *org == "" {
		return fmt.Errorf("--slug and --linear-org are required")
	}
	if *name == "" {
		*name = *slug
	}
	generated := *secret == ""
	if generated {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return fmt.Errorf("generate webhook secret: %w", err)
		}
		*secret = "lin_wh_" + hex.EncodeToString(b)
	}
	if err := cfg.requireKey(); err != nil {
		return err
	}
	db, closeStore, err := openStore(ctx, cfg.SecretsKeyURL, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer closeStore()
	ws, _, adminToken, err := db.CreateWorkspaceWithToken(ctx, *slug, *name, "admin (created by the CLI)", []string{linsync.ScopeAdmin})
	if err != nil {
		return err
	}
	hook, err := db.AddLinearWebhook(ctx, linsync.LinearWebhookInput{
		WorkspaceID: ws.ID, OrganizationID: *org, TeamID: *team, Secret: *secret,
	})
	if err != nil {
		return fmt.Errorf("store the webhook secret of workspace %s (its admin token is %s): %w", ws.Slug, adminToken, err)
	}
	if *team != "" {
		// Several workspaces share the organization: this one takes the deliveries about its team.
		if err := db.SetTeamClaims(ctx, ws.ID, *org, []string{*team}); err != nil {
			return fmt.Errorf("claim team %s for workspace %s (its admin token is %s): %w", *team, ws.Slug, adminToken, err)
		}
	}
	fmt.Fprintf(stdout, "workspace created\n  id:            %s\n  slug:          %s\n  organization:  %s\n", ws.ID, ws.Slug, hook.OrganizationID)
	if *team != "" {
		fmt.Fprintf(stdout, "  claimed team:  %s\n", *team)
	}
	fmt.Fprintf(stdout, "  webhook URLs:  /webhooks/linear/%s  or  /webhooks/linear (matched by organizationId)\n", ws.Slug)
	// Shown once: linsync keeps only a hash.
	fmt.Fprintf(stdout, "  admin token (shown once): %s\n", adminToken)
	if generated {
		// Shown once: it is stored encrypted and never printed again.
		fmt.Fprintf(stdout, "  webhook secret (shown once; paste it into Linear's webhook settings): %s\n", *secret)
	} else {
		fmt.Fprintf(stdout, "  webhook secret: %s\n", hook.SecretLast4)
	}
	return nil
}
