package workflows

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/activities"
	"github.com/linsync/linsync/linear"
)

func TestLinearDeliveryWorkflowID(t *testing.T) {
	t.Parallel()
	cases := []struct{ ws, in, want string }{
		{"ws1", "234d1a4e-b617-4388-90fe-adc3633d6b72", "linear-delivery:ws1:234d1a4e-b617-4388-90fe-adc3633d6b72"},
		{"ws2", "234d1a4e-b617-4388-90fe-adc3633d6b72", "linear-delivery:ws2:234d1a4e-b617-4388-90fe-adc3633d6b72"},
		{"ws1", "00000000-0000-0000-0000-000000000000", "linear-delivery:ws1:00000000-0000-0000-0000-000000000000"},
	}
	for _, tc := range cases {
		require.Equal(t, tc.want, LinearDeliveryWorkflowID(tc.ws, tc.in))
	}
}

// newDeliveryEnv is a quiet test environment with the delivery activities registered.
func newDeliveryEnv() *testsuite.TestWorkflowEnvironment {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	env := s.NewTestWorkflowEnvironment()
	env.RegisterActivity(&activities.Deliveries{})
	env.RegisterActivity(&activities.Notifications{})
	var n *activities.Notifications
	env.OnActivity(n.EvaluateNotifications, mock.Anything, mock.Anything).Return(activities.NotifyPlan{}, nil).Maybe()
	return env
}

func runDelivery(t *testing.T, in LinearDeliveryInput, recordErr error) (linsync.Delivery, error) {
	t.Helper()
	return runDeliveryWith(t, deliveryRoutes(), in, recordErr)
}

// runDeliveryWith runs LinearDelivery with the routing table given.
func runDeliveryWith(t *testing.T, routes map[string]DeliveryHandler, in LinearDeliveryInput, recordErr error) (linsync.Delivery, error) {
	t.Helper()
	env := newDeliveryEnv()
	var a *activities.Deliveries
	var got linsync.Delivery
	env.OnActivity(a.RecordDelivery, mock.Anything, mock.Anything).Return(
		func(_ context.Context, d linsync.Delivery) (bool, error) { got = d; return recordErr == nil, recordErr })
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: LinearDeliveryWorkflowID(in.WorkspaceID, in.DeliveryID)})
	env.RegisterWorkflowWithOptions(func(ctx workflow.Context, in LinearDeliveryInput) error {
		return deliver(ctx, in, routes)
	}, workflow.RegisterOptions{Name: TypeLinearDelivery})
	env.ExecuteWorkflow(TypeLinearDelivery, in)
	require.True(t, env.IsWorkflowCompleted())
	return got, env.GetWorkflowError()
}

func TestLinearDeliveryRecordsOutcomes(t *testing.T) {
	// Project events have no handler yet, so the default path is what runs.
	base := LinearDeliveryInput{DeliveryID: "d1", WorkspaceID: "w1", EventType: "Project", Action: "create",
		EntityID: "i1", KnownType: true, WebhookTimestamp: time.UnixMilli(1_700_000_000_000), ReceivedAt: time.Now()}

	got, err := runDelivery(t, base, nil)
	require.NoError(t, err)
	require.Equal(t, linsync.OutcomeProcessed, got.Outcome)
	require.Equal(t, "i1", got.EntityID)
	require.Equal(t, LinearDeliveryWorkflowID("w1", "d1"), got.WorkflowID)
	require.NotNil(t, got.WebhookTimestamp)

	unknown := base
	unknown.EventType, unknown.KnownType = "AgentSessionEvent", false
	got, err = runDelivery(t, unknown, nil)
	require.NoError(t, err, "unknown types are recorded, not failed")
	require.Equal(t, linsync.OutcomeUnknownType, got.Outcome)
}

func TestLinearDeliveryRoutesToHandler(t *testing.T) {
	t.Parallel()
	routes := map[string]DeliveryHandler{
		"Cycle/remove": func(ctx workflow.Context, in LinearDeliveryInput) (string, string, error) {
			return linsync.OutcomeIgnored, "handled " + in.EntityID, nil
		},
		"Document": func(workflow.Context, LinearDeliveryInput) (string, string, error) {
			return "", "", errors.New("linear said no")
		},
	}
	in := LinearDeliveryInput{DeliveryID: "d2", EventType: "Cycle", Action: "remove", EntityID: "i9", KnownType: true}
	got, err := runDeliveryWith(t, routes, in, nil)
	require.NoError(t, err)
	require.Equal(t, "handled i9", got.Detail)
	require.Equal(t, linsync.OutcomeIgnored, got.Outcome)

	in = LinearDeliveryInput{DeliveryID: "d3", EventType: "Document", Action: "create", KnownType: true}
	got, err = runDeliveryWith(t, routes, in, nil)
	require.Error(t, err, "a failing handler fails the run")
	require.Equal(t, linsync.OutcomeFailed, got.Outcome, "and the failure is recorded first")
	require.Contains(t, got.Detail, "linear said no")
}

