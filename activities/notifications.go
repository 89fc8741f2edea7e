package activities

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/linear"
	"github.com/linsync/linsync/postgres"
)

// Temporal error types of notification failures, as workflow histories and dead letters show them.
const (
	ErrTypeNotificationRateLimited = "NotificationRateLimited"
	ErrTypeNotificationTransient   = "NotificationTransient"
	ErrTypeNotificationRefused     = "NotificationRefused"
)

// Notifications evaluates the workspace's notification rules for a delivery and sends the messages.
type Notifications struct {
	DB *postgres.DB
	// HTTP carries the messages: PublicHTTPClient, which refuses private addresses unless configured.
	HTTP *http.Client
	// Temporal, TaskQueue and the digest workflow's type and signal start a rule's digest (signal-with-start); set by
	// worker.NewActivities, since activities cannot import workflows.
	Temporal       client.Client
	TaskQueue      string
	DigestWorkflow string
	DigestSignal   string
	// DigestUnit is how long a rule's digest "minute" lasts: a minute, unless a test shortens it.
	DigestUnit time.Duration
	Metrics    *Metrics
}

// NotifyDelivery asks for a delivery's notifications; Body is the delivery's signed body.
type NotifyDelivery struct {
	WorkspaceID string          `json:"workspace_id"`
	DeliveryID  string          `json:"delivery_id"`
	Body        json.RawMessage `json:"body"`
}

// NotifyPair is one message to send: a rule's to one of its targets.
type NotifyPair struct {
	RuleID   string `json:"rule_id"`
	TargetID string `json:"target_id"`
}

// NotifyPlan is what a delivery's rules decided: the messages to send now, and how many matches went to digests.
type NotifyPlan struct {
	Sends    []NotifyPair `json:"sends,omitempty"`
	Digested int          `json:"digested,omitempty"`
}

// DigestStart is the input of a rule's digest workflow.
type DigestStart struct {
	WorkspaceID string        `json:"workspace_id"`
	RuleID      string        `json:"rule_id"`
	Window      time.Duration `json:"window"`
	// Pending are matches a run carried over when it continued as new.
	Pending []string `json:"pending,omitempty"`
}

// DigestWorkflowID is the workflow ID of a rule's open digest window.
func DigestWorkflowID(workspaceID, ruleID string) string {
	return "notification-digest:" + workspaceID + ":" + ruleID
}

// NotificationEventOf decodes a delivery's body as the rules see it, marking linsync's own writes (the connection's
// Linear user is the actor) as Own. The API's simulator and the worker both use it.
func NotificationEventOf(ctx context.Context, db *postgres.DB, workspaceID, deliveryID string, body []byte) (linsync.NotificationEvent, error) {
	w, err := linear.DecodeWebhook(body)
	if err != nil {
		return linsync.NotificationEvent{}, err
	}
	own := ""
	conn, err := db.FindConnection(ctx, workspaceID)
	switch {
	case err == nil:
		own = conn.ActorUserID
	case linsync.ErrorCode(err) != linsync.ENOTFOUND:
		return linsync.NotificationEvent{}, err
	}
	return linear.NotificationEvent(w, deliveryID, own), nil
}

// EvaluateNotifications matches a delivery against the workspace's enabled rules: a rule with a digest keeps the
// match for its window's message (and wakes the window's workflow), any other yields one message per target.
func (a *Notifications) EvaluateNotifications(ctx context.Context, in NotifyDelivery) (NotifyPlan, error) {
	var plan NotifyPlan
	rules, err := a.DB.EnabledNotificationRules(ctx, in.WorkspaceID)
	if err != nil || len(rules) == 0 {
		return plan, err
	}
	ev, err := NotificationEventOf(ctx, a.DB, in.WorkspaceID, in.DeliveryID, in.Body)
	if linsync.ErrorCode(err) == linsync.EINVALID || linsync.ErrorCode(err) == linsync.EUNPROCESSABLE {
		return plan, nil // a body the rules cannot read notifies nobody; the delivery is recorded as it is
	}
	if err != nil {
		return plan, err
	}
	for _, r := range rules {
		if !linsync.MatchNotification(r, ev) {
			continue
		}
		if r.DigestMinutes > 0 {
			if err := a.digest(ctx, in, r, ev); err != nil {
				return plan, err
			}
			plan.Digested++
			continue
		}
		for _, t := range r.TargetIDs {
			plan.Sends = append(plan.Sends, NotifyPair{RuleID: r.ID, TargetID: t})
		}
	}
	return plan, nil
}

