package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// linearRetryPolicy is the one retry policy of every activity that calls Linear or another service. Temporal's own
// backoff is only the fallback: activities.LinearError sets each retry's delay (never before Retry-After or the
// rate-limit reset; full jitter for transient errors) and marks invalid, unauthorized and forbidden as
// non-retryable, which stops at once.
//
// maxAttempts comes from the workflow's input (Starter.LinearMaxAttempts); below 1 it is DefaultLinearMaxAttempts,
// since 0 would mean unlimited to Temporal.
func linearRetryPolicy(maxAttempts int32) *temporal.RetryPolicy {
	if maxAttempts < 1 {
		maxAttempts = DefaultLinearMaxAttempts
	}
	return &temporal.RetryPolicy{
		InitialInterval:    time.Second,
		BackoffCoefficient: 2,
		MaximumInterval:    5 * time.Minute,
		MaximumAttempts:    maxAttempts,
	}
}

// linearContext is the activity context for calls to Linear; startToClose bounds one attempt, maxAttempts (from the
// workflow's input) the attempts.
func linearContext(ctx workflow.Context, startToClose time.Duration, maxAttempts int32) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: startToClose,
		// Long enough for every attempt to wait out Linear's hourly rate-limit window (NextRetryDelay takes the
		// reset time, which may be most of an hour away); MaximumAttempts is what ends a failing call.
		ScheduleToCloseTimeout: 6 * time.Hour,
		RetryPolicy:            linearRetryPolicy(maxAttempts),
	})
}
