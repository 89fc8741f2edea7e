package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"go.temporal.io/sdk/temporal"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/linear"
	"github.com/linsync/linsync/postgres"
	"github.com/linsync/linsync/workflows"
)

// handleLinearWebhook is Linear's webhook ingress. The checks run in a fixed order, cheapest and least revealing
// first: size, workspace, signature, timestamp, delivery id, sender address. Only then is the delivery persisted
// (acceptDelivery), and only a persisted delivery is answered with 200, so Linear retries anything not persisted.
func (s *Server) handleLinearWebhook(c *gin.Context) {
	received := s.now()
	body, err := s.readBody(c)
	if err != nil {
		s.reject(c, err)
		return
	}

	verifiers, err := s.findVerifiers(c, c.Param("workspace"), body)
	if err != nil {
		s.reject(c, err)
		return
	}
	v, ok := s.verify(c, c.Param("workspace"), body, c.GetHeader(linear.HeaderSignature), verifiers)
	if !ok {
		s.reject(c, linsync.Errorf(linsync.EUNAUTHORIZED, "invalid webhook signature"))
		return
	}

	hook, err := linear.DecodeWebhook(body)
	if err != nil {
		s.reject(c, err)
		return
	}
	if v, ok = s.matchOrganization(body, c.GetHeader(linear.HeaderSignature), hook.OrganizationID, v, verifiers); !ok {
		// A secret is only good for its own organization: a workspace cannot speak for another tenant's Linear.
		s.reject(c, linsync.Errorf(linsync.ENOTFOUND, "organization %s has no Linear webhook here", hook.OrganizationID))
		return
	}
	// A body may be as old as Linear's retry horizon (its retries keep the first attempt's timestamp): replay
	// protection is the content record acceptDelivery checks, not the clock.
	if err := linear.CheckTimestampWindow(int64(hook.WebhookTimestamp), received, s.cfg.WebhookTolerance,
		max(s.cfg.RetryHorizon, s.cfg.WebhookTolerance)); err != nil {
		s.reject(c, err)
		return
	}
	// Workspaces sharing an organization split it by team (webhooks_teams.go).
	v, unclaimed, err := s.claimedBy(c, body, c.GetHeader(linear.HeaderSignature), hook.OrganizationID, v)
	if err != nil {
		s.reject(c, err)
		return
	}
	deliveryID, err := uuid.Parse(c.GetHeader(linear.HeaderDelivery))
	if err != nil {
		s.reject(c, &linsync.Error{Code: linsync.EINVALID, Field: linear.HeaderDelivery,
			Message: "the Linear-Delivery header must be the delivery's UUID"})
		return
	}
	if !s.senderAllowed(c) {
		s.reject(c, linsync.Errorf(linsync.EFORBIDDEN, "sender address not allowed"))
		return
	}

	in := workflows.LinearDeliveryInput{
		DeliveryID:       deliveryID.String(),
		WorkspaceID:      v.WorkspaceID,
		OrganizationID:   hook.OrganizationID,
		WebhookID:        hook.WebhookID,
		EventType:        hook.Type,
		Action:           hook.Action,
		EntityID:         hook.EntityID(),
		KnownType:        !hook.Unknown,
		WebhookTimestamp: time.UnixMilli(int64(hook.WebhookTimestamp)).UTC(),
		ReceivedAt:       received.UTC(),
		Body:             json.RawMessage(body),
		UnclaimedTeam:    unclaimed,
	}
	s.acceptDelivery(c, in, body)
}

// acceptDelivery persists a verified delivery and answers: accepted, duplicate, or 503 when neither the inbox nor
// the workflow engine took it (admitDelivery).
func (s *Server) acceptDelivery(c *gin.Context, in workflows.LinearDeliveryInput, body []byte) {
	status, id, err := s.admitDelivery(c, in, body)
	if err != nil {
		s.reject(c, err)
		return
	}
	s.metrics.webhooks.WithLabelValues(status).Inc()
	out := gin.H{"status": status}
	if id != "" {
		out["workflow_id"] = id
	}
	c.JSON(http.StatusOK, out)
}

// admitDelivery persists a verified delivery and says whether it is new ("accepted", with its workflow id) or a
// "duplicate". Its signed body is the dedup key: a body the workspace has seen, under any Linear-Delivery, or a
// delivery id it has seen, is a duplicate and starts nothing. Otherwise the delivery is written to the inbox and
// handed to the dispatcher; when Postgres does not take it, its workflow is started directly (startDirect). An
// error means neither store took it: the sender must retry.
func (s *Server) admitDelivery(ctx context.Context, in workflows.LinearDeliveryInput, body []byte) (status, workflowID string, err error) {
	sum := sha256.Sum256(body)
	in.ContentHash = hex.EncodeToString(sum[:])
	keep := s.keepUntil(in.ReceivedAt, in.WebhookTimestamp)
	it, err := workflows.DeliveryItem(in, sum[:], keep)
	if err != nil {
		return "", "", err
	}
	put, err := s.putInbox(ctx, &it)
	switch {
	case err != nil:
		s.log.WarnContext(ctx, "inbox write failed; starting the delivery directly", "delivery_id", in.DeliveryID,
			"workspace_id", in.WorkspaceID, "err", err)
		in.ClaimContent, in.KeepUntil = true, keep
		return s.startDirect(ctx, in)
	case !put:
		return "duplicate", "", nil
	default:
		s.dispatch.offer(it)
		return "accepted", it.WorkflowID, nil
	}
}

