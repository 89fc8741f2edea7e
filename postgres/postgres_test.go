package postgres_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/linsynctest"
	"github.com/linsync/linsync/postgres"
)

func TestWorkspaces(t *testing.T) {
	t.Parallel()
	db := linsynctest.DB(t)
	ctx := t.Context()
	ws, err := db.CreateWorkspace(ctx, "acme", "Acme")
	require.NoError(t, err)
	_, err = db.CreateWorkspace(ctx, "acme", "Again")
	require.Equal(t, linsync.ECONFLICT, linsync.ErrorCode(err))
	_, err = db.CreateWorkspace(ctx, "Bad Slug!", "x")
	require.Equal(t, linsync.EINVALID, linsync.ErrorCode(err))
	// A slug shaped like a UUID, another workspace's id in particular, would make slug-or-id look-ups ambiguous.
	for _, slug := range []string{ws.ID, "3f8c1e4a5b6d4e7f8a9b0c1d2e3f4a5b"} {
		_, err = db.CreateWorkspace(ctx, slug, "Shadow")
		require.Equal(t, linsync.EINVALID, linsync.ErrorCode(err), slug)
		require.Equal(t, ws.ID, mustFind(t, db, ws.ID), "the id still finds its own workspace")
	}

	for _, key := range []string{"acme", ws.ID} {
		got, err := db.FindWorkspace(ctx, key)
		require.NoError(t, err)
		require.Equal(t, ws.ID, got.ID)
	}
	_, err = db.FindWorkspace(ctx, "nope")
	require.Equal(t, linsync.ENOTFOUND, linsync.ErrorCode(err))
}

func TestWebhookSecretsEncryptedAtRest(t *testing.T) {
	t.Parallel()
	db := linsynctest.DB(t)
	ctx := t.Context()
	ws, err := db.CreateWorkspace(ctx, "acme", "Acme")
	require.NoError(t, err)
	hook, err := db.AddLinearWebhook(ctx, linsync.LinearWebhookInput{WorkspaceID: ws.ID, OrganizationID: "org-1", Secret: "lin_wh_supersecret1234"})
	require.NoError(t, err)
	require.Equal(t, "…1234", hook.SecretLast4)

	var stored []byte
	require.NoError(t, db.Pool().QueryRow(ctx, `SELECT secret_ciphertext FROM linear_webhooks WHERE id = $1`, hook.ID).Scan(&stored))
	require.False(t, bytes.Contains(stored, []byte("supersecret")), "the secret is not stored in clear")

	byWS, err := db.WebhookVerifiersForWorkspace(ctx, "acme")
	require.NoError(t, err)
	require.Len(t, byWS, 1)
	require.Nil(t, byWS[0].Secrets, "handed out sealed")
	require.Equal(t, [][]byte{[]byte("lin_wh_supersecret1234")}, openSecrets(t, db, byWS[0]))
	byOrg, err := db.WebhookVerifiersForOrganization(ctx, "org-1")
	require.NoError(t, err)
	require.Equal(t, byWS, byOrg)
	_, err = db.WebhookVerifiersForOrganization(ctx, "org-2")
	require.Equal(t, linsync.ENOTFOUND, linsync.ErrorCode(err))

	_, err = db.AddLinearWebhook(ctx, linsync.LinearWebhookInput{WorkspaceID: ws.ID, OrganizationID: "org-1"})
	require.Equal(t, linsync.EUNPROCESSABLE, linsync.ErrorCode(err), "a webhook needs a secret")

	_, err = db.RotateLinearWebhookSecret(ctx, ws.ID, hook.ID, "lin_wh_next", time.Hour)
	require.NoError(t, err)
	byWS, err = db.WebhookVerifiersForWorkspace(ctx, ws.ID)
	require.NoError(t, err)
	require.Equal(t, [][]byte{[]byte("lin_wh_next"), []byte("lin_wh_supersecret1234")}, openSecrets(t, db, byWS[0]), "current first, previous during grace")
	_, err = db.RotateLinearWebhookSecret(ctx, ws.ID, uuid.NewString(), "x", time.Hour)
	require.Equal(t, linsync.ENOTFOUND, linsync.ErrorCode(err))
	other, err := db.CreateWorkspace(ctx, "other", "Other")
	require.NoError(t, err)
	_, err = db.RotateLinearWebhookSecret(ctx, other.ID, hook.ID, "x", time.Hour)
	require.Equal(t, linsync.ENOTFOUND, linsync.ErrorCode(err), "another workspace cannot rotate it")
}

func openSecrets(t *testing.T, db *postgres.DB, v linsync.WebhookVerifier) [][]byte {
	t.Helper()
	out, err := db.OpenWebhookSecrets(t.Context(), v.Sealed)
	require.NoError(t, err)
	return out
}

