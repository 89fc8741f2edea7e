package activities

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/linsync/linsync/linear"
)

// Temporal error types of Linear failures, as they appear in workflow histories, the Web UI and dead letters.
const (
	ErrTypeLinearRateLimited  = "LinearRateLimited"
	ErrTypeLinearTransient    = "LinearTransient"
	ErrTypeLinearInvalid      = "LinearInvalidRequest"
	ErrTypeLinearUnauthorized = "LinearUnauthorized"
	ErrTypeLinearForbidden    = "LinearForbidden"
	ErrTypeLinearNotFound     = "LinearNotFound"
	ErrTypeLinearConflict     = "LinearConflict"
)

// Backoff for transient Linear failures: full jitter over an exponential cap. Temporal adds no jitter of its own
// to NextRetryDelay, so it is done here.
const (
	transientBase   = time.Second
	transientCap    = 5 * time.Minute
	transientFloor  = 100 * time.Millisecond
	rateLimitSpread = 5 * time.Second
)

// LocalRefusalAllowance is how many retries beyond LINSYNC_LINEAR_MAX_ATTEMPTS the retry policy of a Linear call
// allows (workflows' linearRetryPolicy adds it to MaximumAttempts) for attempts that linsync's own rate budget
// refused before anything was sent. Such an attempt spends none of the configured attempts: LinearError counts
// them in the activity's heartbeat details, which the next attempt reads, and ends the retries itself once the
// requests that reached Linear have used the configured attempts. Temporal's own limit is only the backstop.
const LocalRefusalAllowance = 50

// attempts is where an activity attempt stands: Temporal's attempt number, how many earlier attempts linsync's rate
// budget refused before sending (spending no attempt), and the configured attempts (0: Temporal alone decides).
type attempts struct {
	temporal, local, max int32
}

// sent is how many attempts, this one included, reached Linear (or could have).
func (a attempts) sent() int32 { return max(a.temporal-a.local, 1) }

// localRefusals is the heartbeat detail that carries an activity's local refusals to its next attempt.
type localRefusals struct {
	N int32 `json:"local_refusals"`
}

// LinearError turns an error from the linear package into the Temporal error the activity should return, the one
// mapping from error classes to retry behaviour, and counts the retries it asks for in m (nil counts nothing). Use
// it as `return nil, a.Metrics.LinearError(ctx, err)` inside activities.
func (m *Metrics) LinearError(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	at := attempts{temporal: 1}
	if activity.IsActivity(ctx) {
		info := activity.GetInfo(ctx)
		at.temporal = info.Attempt
		if p := info.RetryPolicy; p != nil && p.MaximumAttempts > LocalRefusalAllowance {
			at.max = p.MaximumAttempts - LocalRefusalAllowance
		}
		var lr localRefusals
		if activity.HasHeartbeatDetails(ctx) && activity.GetHeartbeatDetails(ctx, &lr) == nil {
			at.local = lr.N
		}
		if e := linear.Classify(err); e.Class == linear.ClassRateLimited && e.NotSent {
			// The first heartbeat of an attempt is sent at once, so the next attempt reads it.
			activity.RecordHeartbeat(ctx, localRefusals{N: at.local + 1})
		}
	}
	return m.linearError(err, at, time.Now(), rand.Int64N)
}

// linearError is LinearError with the attempts, clock and randomness given, for tests.
func (m *Metrics) linearError(err error, at attempts, now time.Time, randN func(int64) int64) error {
	e := linear.Classify(err)
	msg := err.Error()
	// The attempts that reached Linear travel with the error so a dead letter can say how many were made.
	details := []any{FailureDetails{Attempt: at.sent(), Class: string(e.Class)}}
	// Retryable classes stop once the requests that reached Linear have used the configured attempts.
	exhausted := at.max > 0 && at.sent() >= at.max
	switch e.Class {
	case linear.ClassRateLimited:
		if e.NotSent {
			// Nothing was sent: wait for the reset, spending no attempt, whatever the attempts so far.
			details[0] = FailureDetails{Attempt: max(at.sent()-1, 0), Class: string(e.Class)}
			exhausted = false
		}
		m.retry("rate_limited")
		return temporal.NewApplicationErrorWithOptions(msg, ErrTypeLinearRateLimited, temporal.ApplicationErrorOptions{
			Cause: err, NextRetryDelay: RateLimitDelay(e.RetryAt, now, randN), Details: details, NonRetryable: exhausted})
	case linear.ClassTransient:
		m.retry("transient")
		return temporal.NewApplicationErrorWithOptions(msg, ErrTypeLinearTransient, temporal.ApplicationErrorOptions{
			Cause: err, NextRetryDelay: TransientDelay(at.sent(), randN), Details: details, NonRetryable: exhausted})
	}
	errType := map[linear.ErrorClass]string{
		linear.ClassInvalid:      ErrTypeLinearInvalid,
		linear.ClassUnauthorized: ErrTypeLinearUnauthorized,
		linear.ClassForbidden:    ErrTypeLinearForbidden,
		linear.ClassNotFound:     ErrTypeLinearNotFound,
		linear.ClassConflict:     ErrTypeLinearConflict,
	}[e.Class]
	if errType == "" {
		errType = ErrTypeLinearInvalid
	}
	return temporal.NewApplicationErrorWithOptions(msg, errType, temporal.ApplicationErrorOptions{
		NonRetryable: true, Cause: err, Details: details})
}

// FailureDetails rides on every Linear failure returned by LinearError.
type FailureDetails struct {
	Attempt int32  `json:"attempt"`
	Class   string `json:"class"`
}

// RateLimitDelay is how long to wait after a rate limit: until retryAt, never earlier, plus up to a few seconds of
// jitter so the workers that were all refused together do not all come back in the same millisecond.
func RateLimitDelay(retryAt, now time.Time, randN func(int64) int64) time.Duration {
	wait := max(retryAt.Sub(now), time.Second)
	return wait + time.Duration(randN(int64(rateLimitSpread)))
}

// TransientDelay is the full-jitter exponential backoff for attempt (1-based): uniform in
// [transientFloor, min(transientCap, transientBase·2^(attempt-1))], never 0.
func TransientDelay(attempt int32, randN func(int64) int64) time.Duration {
	ceiling := transientCap
	if attempt < 1 {
		attempt = 1
	}
	if attempt <= 20 {
		ceiling = min(transientCap, transientBase<<(attempt-1))
	}
	return max(time.Duration(randN(int64(ceiling)))+1, transientFloor)
}

// CreateOrFetch runs create and, when Linear answers that the client-chosen id already exists, fetch instead: the
// earlier attempt succeeded, so its result is read back and the activity continues. That is what makes issueCreate
// and commentCreate idempotent under retries.
func CreateOrFetch[T any](ctx context.Context, create, fetch func(context.Context) (T, error)) (T, error) {
	v, err := create(ctx)
	if err == nil || !linear.IsConflict(err) {
		return v, err
	}
	v, ferr := fetch(ctx)
	if ferr != nil {
		return v, errors.Join(err, ferr)
	}
	return v, nil
}