// startDirect starts the delivery's workflow without the inbox. The workflow records the body's content first, so
// that a later re-post of the body is a duplicate here and the run does nothing when another delivery brought the
// body first.
func (s *Server) startDirect(ctx context.Context, in workflows.LinearDeliveryInput) (status, workflowID string, err error) {
	id := workflows.LinearDeliveryWorkflowID(in.WorkspaceID, in.DeliveryID)
	ctx, cancel := context.WithTimeout(ctx, s.cfg.StartTimeout)
	defer cancel()
	start := time.Now()
	// A completed delivery stays deduplicated; a failed one may run again when an operator replays it.
	_, err = s.temporal.ExecuteWorkflow(ctx, workflows.StartOnce(id, s.cfg.TaskQueue), workflows.LinearDelivery, in)
	elapsed := time.Since(start).Seconds()
	switch {
	case temporal.IsWorkflowExecutionAlreadyStartedError(err):
		s.metrics.startDuration.WithLabelValues("duplicate").Observe(elapsed)
		return "duplicate", id, nil
	case err != nil:
		s.metrics.startDuration.WithLabelValues("error").Observe(elapsed)
		s.log.WarnContext(ctx, "start delivery workflow failed", "delivery_id", in.DeliveryID, "workflow_id", id,
			"workspace_id", in.WorkspaceID, "err", err)
		return "", "", linsync.Errorf(linsync.EUNAVAILABLE, "neither the inbox nor the workflow engine took the delivery; retry later")
	default:
		s.metrics.startDuration.WithLabelValues("started").Observe(elapsed)
		return "accepted", id, nil
	}
}

// reject answers with err and counts the webhook under its outcome.
func (s *Server) reject(c *gin.Context, err error) {
	outcome := linsync.ErrorCode(err)
	if errors.Is(err, linear.ErrWebhookExpired) {
		outcome = "expired"
	}
	s.metrics.webhooks.WithLabelValues(outcome).Inc()
	s.writeError(c, err)
}

// readBody reads at most MaxBodyBytes; nothing past the limit is read.
func (s *Server) readBody(c *gin.Context) ([]byte, error) {
	tooLarge := linsync.Errorf(linsync.ETOOLARGE, "webhook body exceeds %d bytes", s.cfg.MaxBodyBytes)
	if c.Request.ContentLength > s.cfg.MaxBodyBytes {
		return nil, tooLarge
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, s.cfg.MaxBodyBytes))
	var maxErr *http.MaxBytesError
	switch {
	case errors.As(err, &maxErr):
		return nil, tooLarge
	case err != nil:
		return nil, linsync.Errorf(linsync.EINVALID, "read webhook body: %v", err)
	}
	return body, nil
}

// findVerifiers returns the candidate webhooks for a delivery: the path's workspace, else the body's organization.
func (s *Server) findVerifiers(ctx context.Context, workspace string, body []byte) ([]linsync.WebhookVerifier, error) {
	if workspace != "" {
		return s.secrets.forWorkspace(ctx, workspace, false)
	}
	var probe struct {
		OrganizationID string `json:"organizationId"`
	}
	if err := json.Unmarshal(body, &probe); err != nil {
		return nil, linsync.Errorf(linsync.EINVALID, "malformed JSON: %v", err)
	}
	if probe.OrganizationID == "" {
		return nil, linsync.Errorf(linsync.ENOTFOUND, "no workspace in the path and no organizationId in the body")
	}
	return s.secrets.forOrganization(ctx, probe.OrganizationID, false)
}

// verify finds the webhook whose secret signed body. Several webhooks may share an organization (one per team);
// the signature picks the one. A miss on cached secrets is retried once on fresh ones, so a rotation made a moment
// ago is honoured at once.
func (s *Server) verify(ctx context.Context, workspace string, body []byte, sig string, vs []linsync.WebhookVerifier) (linsync.WebhookVerifier, bool) {
	for attempt := 0; attempt < 2; attempt++ {
		for _, v := range vs {
			if linear.VerifySignature(body, sig, v.Secrets...) {
				return v, true
			}
		}
		if attempt == 0 {
			fresh, err := s.refreshVerifiers(ctx, workspace, vs)
			if err != nil || fresh == nil {
				break
			}
			vs = fresh
		}
	}
	return linsync.WebhookVerifier{}, false
}