// TestLinearDeliveryRecordRetriesUntilTheStoreIsBack: after a 200 nothing may be dropped, so recording the delivery
// retries through an outage (the test environment stops at ten attempts; production has no limit at all).
func TestLinearDeliveryRecordRetriesUntilTheStoreIsBack(t *testing.T) {
	t.Parallel()
	env := newDeliveryEnv()
	var a *activities.Deliveries
	calls := 0
	env.OnActivity(a.RecordDelivery, mock.Anything, mock.Anything).Return(func(context.Context, linsync.Delivery) (bool, error) {
		if calls++; calls < 7 {
			return false, errors.New("connection refused")
		}
		return true, nil
	})
	env.ExecuteWorkflow(LinearDelivery, LinearDeliveryInput{DeliveryID: "d4", EventType: "Project", Action: "create", KnownType: true})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, 7, calls)
}

// TestIngestActivitiesNeverGiveUp: the activities that record acknowledged work have no attempt or time limit and
// a capped backoff.
func TestIngestActivitiesNeverGiveUp(t *testing.T) {
	t.Parallel()
	o := ingestActivityOptions()
	require.Zero(t, o.RetryPolicy.MaximumAttempts, "no attempt limit")
	require.Zero(t, o.ScheduleToCloseTimeout, "no overall deadline")
	require.Positive(t, o.StartToCloseTimeout, "each attempt is bounded")
	require.LessOrEqual(t, o.RetryPolicy.MaximumInterval, time.Minute, "the backoff is capped")
}

// TestDirectDeliveryClaimsItsContent: a delivery started without the inbox first records its body; when another
// delivery brought the body first, it handles nothing and records itself as a duplicate.
func TestDirectDeliveryClaimsItsContent(t *testing.T) {
	t.Parallel()
	handled := 0
	routes := map[string]DeliveryHandler{"Project": func(workflow.Context, LinearDeliveryInput) (string, string, error) {
		handled++
		return linsync.OutcomeProcessed, "", nil
	}}
	run := func(in LinearDeliveryInput, owner string) (linsync.Delivery, int) {
		env := newDeliveryEnv()
		var a *activities.Deliveries
		claims := 0
		env.OnActivity(a.ClaimContent, mock.Anything, mock.Anything).Return(func(_ context.Context, c activities.ContentClaim) (string, error) {
			claims++
			require.Equal(t, in.ContentHash, c.ContentHash)
			require.Equal(t, in.KeepUntil, c.KeepUntil)
			return owner, nil
		})
		var got linsync.Delivery
		env.OnActivity(a.RecordDelivery, mock.Anything, mock.Anything).Return(
			func(_ context.Context, d linsync.Delivery) (bool, error) { got = d; return true, nil })
		env.RegisterWorkflowWithOptions(func(ctx workflow.Context, in LinearDeliveryInput) error {
			return deliver(ctx, in, routes)
		}, workflow.RegisterOptions{Name: TypeLinearDelivery})
		env.ExecuteWorkflow(TypeLinearDelivery, in)
		require.NoError(t, env.GetWorkflowError())
		return got, claims
	}
	in := LinearDeliveryInput{DeliveryID: "d5", WorkspaceID: "w1", EventType: "Project", Action: "create", KnownType: true,
		ContentHash: strings.Repeat("ab", 32), ClaimContent: true, KeepUntil: time.Unix(1_700_000_000, 0).UTC()}
	got, claims := run(in, "d5")
	require.Equal(t, 1, claims)
	require.Equal(t, 1, handled)
	require.Equal(t, linsync.OutcomeProcessed, got.Outcome)

	got, _ = run(in, "d-first")
	require.Equal(t, 1, handled, "a body another delivery brought first is not handled again")
	require.Equal(t, linsync.OutcomeDuplicate, got.Outcome)
	require.Contains(t, got.Detail, "d-first")

	in.ClaimContent = false
	_, claims = run(in, "d-first")
	require.Zero(t, claims, "a delivery from the inbox owns its content already")
	require.Equal(t, 2, handled)
}

// TestDeliveryRoutes: the most specific row wins, and every row of the production table names an event type
// ingress decodes (a misspelt type would never match).
func TestDeliveryRoutes(t *testing.T) {
	t.Parallel()
	var typeWide, specific DeliveryHandler = func(workflow.Context, LinearDeliveryInput) (string, string, error) {
		return "type", "", nil
	}, func(workflow.Context, LinearDeliveryInput) (string, string, error) { return "action", "", nil }
	routes := map[string]DeliveryHandler{"Comment": typeWide, "Comment/create": specific}
	for _, tc := range []struct{ eventType, action, want string }{
		{"Comment", "create", "action"},
		{"Comment", "remove", "type"},
		{"Issue", "create", ""},
	} {
		h := route(routes, tc.eventType, tc.action)
		got := ""
		if h != nil {
			got, _, _ = h(nil, LinearDeliveryInput{})
		}
		require.Equal(t, tc.want, got, "%s/%s", tc.eventType, tc.action)
	}
	decoded := []string{linear.TypeIssue, linear.TypeComment, linear.TypeIssueLabel, linear.TypeReaction,
		linear.TypeProject, linear.TypeProjectUpdate, linear.TypeCycle, linear.TypeAttachment, linear.TypeDocument,
		linear.TypeUser, linear.TypeCustomer, linear.TypeIssueSLA, linear.TypeOAuthApp}
	for key := range deliveryRoutes() {
		eventType, _, _ := strings.Cut(key, "/")
		require.Contains(t, decoded, eventType, "route %q names an event type ingress does not decode", key)
	}
}
