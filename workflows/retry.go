package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// LinearMaxAttempts is how many times an activity that calls Linear (or another service) is tried before its work
// becomes a dead letter. The worker sets it once from configuration, before it starts.
var LinearMaxAttempts int32 = 5

// linearRetryPolicy is the one retry policy of every activity that calls Linear or another service. Temporal's own
// backoff is only the fallback: activities.LinearError sets each retry's delay (never before Retry-After or the
// rate-limit reset; full jitter for transient errors) and marks invalid, unauthorized and forbidden as
// non-retryable, which stops at once.
func linearRetryPolicy() *temporal.RetryPolicy {
	attempts := LinearMaxAttempts
	if attempts < 1 {
		attempts = 5 // 0 would mean unlimited to Temporal
	}
	return &temporal.RetryPolicy{
		InitialInterval:    time.Second,
		BackoffCoefficient: 2,
		MaximumInterval:    5 * time.Minute,
		MaximumAttempts:    attempts,
	}
}

// linearContext is the activity context for calls to Linear; startToClose bounds one attempt.
func linearContext(ctx workflow.Context, startToClose time.Duration) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: startToClose,
		// Long enough for every attempt to wait out Linear's hourly rate-limit window (NextRetryDelay takes the
		// reset time, which may be most of an hour away); MaximumAttempts is what ends a failing call.
		ScheduleToCloseTimeout: 6 * time.Hour,
		RetryPolicy:            linearRetryPolicy(),
	})
}
