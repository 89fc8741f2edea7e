package linear_test

import (
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/linsync/linsync/linear"
	"github.com/linsync/linsync/linear/lineartest"
)

// startFake returns a seeded fake Linear and a client using its API key.
func startFake(tb testing.TB, opts linear.Options) (*lineartest.Server, lineartest.Seeded, *linear.Client) {
	tb.Helper()
	srv := lineartest.Start(tb, lineartest.Options{})
	sd := srv.Seed()
	opts.Endpoint = srv.URL()
	if opts.Credential == (linear.Credential{}) {
		opts.Credential = linear.Credential{APIKey: sd.APIKey}
	}
	c, err := linear.New(opts)
	require.NoError(tb, err)
	return srv, sd, c
}

// lastInput returns the $input variable of the last request named op, as decoded from the wire.
func lastInput(tb testing.TB, srv *lineartest.Server, op string) map[string]any {
	tb.Helper()
	var in map[string]any
	for _, r := range srv.Requests() {
		if r.OperationName == op {
			in, _ = r.Variables["input"].(map[string]any)
		}
	}
	require.NotNil(tb, in, "no %s request", op)
	return in
}

func TestIssueUpdateOmitsUnsetFieldsAndClearsOnPurpose(t *testing.T) {
	t.Parallel()
	srv, sd, c := startFake(t, linear.Options{})
	ctx := t.Context()

	created, err := linear.IssueCreate(ctx, c.GQL(), linear.IssueCreateInput{
		ID: uuid.NewString(), TeamID: sd.Plain.ID, Title: "Broken link", AssigneeID: sd.Alice.ID, Priority: 2,
	})
	require.NoError(t, err)
	id := created.IssueCreate.Issue.Id
	require.Equal(t, map[string]any{"id": id, "teamId": sd.Plain.ID, "title": "Broken link", "assigneeId": sd.Alice.ID,
		"priority": float64(2)}, lastInput(t, srv, "IssueCreate"))

	// Only the title goes on the wire: assignee and priority stay as they were.
	_, err = linear.IssueUpdate(ctx, c.GQL(), id, linear.IssueUpdateInput{Title: linear.Value("Broken link (2)")})
	require.NoError(t, err)
	require.Equal(t, map[string]any{"title": "Broken link (2)"}, lastInput(t, srv, "IssueUpdate"))
	got, err := linear.Issue(ctx, c.GQL(), id)
	require.NoError(t, err)
	require.NotNil(t, got.Issue.Assignee)
	require.Equal(t, sd.Alice.ID, got.Issue.Assignee.Id)
	require.InDelta(t, 2, got.Issue.Priority, 0)

	// Unassigning is explicit: assigneeId is sent as null.
	_, err = linear.IssueUpdate(ctx, c.GQL(), id, linear.IssueUpdateInput{AssigneeID: linear.Clear[string]()})
	require.NoError(t, err)
	in := lastInput(t, srv, "IssueUpdate")
	require.Contains(t, in, "assigneeId")
	require.Nil(t, in["assigneeId"])
	require.Len(t, in, 1)
	got, err = linear.Issue(ctx, c.GQL(), id)
	require.NoError(t, err)
	require.Nil(t, got.Issue.Assignee)
	require.Equal(t, "Broken link (2)", got.Issue.Title)
}

func TestOptionalJSON(t *testing.T) {
	t.Parallel()
	b, err := json.Marshal(linear.IssueUpdateInput{Priority: linear.Value(0), DueDate: linear.Clear[string]()})
	require.NoError(t, err)
	require.JSONEq(t, `{"priority":0,"dueDate":null}`, string(b))
	var back linear.IssueUpdateInput
	require.NoError(t, json.Unmarshal(b, &back))
	p, ok := back.Priority.Get()
	require.True(t, ok)
	require.Zero(t, p)
	require.True(t, back.DueDate.IsNull())
	require.True(t, back.Title.IsZero())
}