func (a *Notifications) digest(ctx context.Context, in NotifyDelivery, r linsync.NotificationRule, ev linsync.NotificationEvent) error {
	if err := a.DB.AddDigestItem(ctx, in.WorkspaceID, r.ID, in.DeliveryID, ev); err != nil {
		return err
	}
	unit := a.DigestUnit
	if unit <= 0 {
		unit = time.Minute
	}
	_, err := a.Temporal.SignalWithStartWorkflow(ctx, DigestWorkflowID(in.WorkspaceID, r.ID), a.DigestSignal, in.DeliveryID,
		client.StartWorkflowOptions{TaskQueue: a.TaskQueue}, a.DigestWorkflow,
		DigestStart{WorkspaceID: in.WorkspaceID, RuleID: r.ID, Window: time.Duration(r.DigestMinutes) * unit})
	if err != nil {
		return fmt.Errorf("signal digest of rule %s: %w", r.ID, err)
	}
	return nil
}

// SendNotification asks for one message: rule's about the delivery (Body) to target.
type SendNotification struct {
	WorkspaceID string          `json:"workspace_id"`
	DeliveryID  string          `json:"delivery_id"`
	RuleID      string          `json:"rule_id"`
	TargetID    string          `json:"target_id"`
	Body        json.RawMessage `json:"body"`
}

// SendResult says what a send did.
type SendResult struct {
	Outcome    string `json:"outcome"` // sent, already_sent, rule_gone, target_gone
	HTTPStatus int    `json:"http_status,omitempty"`
}

// Send outcomes.
const (
	SendOutcomeSent        = "sent"
	SendOutcomeAlreadySent = "already_sent"
	SendOutcomeRuleGone    = "rule_gone"
	SendOutcomeTargetGone  = "target_gone"
)

// SendNotification sends one message, at most once per (delivery, rule, target): a message recorded as sent is not
// sent again by a retry, a replayed workflow or a replayed dead letter. What a target answers decides the retry: 429
// waits for Retry-After, 408 and 5xx back off with full jitter, other 4xx stop at once.
func (a *Notifications) SendNotification(ctx context.Context, in SendNotification) (SendResult, error) {
	rule, err := a.DB.NotificationRule(ctx, in.WorkspaceID, in.RuleID)
	if linsync.ErrorCode(err) == linsync.ENOTFOUND {
		return SendResult{Outcome: SendOutcomeRuleGone}, nil
	}
	if err != nil {
		return SendResult{}, err
	}
	ev, err := NotificationEventOf(ctx, a.DB, in.WorkspaceID, in.DeliveryID, in.Body)
	if err != nil {
		return SendResult{}, temporal.NewNonRetryableApplicationError("decode delivery", ErrTypeBadWebhook, err)
	}
	return a.send(ctx, *rule, in.TargetID, in.DeliveryID, func(kind string) (linsync.NotificationMessage, error) {
		return linsync.RenderNotification(kind, *rule, ev)
	})
}

// SendDigest asks for a digest window's message: the rule's matches among DeliveryIDs (every match kept for the
// rule when empty, as when a failed window is replayed).
type SendDigest struct {
	WorkspaceID string   `json:"workspace_id"`
	RuleID      string   `json:"rule_id"`
	DeliveryIDs []string `json:"delivery_ids,omitempty"`
}