// TestWebhookTwoPhaseRotation: a staged secret is accepted beside the current one until promoted; staging again
// keeps the pending secret; promoting makes it current with the old one as previous; nothing pending is ECONFLICT.
func TestWebhookTwoPhaseRotation(t *testing.T) {
	t.Parallel()
	db := linsynctest.DB(t)
	ctx := t.Context()
	ws, err := db.CreateWorkspace(ctx, "acme", "Acme")
	require.NoError(t, err)
	hook, err := db.RegisterLinearWebhook(ctx, linsync.WebhookRegistration{WorkspaceID: ws.ID, OrganizationID: "org-1",
		LinearWebhookID: "lwh-1", Managed: true, Secret: "lsw_old"})
	require.NoError(t, err)

	pending, err := db.StageWebhookSecret(ctx, ws.ID, hook.ID, "lsw_new")
	require.NoError(t, err)
	require.Equal(t, "lsw_new", pending)
	again, err := db.StageWebhookSecret(ctx, ws.ID, hook.ID, "lsw_third")
	require.NoError(t, err)
	require.Equal(t, "lsw_new", again, "a retried rotation reuses the pending secret")
	vs, err := db.WebhookVerifiersForWorkspace(ctx, "acme")
	require.NoError(t, err)
	require.Equal(t, "lwh-1", vs[0].LinearWebhookID)
	require.Equal(t, [][]byte{[]byte("lsw_old"), []byte("lsw_new")}, openSecrets(t, db, vs[0]), "both accepted while pending")
	rec, err := db.FindLinearWebhook(ctx, ws.ID, hook.ID)
	require.NoError(t, err)
	require.True(t, rec.RotationPending)

	rec, err = db.PromoteWebhookSecret(ctx, ws.ID, hook.ID, time.Hour)
	require.NoError(t, err)
	require.False(t, rec.RotationPending)
	require.Equal(t, "…_new", rec.SecretLast4)
	vs, err = db.WebhookVerifiersForWorkspace(ctx, "acme")
	require.NoError(t, err)
	require.Equal(t, [][]byte{[]byte("lsw_new"), []byte("lsw_old")}, openSecrets(t, db, vs[0]), "new current, old in grace")
	_, err = db.PromoteWebhookSecret(ctx, ws.ID, hook.ID, time.Hour)
	require.Equal(t, linsync.ECONFLICT, linsync.ErrorCode(err))
	_, err = db.StageWebhookSecret(ctx, ws.ID, uuid.NewString(), "x")
	require.Equal(t, linsync.ENOTFOUND, linsync.ErrorCode(err))
}

// TestWebhookRegistrationLimits: one managed webhook per workspace, organization and team scope; a Linear webhook id
// once per workspace; at most MaxWebhooksPerWorkspace webhooks, even when registered concurrently.
func TestWebhookRegistrationLimits(t *testing.T) {
	t.Parallel()
	db := linsynctest.DB(t)
	ctx := t.Context()
	ws, err := db.CreateWorkspace(ctx, "acme", "Acme")
	require.NoError(t, err)
	reg := func(r linsync.WebhookRegistration) error {
		r.WorkspaceID, r.OrganizationID, r.Secret = ws.ID, "org-1", "lsw_x"
		_, err := db.RegisterLinearWebhook(ctx, r)
		return err
	}
	require.NoError(t, reg(linsync.WebhookRegistration{Managed: true, LinearWebhookID: "m-all"}))
	require.Equal(t, linsync.ECONFLICT, linsync.ErrorCode(reg(linsync.WebhookRegistration{Managed: true, LinearWebhookID: "m-all-2"})))
	require.NoError(t, reg(linsync.WebhookRegistration{Managed: true, TeamID: "team-1", LinearWebhookID: "m-t1"}))
	found, err := db.FindManagedWebhook(ctx, ws.ID, "org-1", "team-1")
	require.NoError(t, err)
	require.Equal(t, "m-t1", found.LinearWebhookID)
	err = reg(linsync.WebhookRegistration{LinearWebhookID: "m-t1"})
	require.Equal(t, linsync.ECONFLICT, linsync.ErrorCode(err))
	var le *linsync.Error
	require.ErrorAs(t, err, &le)
	require.Equal(t, "linear_webhook_id", le.Field)

	errs := make(chan error, linsync.MaxWebhooksPerWorkspace)
	for range linsync.MaxWebhooksPerWorkspace {
		go func() { errs <- reg(linsync.WebhookRegistration{}) }()
	}
	refused := 0
	for range linsync.MaxWebhooksPerWorkspace {
		if err := <-errs; err != nil {
			require.Equal(t, linsync.EUNPROCESSABLE, linsync.ErrorCode(err))
			require.Contains(t, err.Error(), "at most 20")
			refused++
		}
	}
	require.Equal(t, 2, refused, "two were there already")
	hooks, err := db.ListLinearWebhooks(ctx, ws.ID)
	require.NoError(t, err)
	require.Len(t, hooks, linsync.MaxWebhooksPerWorkspace)
}