func TestCachedLookupsCutRequests(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	metrics, err := linear.NewMetrics(reg)
	require.NoError(t, err)
	srv, sd, c := startFake(t, linear.Options{Metrics: metrics, Name: "ws1"})
	ctx := t.Context()

	for range 3 {
		team, err := c.Team(ctx, sd.Triage.ID)
		require.NoError(t, err)
		require.True(t, team.TriageEnabled)
		st, err := c.State(ctx, sd.Triage.ID, "triage")
		require.NoError(t, err)
		require.Equal(t, sd.Triage.States["triage"], st.Id)
		ids, err := c.LabelIDs(ctx, sd.Triage.ID, []string{"bug", "Customer"})
		require.NoError(t, err)
		require.Equal(t, []string{sd.Labels["Bug"], sd.Triage.Labels["Customer"]}, ids)
		u, err := c.UserByEmail(ctx, "ALICE@example.com")
		require.NoError(t, err)
		require.Equal(t, sd.Alice.ID, u.Id)
		none, err := c.UserByEmail(ctx, "nobody@example.com")
		require.NoError(t, err)
		require.Nil(t, none)
	}
	require.Equal(t, 1, srv.CountRequests("TeamDetails"))
	require.Equal(t, 2, srv.CountRequests("UsersByEmail"))
	require.Equal(t, 3, srv.CountRequests(""))
	n, err := testutil.GatherAndCount(reg, "linsync_linear_cache_lookups_total", "linsync_linear_ratelimit_remaining")
	require.NoError(t, err)
	require.Positive(t, n)

	// A team without triage has no triage state, even after the refresh a miss triggers.
	_, err = c.State(ctx, sd.Plain.ID, "triage")
	require.Equal(t, linear.ClassNotFound, linear.ClassOf(err))
	require.Equal(t, 3, srv.CountRequests("TeamDetails"), "Plain's first look-up, then one refresh on the miss")
}

func TestClientAuthorization(t *testing.T) {
	t.Parallel()
	_, sd, key := startFake(t, linear.Options{})
	v, err := key.Viewer(t.Context())
	require.NoError(t, err)
	require.Equal(t, sd.Bot.ID, v.Id)

	_, _, oauth := startFake(t, linear.Options{Credential: linear.Credential{AccessToken: sd.OAuthToken}})
	v, err = oauth.Viewer(t.Context())
	require.NoError(t, err)
	require.Equal(t, sd.Bot.ID, v.Id)

	// An API key sent as a Bearer token is not what Linear accepts.
	_, _, wrong := startFake(t, linear.Options{Credential: linear.Credential{AccessToken: sd.APIKey}})
	_, err = wrong.Viewer(t.Context())
	require.Equal(t, linear.ClassUnauthorized, linear.ClassOf(err))
	require.Equal(t, "Bearer tok", linear.Credential{AccessToken: "tok"}.Authorization())
	require.Equal(t, "lin_api_x", linear.Credential{APIKey: "lin_api_x"}.Authorization())
}

func TestClientChosenIDConflict(t *testing.T) {
	t.Parallel()
	_, sd, c := startFake(t, linear.Options{})
	ctx := t.Context()
	in := linear.IssueCreateInput{ID: uuid.NewString(), TeamID: sd.Triage.ID, Title: "Question", StateID: sd.Triage.States["triage"]}
	_, err := linear.IssueCreate(ctx, c.GQL(), in)
	require.NoError(t, err)
	_, err = linear.IssueCreate(ctx, c.GQL(), in)
	require.True(t, linear.IsConflict(err), "%v", err)

	cin := linear.CommentCreateInput{ID: uuid.NewString(), IssueID: in.ID, Body: "reply"}
	_, err = linear.CommentCreate(ctx, c.GQL(), cin)
	require.NoError(t, err)
	_, err = linear.CommentCreate(ctx, c.GQL(), cin)
	require.True(t, linear.IsConflict(err), "%v", err)
	got, err := linear.Comment(ctx, c.GQL(), cin.ID)
	require.NoError(t, err)
	require.Equal(t, "reply", got.Comment.Body)

	_, err = linear.Issue(ctx, c.GQL(), uuid.NewString())
	require.Equal(t, linear.ClassNotFound, linear.ClassOf(err), "%v", err)
}

