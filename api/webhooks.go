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
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/temporal"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/linear"
	"github.com/linsync/linsync/postgres"
	"github.com/linsync/linsync/workflows"
)

// handleLinearWebhook is Linear's webhook ingress. The checks run in a fixed order, cheapest and least revealing
// first, so that no unauthenticated request costs more than one bounded read and a few HMACs:
//
//  1. sender address (403), before anything is read, decrypted or looked up;
//  2. size (413), then the body's webhookId and organizationId (400 for JSON that is not an object);
//  3. signature (401), checked against the webhook the body's webhookId names, else against at most
//     maxVerifyCandidates webhooks of the path's workspace or the body's organization (verify). An unknown
//     workspace or organization is answered exactly as a bad signature;
//  4. the body's shape (400/422) and organization (404: a secret speaks only for its own organization);
//  5. timestamp (400), the organization's team claims, delivery id (400).
//
// Only then is the delivery persisted (acceptDelivery), and only a persisted delivery is answered with 200, so Linear
// retries anything not persisted.
func (s *Server) handleLinearWebhook(c *gin.Context) {
	received := s.now()
	if !s.senderAllowed(c) {
		s.reject(c, linsync.Errorf(linsync.EFORBIDDEN, "sender address not allowed"))
		return
	}
	body, err := s.readBody(c)
	if err != nil {
		s.reject(c, err)
		return
	}
	// One decode on the usual path: the envelope gives the names now and the entity once the signature holds. A
	// body whose envelope does not decode cleanly takes the long way, where bad input gets its exact answers.
	peeked, clean := linear.PeekWebhook(body)
	names := webhookNames{}
	if clean {
		names.WebhookID, names.OrganizationID = peeked.WebhookID, peeked.OrganizationID
	} else if names, err = namesOf(body); err != nil {
		s.reject(c, err)
		return
	}

	sig := c.GetHeader(linear.HeaderSignature)
	v, chosen, err := s.verify(c, c.Param("workspace"), names, body, sig)
	if err != nil {
		s.reject(c, err)
		return
	}

	hook := peeked
	if clean {
		err = hook.DecodeEntity()
	} else {
		hook, err = linear.DecodeWebhook(body)
	}
	if err != nil {
		s.reject(c, err)
		return
	}
	if v, err = s.matchOrganization(c, body, sig, hook.OrganizationID, v, chosen); err != nil {
		// A secret is only good for its own organization: a workspace cannot speak for another tenant's Linear.
		s.reject(c, err)
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
	v, unclaimed, err := s.claimedBy(c, body, sig, hook.OrganizationID, hook.WebhookID, v)
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
	c.JSON(http.StatusOK, ackResponse{Status: status, WorkflowID: id})
}

// ackResponse is the answer to an accepted or duplicate delivery.
type ackResponse struct {
	Status     string `json:"status"`
	WorkflowID string `json:"workflow_id,omitempty"`
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

// maxVerifyCandidates bounds the webhooks one delivery's signature is checked against when its body's webhookId
// names none of the stored ones (a webhook registered by hand without its Linear id): at most this many secrets
// (each with its previous and pending one during a rotation) are decrypted and HMACed per request. A scope with more
// such webhooks than this is refused unchecked (401): their admin gives linsync their Linear webhook ids. A body that
// names a stored webhook is checked against that webhook alone.
const maxVerifyCandidates = 3

// webhookNames is what a delivery's body says about its sender, read before the signature is checked: only to
// choose which secret to check it with, never trusted beyond that.
type webhookNames struct {
	WebhookID      string `json:"webhookId"`
	OrganizationID string `json:"organizationId"`
}

func namesOf(body []byte) (webhookNames, error) {
	var n webhookNames
	if err := json.Unmarshal(body, &n); err != nil {
		return n, linsync.Errorf(linsync.EINVALID, "malformed JSON: %v", err)
	}
	return n, nil
}

// errBadSignature answers a bad signature and an unknown workspace or organization alike, so that the webhook
// route does not tell which workspaces exist.
var errBadSignature = linsync.Errorf(linsync.EUNAUTHORIZED, "invalid webhook signature")

// verify finds the webhook whose secret signed body among the candidates of the path's workspace or, without one,
// of the body's organization, chosen by the body's names (chooseCandidates); chosen are the candidates it checked.
// A miss on cached secrets is retried once on fresh ones, so a rotation made a moment ago is honoured at once.
func (s *Server) verify(ctx context.Context, workspace string, names webhookNames, body []byte, sig string) (linsync.WebhookVerifier, []*candidate, error) {
	key := "ws:" + workspace
	if workspace == "" {
		if names.OrganizationID == "" {
			return linsync.WebhookVerifier{}, nil, errBadSignature
		}
		key = "org:" + names.OrganizationID
	}
	for attempt := 0; attempt < 2; attempt++ {
		all, err := s.secrets.get(ctx, key, attempt > 0)
		if linsync.ErrorCode(err) == linsync.ENOTFOUND {
			return linsync.WebhookVerifier{}, nil, errBadSignature
		}
		if err != nil {
			return linsync.WebhookVerifier{}, nil, err
		}
		chosen := chooseCandidates(all, names.WebhookID, names.OrganizationID)
		for _, c := range chosen {
			ok, err := s.signedBy(ctx, c, body, sig)
			if err != nil {
				return linsync.WebhookVerifier{}, nil, err
			}
			if ok {
				return c.verifier(), chosen, nil
			}
		}
		if !s.secrets.stale(key) {
			break
		}
	}
	return linsync.WebhookVerifier{}, nil, errBadSignature
}

// chooseCandidates picks the webhooks a delivery's signature is checked against: the one its webhookId names when
// it is stored; otherwise those stored without a Linear id (a stored id other than the body's cannot be the sender)
// for the body's organization, if there are no more than maxVerifyCandidates of them; otherwise none.
func chooseCandidates(all []*candidate, webhookID, org string) []*candidate {
	var named, unnamed []*candidate
	for _, c := range all {
		switch {
		case webhookID != "" && c.v.LinearWebhookID == webhookID:
			named = append(named, c)
		case c.v.LinearWebhookID == "" && (org == "" || c.v.OrganizationID == org):
			unnamed = append(unnamed, c)
		}
	}
	if len(named) == 0 {
		named = unnamed
	}
	if len(named) > maxVerifyCandidates {
		return nil
	}
	return named
}

// signedBy reports whether one of c's accepted secrets signed body, opening them (once per cache entry) first.
func (s *Server) signedBy(ctx context.Context, c *candidate, body []byte, sig string) (bool, error) {
	secrets, err := s.secrets.open(ctx, c, s.metrics.webhookSecretsOpened)
	if err != nil {
		return false, err
	}
	s.metrics.webhookHMACs.Add(float64(len(secrets)))
	return linear.VerifySignature(body, sig, secrets...), nil
}

// matchOrganization returns the verifying webhook registered for the body's organization: v when it is (or the body
// names none, as IssueSLA payloads may not), else another of the checked candidates that also verifies; ENOTFOUND
// when none does.
func (s *Server) matchOrganization(ctx context.Context, body []byte, sig, org string, v linsync.WebhookVerifier, chosen []*candidate) (linsync.WebhookVerifier, error) {
	if org == "" || v.OrganizationID == org {
		return v, nil
	}
	for _, c := range chosen {
		if c.v.OrganizationID != org {
			continue
		}
		ok, err := s.signedBy(ctx, c, body, sig)
		if err != nil {
			return v, err
		}
		if ok {
			return c.verifier(), nil
		}
	}
	return v, linsync.Errorf(linsync.ENOTFOUND, "organization %s has no Linear webhook here", org)
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

// verifierCache keeps webhooks' sealed secrets briefly (a storeCache keyed by "ws:" and a workspace's slug or id, or
// "org:" and a Linear organization id), and each one's secrets once opened, so a KMS-backed key is not asked on every
// delivery, and only the secrets of the webhooks a delivery is checked against are decrypted.
type verifierCache struct {
	*storeCache[[]*candidate]
	db *postgres.DB
}

// candidate is one stored webhook as ingress checks it: sealed until a delivery is checked against it.
type candidate struct {
	v linsync.WebhookVerifier

	mu      sync.Mutex
	secrets [][]byte
}

// verifier returns the webhook with its opened secrets.
func (c *candidate) verifier() linsync.WebhookVerifier {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := c.v
	v.Secrets = c.secrets
	return v
}

// minRefresh is how old a cache entry must be before a signature miss refreshes it, so bad signatures cannot turn
// every request into a database read and decryption.
const minRefresh = time.Second

func newVerifierCache(db *postgres.DB, ttl time.Duration, now func() time.Time) *verifierCache {
	load := func(ctx context.Context, key string) ([]*candidate, error) {
		var vs []linsync.WebhookVerifier
		var err error
		if org, byOrg := strings.CutPrefix(key, "org:"); byOrg {
			vs, err = db.WebhookVerifiersForOrganization(ctx, org)
		} else {
			vs, err = db.WebhookVerifiersForWorkspace(ctx, strings.TrimPrefix(key, "ws:"))
		}
		if err != nil {
			return nil, err
		}
		cands := make([]*candidate, len(vs))
		for i, v := range vs {
			cands[i] = &candidate{v: v}
		}
		return cands, nil
	}
	return &verifierCache{storeCache: newStoreCache(load, ttl, now), db: db}
}

// open returns c's secrets, decrypting them the first time.
func (vc *verifierCache) open(ctx context.Context, c *candidate, opened prometheus.Counter) ([][]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.secrets != nil {
		return c.secrets, nil
	}
	secrets, err := vc.db.OpenWebhookSecrets(ctx, c.v.Sealed)
	if err != nil {
		return nil, linsync.Errorf(linsync.EUNAVAILABLE, "webhook secrets cannot be opened; retry later")
	}
	opened.Add(float64(len(secrets)))
	c.secrets = secrets
	return secrets, nil
}

// stale reports whether the cached entry of key is old enough to be worth refreshing after a signature miss.
func (vc *verifierCache) stale(key string) bool {
	age, ok := vc.age(key)
	return ok && age >= minRefresh
}

// forget drops every cached entry, so that this process reads a secret it just stored at once.
func (vc *verifierCache) forget() { vc.dropAll() }