// SendNotificationDigest sends a digest window's one message to each of the rule's targets, at most once per
// (window, target); the window is named by its matches, so a retry or replay of the same window is the same message.
func (a *Notifications) SendNotificationDigest(ctx context.Context, in SendDigest) (SendResult, error) {
	rule, err := a.DB.NotificationRule(ctx, in.WorkspaceID, in.RuleID)
	if linsync.ErrorCode(err) == linsync.ENOTFOUND {
		return SendResult{Outcome: SendOutcomeRuleGone}, nil
	}
	if err != nil {
		return SendResult{}, err
	}
	evs, err := a.DB.DigestItems(ctx, rule.ID, in.DeliveryIDs)
	if err != nil || len(evs) == 0 {
		return SendResult{Outcome: SendOutcomeSent}, err
	}
	ids := make([]string, len(evs))
	for i, ev := range evs {
		ids[i] = ev.DeliveryID
	}
	slices.Sort(ids)
	sum := sha256.Sum256([]byte(strings.Join(ids, ",")))
	window := "digest:" + hex.EncodeToString(sum[:12])
	var res SendResult
	for _, t := range rule.TargetIDs {
		if res, err = a.send(ctx, *rule, t, window, func(kind string) (linsync.NotificationMessage, error) {
			return linsync.RenderNotificationDigest(kind, *rule, window, evs)
		}); err != nil {
			return res, err
		}
	}
	return res, a.DB.DeleteDigestItems(ctx, rule.ID, ids)
}

// send sends the message render makes for the target's kind, once per (key, rule, target).
func (a *Notifications) send(ctx context.Context, rule linsync.NotificationRule, targetID, key string,
	render func(kind string) (linsync.NotificationMessage, error)) (SendResult, error) {
	target, u, secret, err := a.DB.NotificationTargetSecrets(ctx, rule.WorkspaceID, targetID)
	if linsync.ErrorCode(err) == linsync.ENOTFOUND {
		return SendResult{Outcome: SendOutcomeTargetGone}, nil
	}
	if err != nil {
		return SendResult{}, err
	}
	rec := postgres.NotificationSend{WorkspaceID: rule.WorkspaceID, DeliveryID: key, RuleID: rule.ID, TargetID: targetID}
	status, err := a.DB.ClaimNotificationSend(ctx, rec)
	if err != nil {
		return SendResult{}, err
	}
	if status == postgres.SendSent {
		return SendResult{Outcome: SendOutcomeAlreadySent}, nil
	}
	msg, err := render(target.Kind)
	if err != nil {
		rec.Status, rec.Error = postgres.SendFailed, linsync.ErrorMessage(err)
		_ = a.DB.FinishNotificationSend(ctx, rec)
		a.Metrics.notification(target.Kind, rule.ID, false)
		return SendResult{}, temporal.NewNonRetryableApplicationError("render notification", ErrTypeNotificationRefused, err)
	}
	code, sendErr := PostNotification(ctx, a.HTTP, target.Kind, u, secret,
		linsync.NotificationMessageID(key, rule.ID, targetID), msg.Body, time.Now(), attemptOf(ctx), rand.Int64N)
	rec.HTTPStatus = code
	if sendErr == nil {
		rec.Status = postgres.SendSent
		if err := a.DB.FinishNotificationSend(ctx, rec); err != nil {
			// The message went out: a retry would find the row still "sending" and send it again, so keep trying to
			// record it here rather than failing the attempt.
			activity.GetLogger(ctx).Warn("record notification sent failed", "rule_id", rule.ID, "target_id", targetID, "err", err)
		}
		a.Metrics.notification(target.Kind, rule.ID, true)
		return SendResult{Outcome: SendOutcomeSent, HTTPStatus: code}, nil
	}
	rec.Status, rec.Error = postgres.SendSending, sendErr.Error()
	var app *temporal.ApplicationError
	if (errors.As(sendErr, &app) && app.NonRetryable()) || lastAttempt(ctx) {
		rec.Status = postgres.SendFailed
		a.Metrics.notification(target.Kind, rule.ID, false)
	}
	_ = a.DB.FinishNotificationSend(ctx, rec)
	return SendResult{HTTPStatus: code}, sendErr
}

