package activities

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/linsync/linsync/linear"
)

func TestLinearErrorMapping(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	zero := func(int64) int64 { return 0 }
	top := func(n int64) int64 { return n - 1 }
	rateLimited := linear.ClassifyResponse(http.StatusBadRequest, http.Header{"Retry-After": {"30"}},
		[]byte(`{"errors":[{"message":"Rate limit exceeded","extensions":{"code":"RATELIMITED","statusCode":429}}]}`), now)

	tests := []struct {
		name         string
		err          error
		attempt      int32
		randN        func(int64) int64
		errType      string
		nonRetryable bool
		minDelay     time.Duration
		maxDelay     time.Duration
	}{
		{"rate limited waits for Retry-After", rateLimited, 1, zero, ErrTypeLinearRateLimited, false, 30 * time.Second, 30 * time.Second},
		{"rate limited jitter only adds", rateLimited, 1, top, ErrTypeLinearRateLimited, false, 30 * time.Second, 35 * time.Second},
		{"rate limit already over still waits", &linear.Error{Class: linear.ClassRateLimited, RetryAt: now.Add(-time.Minute)}, 1, zero, ErrTypeLinearRateLimited, false, time.Second, time.Second},
		{"transient first attempt, never zero", &linear.Error{Class: linear.ClassTransient}, 1, zero, ErrTypeLinearTransient, false, transientFloor, transientFloor},
		{"transient first attempt ceiling", &linear.Error{Class: linear.ClassTransient}, 1, top, ErrTypeLinearTransient, false, time.Second, time.Second},
		{"transient fourth attempt ceiling", &linear.Error{Class: linear.ClassTransient}, 4, top, ErrTypeLinearTransient, false, 8 * time.Second, 8 * time.Second},
		{"transient capped", &linear.Error{Class: linear.ClassTransient}, 40, top, ErrTypeLinearTransient, false, transientCap, transientCap},
		{"network error", context.DeadlineExceeded, 2, zero, ErrTypeLinearTransient, false, transientFloor, transientFloor},
		{"invalid", &linear.Error{Class: linear.ClassInvalid}, 1, zero, ErrTypeLinearInvalid, true, 0, 0},
		{"unauthorized", &linear.Error{Class: linear.ClassUnauthorized}, 1, zero, ErrTypeLinearUnauthorized, true, 0, 0},
		{"forbidden", &linear.Error{Class: linear.ClassForbidden}, 1, zero, ErrTypeLinearForbidden, true, 0, 0},
		{"not found", &linear.Error{Class: linear.ClassNotFound}, 1, zero, ErrTypeLinearNotFound, true, 0, 0},
		{"conflict not handled by the caller", &linear.Error{Class: linear.ClassConflict}, 1, zero, ErrTypeLinearConflict, true, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := (*Metrics)(nil).linearError(tt.err, attempts{temporal: tt.attempt}, now, tt.randN)
			var appErr *temporal.ApplicationError
			require.True(t, errors.As(err, &appErr))
			require.Equal(t, tt.errType, appErr.Type())
			require.Equal(t, tt.nonRetryable, appErr.NonRetryable())
			require.GreaterOrEqual(t, appErr.NextRetryDelay(), tt.minDelay)
			require.LessOrEqual(t, appErr.NextRetryDelay(), tt.maxDelay)
			require.ErrorIs(t, err, tt.err)
		})
	}
	require.NoError(t, (*Metrics)(nil).LinearError(t.Context(), nil))
}

// TestLinearErrorCountsOnlyAttemptsSent: an attempt refused by linsync's own rate budget (nothing sent) spends
// none of the configured attempts and always waits for the reset; the retries end once the attempts that reached
// Linear have used the configured number.
func TestLinearErrorCountsOnlyAttemptsSent(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	zero := func(int64) int64 { return 0 }
	local := &linear.Error{Class: linear.ClassRateLimited, NotSent: true, RetryAt: now.Add(5 * time.Second)}
	refused := &linear.Error{Class: linear.ClassRateLimited, StatusCode: http.StatusBadRequest, RetryAt: now.Add(5 * time.Second)}
	down := &linear.Error{Class: linear.ClassTransient, StatusCode: http.StatusServiceUnavailable}
	for _, tc := range []struct {
		name         string
		err          error
		at           attempts
		nonRetryable bool
		sent         int32
	}{
		{"a local refusal at the configured last attempt still retries", local, attempts{temporal: 5, max: 5}, false, 4},
		{"a local refusal after many still retries", local, attempts{temporal: 40, local: 39, max: 5}, false, 0},
		{"attempts refused locally do not count", down, attempts{temporal: 9, local: 5, max: 5}, false, 4},
		{"the fifth request sent ends the retries", down, attempts{temporal: 10, local: 5, max: 5}, true, 5},
		{"Linear's own refusal counts", refused, attempts{temporal: 5, max: 5}, true, 5},
		{"without a configured number Temporal decides", down, attempts{temporal: 30}, false, 30},
	} {
		err := (*Metrics)(nil).linearError(tc.err, tc.at, now, zero)
		var appErr *temporal.ApplicationError
		require.True(t, errors.As(err, &appErr), tc.name)
		require.Equal(t, tc.nonRetryable, appErr.NonRetryable(), tc.name)
		var d FailureDetails
		require.NoError(t, appErr.Details(&d), tc.name)
		require.Equal(t, tc.sent, d.Attempt, tc.name)
		if linear.Classify(tc.err).Class == linear.ClassRateLimited {
			require.GreaterOrEqual(t, appErr.NextRetryDelay(), 5*time.Second, "%s: never before the reset", tc.name)
		}
	}
}

func TestCreateOrFetch(t *testing.T) {
	t.Parallel()
	conflict := &linear.Error{Class: linear.ClassConflict}
	create := func(err error) func(context.Context) (string, error) {
		return func(context.Context) (string, error) { return "created", err }
	}
	fetch := func(context.Context) (string, error) { return "fetched", nil }

	got, err := CreateOrFetch(t.Context(), create(nil), fetch)
	require.NoError(t, err)
	require.Equal(t, "created", got)

	got, err = CreateOrFetch(t.Context(), create(conflict), fetch)
	require.NoError(t, err)
	require.Equal(t, "fetched", got)

	transient := &linear.Error{Class: linear.ClassTransient}
	_, err = CreateOrFetch(t.Context(), create(transient), fetch)
	require.ErrorIs(t, err, transient)
}