func TestLabelIDsCreatesMissingLabelOnce(t *testing.T) {
	t.Parallel()
	srv, sd, c := startFake(t, linear.Options{})
	ids, err := c.LabelIDs(t.Context(), sd.Plain.ID, []string{"paid", "Bug"})
	require.NoError(t, err)
	require.Equal(t, []string{linear.LabelID(sd.Plain.ID, "paid"), sd.Labels["Bug"]}, ids)
	require.Equal(t, 1, srv.CountRequests("IssueLabelCreate"))

	// Another worker with a cold cache converges on the same label.
	other, err := linear.New(linear.Options{Endpoint: srv.URL(), Credential: linear.Credential{APIKey: sd.APIKey}})
	require.NoError(t, err)
	again, err := other.LabelIDs(t.Context(), sd.Plain.ID, []string{"Paid"})
	require.NoError(t, err)
	require.Equal(t, ids[:1], again)
	require.Equal(t, 1, srv.CountRequests("IssueLabelCreate"))
}

func TestRateLimitedRequestsWaitForRetryAfter(t *testing.T) {
	t.Parallel()
	for _, status := range []int{http.StatusBadRequest, http.StatusTooManyRequests} {
		srv, _, c := startFake(t, linear.Options{MaxPause: 10 * time.Millisecond})
		srv.InjectRateLimit(lineartest.RateLimit{Status: status, RetryAfter: 3 * time.Second})
		start := time.Now()
		_, err := linear.Viewer(t.Context(), c.GQL())
		e := linear.Classify(err)
		require.Equal(t, linear.ClassRateLimited, e.Class, "%v", err)
		require.WithinDuration(t, start.Add(3*time.Second), e.RetryAt, 1100*time.Millisecond)

		// The next call is refused locally: nothing reaches Linear before the allowed time.
		_, err = linear.Viewer(t.Context(), c.GQL())
		require.Equal(t, linear.ClassRateLimited, linear.ClassOf(err))
		require.Equal(t, 1, srv.CountRequests(""))
	}
}

func TestRateBudgetSlowsDownBeforeTheLimit(t *testing.T) {
	t.Parallel()
	srv := lineartest.Start(t, lineartest.Options{RequestsPerHour: 20})
	sd := srv.Seed()
	c, err := linear.New(linear.Options{Endpoint: srv.URL(), Credential: linear.Credential{APIKey: sd.APIKey},
		SlowBelow: 0.5, MaxPause: time.Millisecond})
	require.NoError(t, err)
	var refused error
	for range 20 {
		if _, refused = linear.Organization(t.Context(), c.GQL()); refused != nil {
			break
		}
	}
	// Half the hour's quota left means pacing over the rest of the hour: far beyond MaxPause, so refused locally.
	e := linear.Classify(refused)
	require.NotNil(t, e)
	require.Equal(t, linear.ClassRateLimited, e.Class)
	require.Zero(t, e.StatusCode, "refused before sending")
	require.Less(t, srv.CountRequests(""), 20)
	require.NotEmpty(t, c.RateBudget())
	require.Equal(t, "20", c.LastResponseHeader().Get(linear.HeaderRequestsLimit))
}

// TestConcurrentCacheMissesShareOneLookup: callers that miss the cache at the same moment share one request per key
// (team details, users by email, the creation of a missing label) instead of each asking Linear.
func TestConcurrentCacheMissesShareOneLookup(t *testing.T) {
	t.Parallel()
	srv, sd, c := startFake(t, linear.Options{})
	// Slow answers, so the callers' misses overlap as they do in an event burst.
	srv.SetLatency(200 * time.Millisecond)
	const callers = 8
	var wg sync.WaitGroup
	errs := make(chan error, 3*callers)
	for range callers {
		wg.Go(func() {
			_, err := c.Team(t.Context(), sd.Triage.ID)
			errs <- err
		})
		wg.Go(func() {
			_, err := c.UserByEmail(t.Context(), sd.Alice.Email)
			errs <- err
		})
		wg.Go(func() {
			_, err := c.LabelIDs(t.Context(), sd.Plain.ID, []string{"storm"})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	// Triage: one look-up. Plain: one look-up, then one refresh on the label's miss, then one create.
	require.Equal(t, 1+2, srv.CountRequests("TeamDetails"), "one look-up per team, one refresh on the label's miss")
	require.Equal(t, 1, srv.CountRequests("UsersByEmail"))
	require.Equal(t, 1, srv.CountRequests("IssueLabelCreate"))
}