func (s *Server) refreshVerifiers(ctx context.Context, workspace string, vs []linsync.WebhookVerifier) ([]linsync.WebhookVerifier, error) {
	if !s.secrets.stale(workspace, vs) {
		return nil, nil
	}
	if workspace != "" {
		return s.secrets.forWorkspace(ctx, workspace, true)
	}
	return s.secrets.forOrganization(ctx, vs[0].OrganizationID, true)
}

// matchOrganization returns the verifying webhook registered for the body's organization: v when it is (or the body
// names none, as IssueSLA payloads may not), else another of the candidates that also verifies.
func (s *Server) matchOrganization(body []byte, sig, org string, v linsync.WebhookVerifier, vs []linsync.WebhookVerifier) (linsync.WebhookVerifier, bool) {
	if org == "" || v.OrganizationID == org {
		return v, true
	}
	for _, o := range vs {
		if o.OrganizationID == org && linear.VerifySignature(body, sig, o.Secrets...) {
			return o, true
		}
	}
	return v, false
}

// senderAllowed checks the sender's address against the allowlist. X-Forwarded-For is believed only from trusted
// proxies (gin's ClientIP with SetTrustedProxies).
func (s *Server) senderAllowed(c *gin.Context) bool {
	if len(s.cfg.AllowedSenders) == 0 {
		return true
	}
	addr, err := netip.ParseAddr(c.ClientIP())
	if err != nil {
		return false
	}
	addr = addr.Unmap()
	for _, p := range s.cfg.AllowedSenders {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// verifierCache keeps decrypted webhook secrets briefly, so a KMS-backed key is not asked on every delivery.
type verifierCache struct {
	db  *postgres.DB
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	entries map[string]cacheEntry
}

type cacheEntry struct {
	vs      []linsync.WebhookVerifier
	fetched time.Time
}

// minRefresh is how old a cache entry must be before a signature miss refreshes it, so bad signatures cannot turn
// every request into a database read and decryption.
const minRefresh = time.Second

// maxStale is how long cached secrets keep verifying while Postgres cannot be read: long enough to ride out a
// restart, short enough that a secret rotated out just before an outage stops counting soon.
const maxStale = 10 * time.Minute

func newVerifierCache(db *postgres.DB, ttl time.Duration, now func() time.Time) *verifierCache {
	return &verifierCache{db: db, ttl: ttl, now: now, entries: map[string]cacheEntry{}}
}

func (vc *verifierCache) forWorkspace(ctx context.Context, key string, fresh bool) ([]linsync.WebhookVerifier, error) {
	return vc.get(ctx, "ws:"+key, fresh, func() ([]linsync.WebhookVerifier, error) {
		return vc.db.WebhookVerifiersForWorkspace(ctx, key)
	})
}

func (vc *verifierCache) forOrganization(ctx context.Context, org string, fresh bool) ([]linsync.WebhookVerifier, error) {
	return vc.get(ctx, "org:"+org, fresh, func() ([]linsync.WebhookVerifier, error) {
		return vc.db.WebhookVerifiersForOrganization(ctx, org)
	})
}

func (vc *verifierCache) get(ctx context.Context, key string, fresh bool, load func() ([]linsync.WebhookVerifier, error)) ([]linsync.WebhookVerifier, error) {
	now := vc.now()
	vc.mu.Lock()
	e, ok := vc.entries[key]
	vc.mu.Unlock()
	if ok && !fresh && now.Sub(e.fetched) < vc.ttl {
		return e.vs, nil
	}
	vs, err := load()
	if err != nil {
		if linsync.ErrorCode(err) == linsync.ENOTFOUND {
			return nil, err
		}
		if ok && now.Sub(e.fetched) < maxStale {
			// Postgres is away: the secrets known a moment ago still verify, so that a delivery can be accepted by
			// starting its workflow directly rather than refused.
			return e.vs, nil
		}
		return nil, linsync.Errorf(linsync.EUNAVAILABLE, "workspace store unavailable; retry later")
	}
	vc.mu.Lock()
	vc.entries[key] = cacheEntry{vs: vs, fetched: now}
	vc.mu.Unlock()
	return vs, nil
}

// stale reports whether the cached entry behind vs is old enough to be worth refreshing after a signature miss.
func (vc *verifierCache) stale(workspace string, vs []linsync.WebhookVerifier) bool {
	key := "ws:" + workspace
	if workspace == "" {
		if len(vs) == 0 {
			return false
		}
		key = "org:" + vs[0].OrganizationID
	}
	vc.mu.Lock()
	defer vc.mu.Unlock()
	e, ok := vc.entries[key]
	return ok && vc.now().Sub(e.fetched) >= minRefresh
}