func TestRecordDeliveryOnce(t *testing.T) {
	t.Parallel()
	db := linsynctest.DB(t)
	ctx := t.Context()
	ws, err := db.CreateWorkspace(ctx, "acme", "Acme")
	require.NoError(t, err)
	d := linsync.Delivery{DeliveryID: uuid.NewString(), WorkspaceID: ws.ID, EventType: "Issue", Action: "create",
		EntityID: "i1", WorkflowID: "linear-delivery:x", Outcome: linsync.OutcomeProcessed, ReceivedAt: time.Now()}
	inserted, err := db.RecordDelivery(ctx, d)
	require.NoError(t, err)
	require.True(t, inserted)
	d.Outcome = linsync.OutcomeFailed
	inserted, err = db.RecordDelivery(ctx, d)
	require.NoError(t, err)
	require.False(t, inserted, "a replayed record changes nothing")
	got, err := db.FindDelivery(ctx, ws.ID, d.DeliveryID)
	require.NoError(t, err)
	require.Equal(t, linsync.OutcomeProcessed, got.Outcome)
	failed := d
	failed.DeliveryID, failed.Outcome = uuid.NewString(), linsync.OutcomeFailed
	_, err = db.RecordDelivery(ctx, failed)
	require.NoError(t, err)
	rerun := failed
	rerun.Outcome, rerun.RunID = linsync.OutcomeProcessed, "run-2"
	updated, err := db.RecordDelivery(ctx, rerun)
	require.NoError(t, err)
	require.True(t, updated, "a failed delivery that ran again records its new outcome")
	got, err = db.FindDelivery(ctx, ws.ID, failed.DeliveryID)
	require.NoError(t, err)
	require.Equal(t, linsync.OutcomeProcessed, got.Outcome)
	require.Equal(t, "run-2", got.RunID)

	d.Outcome = "bogus"
	d.DeliveryID = uuid.NewString()
	_, err = db.RecordDelivery(ctx, d)
	require.Error(t, err, "outcomes are constrained")
}

func TestMigrateIsIdempotent(t *testing.T) {
	t.Parallel()
	db := linsynctest.DB(t)
	require.NoError(t, db.Migrate(t.Context()), "the template is already migrated; migrating again is a no-op")
}

func TestCreateWorkspaceWithTokenIsAtomic(t *testing.T) {
	t.Parallel()
	db := linsynctest.DB(t)
	ctx := t.Context()
	ws, tok, secret, err := db.CreateWorkspaceWithToken(ctx, "acme", "Acme", "admin", []string{linsync.ScopeAdmin})
	require.NoError(t, err)
	got, gotWS, err := db.Authenticate(ctx, secret)
	require.NoError(t, err)
	require.Equal(t, tok.ID, got.ID)
	require.Equal(t, ws.ID, gotWS.ID)

	_, _, _, err = db.CreateWorkspaceWithToken(ctx, "beta", "Beta", "admin", []string{"no-such-scope"})
	require.Equal(t, linsync.EUNPROCESSABLE, linsync.ErrorCode(err))
	_, err = db.FindWorkspace(ctx, "beta")
	require.Equal(t, linsync.ENOTFOUND, linsync.ErrorCode(err), "a failed token leaves no workspace behind")
}

func TestTokensHashedScopedRevocableAndLastUsed(t *testing.T) {
	t.Parallel()
	db := linsynctest.DB(t)
	ctx := t.Context()
	ws, err := db.CreateWorkspace(ctx, "acme", "Acme")
	require.NoError(t, err)
	tok, secret, err := db.CreateToken(ctx, ws.ID, "scanner", []string{linsync.ScopeEventsWrite})
	require.NoError(t, err)
	require.Nil(t, tok.LastUsedAt)

	var stored []byte
	require.NoError(t, db.Pool().QueryRow(ctx, `SELECT token_hash FROM api_tokens WHERE id = $1`, tok.ID).Scan(&stored))
	require.Equal(t, postgres.HashToken(secret), stored, "only the hash is stored")

	got, _, err := db.Authenticate(ctx, secret)
	require.NoError(t, err)
	require.True(t, got.HasScope(linsync.ScopeEventsWrite))
	require.False(t, got.HasScope(linsync.ScopeQuestionsWrite))
	list, err := db.ListTokens(ctx, ws.ID)
	require.NoError(t, err)
	require.NotNil(t, list[0].LastUsedAt, "use is recorded")

	require.NoError(t, db.RevokeToken(ctx, ws.ID, tok.ID))
	_, _, err = db.Authenticate(ctx, secret)
	require.Equal(t, linsync.EUNAUTHORIZED, linsync.ErrorCode(err), "a revoked token no longer works")
	other, err := db.CreateWorkspace(ctx, "other", "Other")
	require.NoError(t, err)
	require.Equal(t, linsync.ENOTFOUND, linsync.ErrorCode(db.RevokeToken(ctx, other.ID, tok.ID)), "another workspace's token is not found")
}

func mustFind(t *testing.T, db *postgres.DB, key string) string {
	t.Helper()
	got, err := db.FindWorkspace(t.Context(), key)
	require.NoError(t, err)
	return got.ID
}
