-- Webhook verification chosen by Linear's webhook id, two-phase secret rotation, one managed webhook per scope.
--
-- A delivery names its webhook (the body's webhookId). linear_webhook_id is stored for every webhook linsync created
-- in Linear and for manual ones whose admin gave it; ingress checks the signature against that webhook's secrets
-- only. Within a workspace a Linear webhook is registered once (a repeated id keeps its oldest row).
UPDATE linear_webhooks h SET linear_webhook_id = NULL
WHERE linear_webhook_id IS NOT NULL AND EXISTS (
    SELECT 1 FROM linear_webhooks o
    WHERE o.workspace_id = h.workspace_id AND o.linear_webhook_id = h.linear_webhook_id
      AND (o.created_at, o.id) < (h.created_at, h.id));
CREATE UNIQUE INDEX linear_webhooks_linear_id_idx ON linear_webhooks (workspace_id, linear_webhook_id)
    WHERE linear_webhook_id IS NOT NULL;

-- A rotation of a managed webhook stores its new secret here (committed) before Linear is asked to sign with it;
-- once Linear answered, the pending secret becomes the current one. While it is pending, deliveries signed with it
-- or with the current secret both verify, so an answer from Linear lost on the way never leaves neither accepted.
ALTER TABLE linear_webhooks
    ADD COLUMN pending_secret_ciphertext bytea,
    ADD COLUMN pending_secret_last4      text;

-- One managed webhook per workspace, organization and team scope (all public teams when team_id is null): a second
-- one in Linear would deliver every event twice under delivery ids of its own. Rows that already break the rule keep
-- the oldest managed; later ones become manual registrations, listed for an admin to delete (in Linear too).
UPDATE linear_webhooks h SET managed = false, updated_at = now()
WHERE managed AND EXISTS (
    SELECT 1 FROM linear_webhooks o
    WHERE o.managed AND o.workspace_id = h.workspace_id AND o.organization_id = h.organization_id
      AND coalesce(o.team_id, '') = coalesce(h.team_id, '') AND (o.created_at, o.id) < (h.created_at, h.id));
CREATE UNIQUE INDEX linear_webhooks_managed_scope_idx ON linear_webhooks (workspace_id, organization_id, coalesce(team_id, ''))
    WHERE managed;
