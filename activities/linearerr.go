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

// LinearError turns an error from the linear package into the Temporal error the activity should return, the one
// mapping from error classes to retry behaviour, and counts the retries it asks for in m (nil counts nothing). Use
// it as `return nil, a.Metrics.LinearError(ctx, err)` inside activities.
func (m *Metrics) LinearError(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	attempt := int32(1)
	if activity.IsActivity(ctx) {
		attempt = activity.GetInfo(ctx).Attempt
	}
	return m.linearError(err, attempt, time.Now(), rand.Int64N)
}

// linearError is LinearError with the attempt, clock and randomness given, for tests.
func (m *Metrics) linearError(err error, attempt int32, now time.Time, randN func(int64) int64) error {
	e := linear.Classify(err)
	msg := err.Error()
	// The attempt travels with the error so a dead letter can say how many were made.
	details := []any{FailureDetails{Attempt: attempt, Class: string(e.Class)}}
	switch e.Class {
	case linear.ClassRateLimited:
		m.retry("rate_limited")
		return temporal.NewApplicationErrorWithOptions(msg, ErrTypeLinearRateLimited, temporal.ApplicationErrorOptions{
			Cause: err, NextRetryDelay: RateLimitDelay(e.RetryAt, now, randN), Details: details})
	case linear.ClassTransient:
		m.retry("transient")
		return temporal.NewApplicationErrorWithOptions(msg, ErrTypeLinearTransient, temporal.ApplicationErrorOptions{
			Cause: err, NextRetryDelay: TransientDelay(attempt, randN), Details: details})
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
