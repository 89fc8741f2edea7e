package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/linsync/linsync/activities"
)

// linearRetryPolicy is the one retry policy of every activity that calls Linear or another service. Temporal's own
// backoff is only the fallback: activities.LinearError sets each retry's delay (never before Retry-After or the
// rate-limit reset; full jitter for transient errors) and marks invalid, unauthorized and forbidden as
// non-retryable, which stops at once.
//
// maxAttempts comes from the workflow's input (Starter.LinearMaxAttempts); below 1 it is DefaultLinearMaxAttempts,
// since 0 would mean unlimited to Temporal. It counts attempts that reached Linear: an attempt refused by
// linsync's own rate budget (nothing sent) spends none, so Temporal's MaximumAttempts is maxAttempts plus
// activities.LocalRefusalAllowance, a backstop; activities.LinearError reads it back and ends the retries itself
// once the requests sent have used maxAttempts.
func linearRetryPolicy(maxAttempts int32) *temporal.RetryPolicy {
	if maxAttempts < 1 {
		maxAttempts = DefaultLinearMaxAttempts
	}
	return &temporal.RetryPolicy{
		InitialInterval:    time.Second,
		BackoffCoefficient: 2,
		MaximumInterval:    5 * time.Minute,
		MaximumAttempts:    maxAttempts + activities.LocalRefusalAllowance,
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
