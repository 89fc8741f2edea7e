package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/linsync/linsync"
)

// workspaceCmd creates a workspace with its first admin token and its Linear webhook secret. The secret is read from
// a file or from stdin, never from a flag, whose value the process list and the shell's history would keep.
func workspaceCmd(ctx context.Context, cfg Config, args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "create" {
		return fmt.Errorf("usage: linsync workspace create --slug SLUG --linear-org ORG_ID [--name NAME] [--team TEAM_ID] [--webhook-secret-file PATH|-]")
	}
	fs := flag.NewFlagSet("workspace create", flag.ContinueOnError)
	fs.SetOutput(stdout)
	slug := fs.String("slug", "", "workspace slug: lower-case letters, digits and dashes (required)")
	name := fs.String("name", "", "display name (defaults to the slug)")
	org := fs.String("linear-org", "", "Linear organization id whose webhooks this workspace receives (required)")
	team := fs.String("team", "", "Linear team id, when several workspaces share one organization")
	secretFile := fs.String("webhook-secret-file", "", "file holding the Linear webhook's signing secret, - for stdin (generated when not given)")
	secretFlag := fs.String("webhook-secret", "", "refused: use --webhook-secret-file")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *secretFlag != "" {
		return fmt.Errorf("--webhook-secret is not accepted (the process list and shell history would keep it): pass --webhook-secret-file PATH, or --webhook-secret-file - and the secret on stdin")
	}
	if *slug == "" || *org == "" {
		return fmt.Errorf("--slug and --linear-org are required")
	}
	if *name == "" {
		*name = *slug
	}
	secret, err := readSecret(*secretFile, stdin)
	if err != nil {
		return err
	}
	generated := secret == ""
	if generated {
		b := make([]byte, 32)
		_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
		secret = "lin_wh_" + hex.EncodeToString(b)
	}
	if err := cfg.requireKey(); err != nil {
		return err
	}
	db, _, closeStore, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer closeStore()
	ws, _, adminToken, err := db.CreateWorkspaceWithToken(ctx, *slug, *name, "admin (created by the CLI)", []string{linsync.ScopeAdmin})
	if err != nil {
		return err
	}
	hook, err := db.AddLinearWebhook(ctx, linsync.LinearWebhookInput{
		WorkspaceID: ws.ID, OrganizationID: *org, TeamID: *team, Secret: secret,
	})
	if err != nil {
		// The admin token was never shown and is never printed on an error path: undo the workspace so that the
		// command can simply be run again.
		if derr := db.DeleteWorkspace(context.WithoutCancel(ctx), ws.ID); derr != nil {
			return fmt.Errorf("store the webhook secret of workspace %s: %w (removing the half-made workspace failed too: %v)", ws.Slug, err, derr)
		}
		return fmt.Errorf("store the webhook secret of workspace %s: %w (the workspace was removed; run the command again)", ws.Slug, err)
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
		fmt.Fprintf(stdout, "  webhook secret (shown once; paste it into Linear's webhook settings): %s\n", secret)
	} else {
		fmt.Fprintf(stdout, "  webhook secret: %s\n", hook.SecretLast4)
	}
	return nil
}

// readSecret reads a secret from path ("-": stdin), trimmed of surrounding whitespace; "" with no path.
func readSecret(path string, stdin io.Reader) (string, error) {
	if path == "" {
		return "", nil
	}
	var b []byte
	var err error
	if path == "-" {
		b, err = io.ReadAll(io.LimitReader(stdin, 4096))
	} else {
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return "", fmt.Errorf("read the webhook secret: %w", err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" || len(s) > 1024 {
		return "", fmt.Errorf("the webhook secret must be 1 to 1024 characters")
	}
	return s, nil
}