func attemptOf(ctx context.Context) int32 {
	if activity.IsActivity(ctx) {
		return activity.GetInfo(ctx).Attempt
	}
	return 1
}

// lastAttempt reports whether this attempt is the last the retry policy allows.
func lastAttempt(ctx context.Context) bool {
	if !activity.IsActivity(ctx) {
		return true
	}
	info := activity.GetInfo(ctx)
	return info.RetryPolicy != nil && info.RetryPolicy.MaximumAttempts > 0 && info.Attempt >= info.RetryPolicy.MaximumAttempts
}

// PostNotification posts one message to a target and classifies the answer into the Temporal error the activity
// returns: nil for 2xx; 429 retried no sooner than Retry-After; 408, 5xx and transport failures retried with
// full-jitter backoff; any other status, and an address the client refuses, not retried. A generic webhook's
// message is signed (Standard Webhooks, id stable per message); a Slack message carries no headers of linsync's.
// It returns the HTTP status (0 when none came back). The API's test send and the worker's sends both use it.
func PostNotification(ctx context.Context, hc *http.Client, kind, url string, secret []byte, msgID string, body []byte,
	now time.Time, attempt int32, randN func(int64) int64) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, temporal.NewNonRetryableApplicationError("build notification request", ErrTypeNotificationRefused, RedactURLError(err))
	}
	req.Header.Set("Content-Type", "application/json")
	if kind == linsync.NotifyWebhook {
		for k, v := range linsync.StandardWebhookHeaders(secret, msgID, now, body) {
			req.Header.Set(k, v)
		}
	}
	if hc == nil {
		hc = PublicHTTPClient(false, 10*time.Second)
	}
	resp, err := hc.Do(req)
	if err != nil {
		if errors.Is(err, errNotPublic) {
			return 0, temporal.NewNonRetryableApplicationError(errNotPublic.Error(), ErrTypeNotificationRefused, nil)
		}
		// The URL is a secret (Slack's carries its credential in the path): name nothing of it.
		return 0, temporal.NewApplicationErrorWithOptions("post notification: "+transportReason(err), ErrTypeNotificationTransient,
			temporal.ApplicationErrorOptions{NextRetryDelay: TransientDelay(attempt, randN)})
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	code := resp.StatusCode
	msg := fmt.Sprintf("notification target answered %d", code)
	switch {
	case code/100 == 2:
		return code, nil
	case code == http.StatusTooManyRequests:
		return code, temporal.NewApplicationErrorWithOptions(msg, ErrTypeNotificationRateLimited,
			temporal.ApplicationErrorOptions{NextRetryDelay: RateLimitDelay(retryAfter(resp.Header.Get("Retry-After"), now), now, randN)})
	case code == http.StatusRequestTimeout || code/100 == 5:
		return code, temporal.NewApplicationErrorWithOptions(msg, ErrTypeNotificationTransient,
			temporal.ApplicationErrorOptions{NextRetryDelay: TransientDelay(attempt, randN)})
	}
	return code, temporal.NewNonRetryableApplicationError(msg, ErrTypeNotificationRefused, nil)
}

// retryAfter is when a Retry-After header (seconds, or an HTTP date) allows the next request; a missing or unreadable
// one waits a minute, as Slack asks of a client that gets no header.
func retryAfter(h string, now time.Time) time.Time {
	if s, err := strconv.Atoi(strings.TrimSpace(h)); err == nil && s >= 0 {
		return now.Add(time.Duration(min(s, 3600)) * time.Second)
	}
	if t, err := http.ParseTime(h); err == nil {
		return t
	}
	return now.Add(time.Minute)
}

// transportReason says why a request got no answer without the URL the error names.
func transportReason(err error) string {
	var ne interface{ Timeout() bool }
	if errors.As(err, &ne) && ne.Timeout() {
		return "timed out"
	}
	return "no answer"
}
