package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/activities"
	"github.com/linsync/linsync/api"
	"github.com/linsync/linsync/linear"
	"github.com/linsync/linsync/linear/lineartest"
	"github.com/linsync/linsync/workflows"
)

// fHarness is the whole stack as production runs it, for failure handling: real Postgres, the Temporal dev server,
// the API, one worker with every capability's activities and the dead letters (which turns the dead-letter
// interceptor on), and the fake Linear connected by API key (stack.apiKey), whose webhooks come back to the API.
type fHarness struct {
	*stack
	wire  *wireLog // every request the activities sent to Linear, and its answer
	admin string
	token string // questions:write and events:write
}

// fOptions bend the harness: a connection whose API key Linear refuses with 403 (its user lost access) until
// h.fake.AllowKey, and the API's config. (A key Linear does not know at all pauses the work instead: reconnect_test.go.)
type fOptions struct {
	forbiddenKey bool
	cfg          api.Config
}

func newFailureHarness(t *testing.T, o fOptions) *fHarness {
	t.Helper()
	cfg := o.cfg
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = 5 * time.Second
	}
	conn := &stackConnection{orgName: "Fake", labels: []string{"Customer"}}
	if o.forbiddenKey {
		// A key whose user lost access in Linear: every request is forbidden, which no retry can fix.
		conn.apiKey = "lin_api_noaccess00000000000000000000000" + uuid.NewString()[:8]
	}
	wire := &wireLog{}
	s := newStack(t, stackOptions{cfg: cfg, linearTransport: wire, worker: everyCapability,
		workspace: "ops", workspaceName: "Ops", webhook: webhookStored, connect: conn,
		tokens: []stackToken{{"ops-admin", []string{linsync.ScopeAdmin}},
			{"app", []string{linsync.ScopeQuestionsWrite, linsync.ScopeEventsWrite}}}, deliver: true})
	if o.forbiddenKey {
		require.NoError(t, s.fake.AddAPIKey(s.sd.Bot.Email, s.apiKey))
		s.fake.ForbidKey(s.apiKey)
	}
	return &fHarness{stack: s, wire: wire, admin: s.tokens["ops-admin"], token: s.tokens["app"]}
}

// call sends a /v1 request through the OpenAPI-validating client and decodes the JSON answer.
func (h *fHarness) call(method, path, token string, body any) (int, map[string]any) {
	h.t.Helper()
	resp, raw := h.request(h.client, method, "/v1/workspaces/"+h.ws+path, body,
		"Authorization", "Bearer "+token, "Content-Type", "application/json")
	var out map[string]any
	require.NoError(h.t, json.Unmarshal(raw, &out), "answer: %s", raw)
	return resp.StatusCode, out
}

// fakeIssues returns the fake Linear's issues.
func (h *fHarness) fakeIssues() []map[string]any {
	h.t.Helper()
	resp, err := http.Get(h.fake.BaseURL() + "/_fake/state")
	require.NoError(h.t, err)
	defer resp.Body.Close()
	var st struct {
		Issues []map[string]any `json:"issues"`
	}
	require.NoError(h.t, json.NewDecoder(resp.Body).Decode(&st))
	return st.Issues
}

// deadLetters lists the workspace's failed events through the API.
func (h *fHarness) deadLetters(query string) []map[string]any {
	h.t.Helper()
	code, out := h.call(http.MethodGet, "/failed-events"+query, h.admin, nil)
	require.Equal(h.t, http.StatusOK, code, "%v", out)
	var ds []map[string]any
	for _, d := range out["failed_events"].([]any) {
		ds = append(ds, d.(map[string]any))
	}
	return ds
}

// waitDeadLetters waits until the workspace has n failed events of kind.
func (h *fHarness) waitDeadLetters(kind string, n int) []map[string]any {
	h.t.Helper()
	var ds []map[string]any
	require.Eventually(h.t, func() bool {
		ds = h.deadLetters("?kind=" + kind)
		return len(ds) >= n
	}, 30*time.Second, 100*time.Millisecond, "%d dead letters of %s", n, kind)
	require.Len(h.t, ds, n)
	return ds
}

// runStatus is the Temporal status of a workflow's latest run.
func (h *fHarness) runStatus(workflowID string) (enumspb.WorkflowExecutionStatus, string) {
	h.t.Helper()
	desc, err := h.temporal.DescribeWorkflowExecution(h.t.Context(), workflowID, "")
	require.NoError(h.t, err)
	info := desc.GetWorkflowExecutionInfo()
	return info.GetStatus(), info.GetExecution().GetRunId()
}

// rateLimitStorm is one injected storm: n requests refused in one Linear style, retry allowed after wait.
type rateLimitStorm struct {
	status int
	wait   time.Duration
	n      int
}

// TestRateLimitStormDuringQuestionBurst creates 20 questions at once while the fake Linear refuses requests as
// rate limited in both of Linear's styles (HTTP 400 + RATELIMITED + X-RateLimit-Requests-Reset, and HTTP 429 +
// Retry-After). Every question lands in Linear exactly once; the fake's request log shows that no request of the
// limited credential reached Linear before the allowed time, that every refused create was retried only after
// it, and that the retry delays are jittered.
func TestRateLimitStormDuringQuestionBurst(t *testing.T) {
	t.Parallel()
	h := newFailureHarness(t, fOptions{})
	const questions = 20
	h.warmLookups()

	storms := []rateLimitStorm{{http.StatusBadRequest, time.Second, 4}, {http.StatusTooManyRequests, 2 * time.Second, 4}}
	for _, s := range storms {
		h.fake.InjectRateLimit(lineartest.RateLimit{Requests: s.n, Status: s.status, RetryAfter: s.wait})
	}
	start := time.Now()
	ids := h.createQuestionsAtOnce(questions)

	issueOfQuestion := map[string]string{}
	require.Eventually(t, func() bool {
		for _, id := range ids {
			if issueOfQuestion[id] != "" {
				continue
			}
			code, out := h.call(http.MethodGet, "/questions/"+id, h.token, nil)
			require.Equal(t, http.StatusOK, code)
			q := out["question"].(map[string]any)
			require.NotEqual(t, "failed", q["sync"].(map[string]any)["state"], "question %s gave up: %v", id, q["sync"])
			if q["sync"].(map[string]any)["state"] == "synced" {
				issueOfQuestion[id] = q["linear"].(map[string]any)["issue_id"].(string)
			}
		}
		return len(issueOfQuestion) == questions
	}, 30*time.Second, 200*time.Millisecond, "every question synced despite the storm")
	t.Logf("%d questions synced through the storm in %v", questions, time.Since(start))

	// Exactly once: one issue per question, no other issue, and one successful issueCreate per issue.
	issues := h.fakeIssues()
	require.Len(t, issues, questions, "one issue per question, no duplicates")
	inFake := map[string]bool{}
	for _, is := range issues {
		inFake[is["id"].(string)] = true
	}
	for id, issueID := range issueOfQuestion {
		require.True(t, inFake[issueID], "question %s's issue %s is in Linear", id, issueID)
	}

	reqs := h.fake.Requests()
	limited := map[int]time.Duration{}
	for _, s := range storms {
		limited[s.status] = s.wait
	}
	created := map[string]int{}
	var refused []lineartest.Request
	for _, r := range reqs {
		if r.OperationName == "IssueCreate" && r.Status == http.StatusOK {
			created[createdID(r)]++
		}
		if r.Fault == "ratelimited" {
			refused = append(refused, r)
		}
	}
	for id, n := range created {
		require.Equal(t, 1, n, "issue %s created once", id)
	}
	require.Len(t, refused, 8, "both storms were spent on the burst")
	seenStatus := map[int]int{}
	for _, r := range refused {
		seenStatus[r.Status]++
	}
	require.Equal(t, map[int]int{http.StatusBadRequest: 4, http.StatusTooManyRequests: 4}, seenStatus, "both Linear styles")

	// Nothing early, judged where it matters, in linsync's own client: once a rate-limit answer has come back, no
	// request of that credential leaves linsync before the allowed time. (Requests already on the wire when
	// Linear refused another could not have known; under load they can reach the fake long after the refusal, so
	// the client's send times are what is checked, not the fake's arrival times.)
	const clockSlack = 2 * time.Millisecond // the reset header is in whole milliseconds
	const handoff = 50 * time.Millisecond   // a request past the budget check when the answer landed (scheduling)
	var delays []time.Duration
	sent, answers := h.wire.snapshot()
	for _, r := range refused {
		allowed := r.Time.Add(limited[r.Status] - clockSlack)
		back := slices.IndexFunc(answers, func(a time.Time) bool { return !a.Before(r.Time) })
		require.GreaterOrEqual(t, back, 0, "the client saw the refusal of %s", r.Time)
		for _, at := range sent {
			if at.After(answers[back].Add(handoff)) && at.Before(allowed) {
				t.Errorf("a request left linsync at %s, %v after a rate-limit answer that allowed requests only after %v",
					at.Format(time.StampMilli), at.Sub(answers[back]), limited[r.Status])
			}
		}
		if r.OperationName != "IssueCreate" {
			continue
		}
		id := createdID(r)
		next := slices.IndexFunc(reqs, func(o lineartest.Request) bool {
			return o.OperationName == "IssueCreate" && o.Time.After(r.Time) && createdID(o) == id
		})
		require.GreaterOrEqual(t, next, 0, "refused create of %s was retried", id)
		d := reqs[next].Time.Sub(r.Time)
		require.GreaterOrEqual(t, d, limited[r.Status]-clockSlack, "create of %s retried %v after a %v rate limit", id, d, limited[r.Status])
		delays = append(delays, d)
	}
	t.Logf("retry delays after a refused create: %v", delays)
	require.GreaterOrEqual(t, len(delays), 2, "the storm refused creates, not only look-ups")
	require.Greater(t, slices.Max(delays)-slices.Min(delays), 100*time.Millisecond, "retries are jittered, not in lockstep")
}

// TestRateLimitStormNeverDeadLettersUnsentWork: 20 questions created at once while Linear refuses the next 5
// requests as rate limited, the reset 5 s later, in each of Linear's styles. Refusals by linsync's own rate budget
// (nothing sent) spend none of LINSYNC_LINEAR_MAX_ATTEMPTS, and no retry runs before the reset: 20 issues, once
// each, and no dead letter. Judged at the fake: no request that left linsync after it had seen a refusal arrived
// before that refusal's reset.
func TestRateLimitStormNeverDeadLettersUnsentWork(t *testing.T) {
	t.Parallel()
	for _, status := range []int{http.StatusBadRequest, http.StatusTooManyRequests} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			t.Parallel()
			const questions, refusals, reset = 20, 5, 5 * time.Second
			h := newFailureHarness(t, fOptions{})
			h.warmLookups()

			h.fake.InjectRateLimit(lineartest.RateLimit{Requests: refusals, Status: status, RetryAfter: reset})
			ids := h.createQuestionsAtOnce(questions)
			synced := map[string]bool{}
			require.Eventually(t, func() bool {
				for _, id := range ids {
					if synced[id] {
						continue
					}
					_, out := h.call(http.MethodGet, "/questions/"+id, h.token, nil)
					sync := out["question"].(map[string]any)["sync"].(map[string]any)
					require.NotEqual(t, "failed", sync["state"], "question %s gave up: %v", id, sync)
					synced[id] = sync["state"] == "synced"
				}
				return len(h.deadLetters("")) == 0 && countTrue(synced) == questions
			}, 90*time.Second, 250*time.Millisecond, "every question synced through the storm")
			require.Len(t, h.fakeIssues(), questions, "one issue per question")
			require.Empty(t, h.deadLetters(""), "no dead letter for work that was never refused by Linear for good")

			reqs := h.fake.Requests()
			var refused []lineartest.Request
			created := map[string]int{}
			for _, r := range reqs {
				if r.Fault == "ratelimited" {
					refused = append(refused, r)
				}
				if r.OperationName == "IssueCreate" && r.Status == http.StatusOK {
					created[createdID(r)]++
				}
			}
			require.Len(t, refused, refusals)
			for id, n := range created {
				require.Equal(t, 1, n, "issue %s created once", id)
			}
			// At the fake: a request that arrived before a refusal's reset was already on its way when linsync
			// learned of the refusal (its send stamp is before the first rate-limit answer reached linsync).
			_, answers := h.wire.snapshot()
			require.NotEmpty(t, answers)
			const clockSlack = 2 * time.Millisecond
			for _, r := range refused {
				allowed := r.Time.Add(reset - clockSlack)
				for _, o := range reqs {
					if o.Fault != "" || !o.Time.After(r.Time) || !o.Time.Before(allowed) {
						continue
					}
					require.False(t, o.SentAt.IsZero(), "the request carries its send stamp")
					require.True(t, o.SentAt.Before(answers[0]), "%s arrived %v after a refusal, before its reset, and left linsync %v after linsync had seen a refusal",
						o.OperationName, o.Time.Sub(r.Time), o.SentAt.Sub(answers[0]))
				}
			}
		})
	}
}

func countTrue(m map[string]bool) int {
	n := 0
	for _, v := range m {
		if v {
			n++
		}
	}
	return n
}

// warmLookups fills the client's look-up caches (team, labels, states) so that a burst is creates and a storm hits
// issueCreate itself; the fake's request log starts afresh.
func (h *fHarness) warmLookups() {
	h.t.Helper()
	lc, _, err := h.clients.For(h.t.Context(), h.wsID)
	require.NoError(h.t, err)
	_, err = lc.LabelIDs(h.t.Context(), h.sd.Triage.ID, []string{"Customer"})
	require.NoError(h.t, err)
	_, err = lc.State(h.t.Context(), h.sd.Triage.ID, "triage")
	require.NoError(h.t, err)
	h.fake.ResetRequests()
}

// createQuestionsAtOnce creates n questions concurrently through the API and returns their ids.
func (h *fHarness) createQuestionsAtOnce(n int) []string {
	h.t.Helper()
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			code, out := h.call(http.MethodPost, "/questions", h.token, map[string]any{
				"title": fmt.Sprintf("Storm question %02d", i), "asker_email": "carol@example.com",
				"external_id": fmt.Sprintf("storm-%02d", i)})
			if code == http.StatusCreated {
				ids[i] = out["question"].(map[string]any)["id"].(string)
			}
		})
	}
	wg.Wait()
	for i, id := range ids {
		require.NotEmpty(h.t, id, "question %d was created", i)
	}
	return ids
}

// createdID is the client-chosen issue id an IssueCreate request carried.
func createdID(r lineartest.Request) string {
	in, _ := r.Variables["input"].(map[string]any)
	id, _ := in["id"].(string)
	return id
}

// postEvent submits one event and requires it accepted.
func (h *fHarness) postEvent(ev map[string]any) string {
	h.t.Helper()
	code, out := h.call(http.MethodPost, "/events", h.token, ev)
	require.Equal(h.t, http.StatusAccepted, code, "%v", out)
	return out["workflow_id"].(string)
}

// waitExists waits for a workflow to exist: the answer came once the work was in the inbox, and its workflow starts
// right after.
func (h *fHarness) waitExists(workflowID string) {
	h.t.Helper()
	require.Eventually(h.t, func() bool {
		_, err := h.temporal.DescribeWorkflowExecution(h.t.Context(), workflowID, "")
		return err == nil
	}, 30*time.Second, 20*time.Millisecond, "%s never started", workflowID)
}

// waitFailed waits until the workflow's latest run ended and requires it Failed; it returns the run id.
func (h *fHarness) waitFailed(workflowID string) string {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(h.t.Context(), 30*time.Second)
	defer cancel()
	h.waitExists(workflowID)
	_ = h.temporal.GetWorkflow(ctx, workflowID, "").Get(ctx, nil)
	st, run := h.runStatus(workflowID)
	require.Equal(h.t, enumspb.WORKFLOW_EXECUTION_STATUS_FAILED, st, "the run ends Failed, visible in the Temporal UI")
	return run
}

// replay replays one dead letter through the API and returns the result.
func (h *fHarness) replay(id string) map[string]any {
	h.t.Helper()
	code, out := h.call(http.MethodPost, "/failed-events/"+id+"/replay", h.admin, nil)
	require.Equal(h.t, http.StatusOK, code, "%v", out)
	return out["result"].(map[string]any)
}

// dryRun asks what replaying one dead letter would do.
func (h *fHarness) dryRun(id string) map[string]any {
	h.t.Helper()
	code, out := h.call(http.MethodPost, "/failed-events/"+id+"/replay?dry_run=true", h.admin, nil)
	require.Equal(h.t, http.StatusOK, code, "%v", out)
	require.Equal(h.t, true, out["dry_run"])
	plan := out["plan"].([]any)
	require.Len(h.t, plan, 1)
	return plan[0].(map[string]any)
}

func takeoverEvent(key, domain string) map[string]any {
	return map[string]any{"id": key, "event": "domain.takeover_detected", "domain": domain,
		"dangling_record": "CNAME " + domain + " -> old-bucket.s3.amazonaws.com", "detected_at": time.Now().UTC().Format(time.RFC3339),
		"affected_short_urls": []string{"https://" + domain + "/" + key}}
}

// TestPermanentFilingFailureDeadLetterAndReplay: Linear forbids linsync's credential everything (its user lost
// access), which no retry can fix. The event's run fails at once: exactly one dead letter, a Failed run in
// Temporal, nothing in Linear. Once the credential works again, the replay files the issue exactly once, and a
// second replay changes nothing.
func TestPermanentFilingFailureDeadLetterAndReplay(t *testing.T) {
	t.Parallel()
	h := newFailureHarness(t, fOptions{forbiddenKey: true})
	wf := h.postEvent(takeoverEvent("tk-1", "go.example.com"))
	failedRun := h.waitFailed(wf)

	ds := h.waitDeadLetters(workflows.TypeFileEvent, 1)
	require.Len(t, h.deadLetters(""), 1, "exactly one dead letter in the workspace")
	dl := ds[0]
	require.Equal(t, wf, dl["workflow_id"])
	require.Equal(t, failedRun, dl["run_id"])
	require.Equal(t, activities.ErrTypeLinearForbidden, dl["error_class"])
	require.EqualValues(t, 1, dl["attempts"], "non-retryable: one attempt, no retries")
	require.Equal(t, "open", dl["status"])
	require.Contains(t, dl["temporal_ui_url"], failedRun)
	require.Empty(t, h.fakeIssues(), "nothing reached Linear")
	require.Zero(t, h.fake.CountRequests("IssueCreate"))
	// Resubmitting is not how an operator repairs it; but neither does the failed run count as handled.
	code, out := h.call(http.MethodGet, "/failed-events/"+dl["id"].(string), h.admin, nil)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, dl["id"], out["id"])

	// The fault is cleared: Linear accepts the credential again.
	h.fake.AllowKey(h.apiKey)
	plan := h.dryRun(dl["id"].(string))
	require.Equal(t, true, plan["would_replay"])
	require.Contains(t, plan["reason"], "has not reached Linear yet", "the failed run recorded the event before Linear refused it")
	require.Equal(t, map[string]any{"issue": "issueCreate", "team": h.sd.Triage.ID, "priority": 1.0, "labels": []any{"Customer"},
		"entries": 1.0}, writesOf(t, plan), "field by field, what the replay writes to Linear")
	require.Empty(t, plan["since_failure"])
	require.Empty(t, h.fakeIssues(), "a dry run changes nothing")

	res := h.replay(dl["id"].(string))
	require.Equal(t, activities.ReplayStarted, res["outcome"])
	require.NotEqual(t, failedRun, res["run_id"], "the replay is a new run, linked from the dead letter")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	require.NoError(t, h.temporal.GetWorkflow(ctx, wf, res["run_id"].(string)).Get(ctx, nil))
	issues := h.fakeIssues()
	require.Len(t, issues, 1, "the effect happened")
	require.Contains(t, issues[0]["title"], "go.example.com")
	require.Equal(t, 1, h.fake.CountRequests("IssueCreate"), "exactly once")
	got := h.deadLetters("")
	require.Len(t, got, 1)
	require.Equal(t, "replayed", got[0]["status"])
	require.Equal(t, res["run_id"], got[0]["replay_run_id"])

	// Replaying again starts nothing and files nothing.
	again := h.replay(dl["id"].(string))
	require.Equal(t, activities.ReplayAlreadyCompleted, again["outcome"])
	require.Equal(t, res["run_id"], again["run_id"])
	time.Sleep(500 * time.Millisecond)
	require.Len(t, h.fakeIssues(), 1)
	require.Equal(t, 1, h.fake.CountRequests("IssueCreate"))
	st, _ := h.runStatus(wf)
	require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED, st)
	// A resubmission of the event is a duplicate now.
	code, out = h.call(http.MethodPost, "/events", h.token, takeoverEvent("tk-1", "go.example.com"))
	require.Equal(t, http.StatusOK, code, "%v", out)
	require.Equal(t, "duplicate", out["status"])
}

// TestDryRunOnStaleDeadLetter: an event's filing failed for good; meanwhile a newer event for the same domain
// filed the issue. The dead letter is now older than the issue: the dry run says the replay would not overwrite
// the newer data (and would change nothing in Linear), and the dry run itself changes nothing.
func TestDryRunOnStaleDeadLetter(t *testing.T) {
	t.Parallel()
	h := newFailureHarness(t, fOptions{forbiddenKey: true})
	wf := h.postEvent(takeoverEvent("old-1", "cdn.example.com"))
	failedRun := h.waitFailed(wf)
	dl := h.waitDeadLetters(workflows.TypeFileEvent, 1)[0]

	h.fake.AllowKey(h.apiKey)
	newer := h.postEvent(takeoverEvent("new-2", "cdn.example.com"))
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	h.waitExists(newer)
	require.NoError(t, h.temporal.GetWorkflow(ctx, newer, "").Get(ctx, nil))
	issues := h.fakeIssues()
	require.Len(t, issues, 1)
	before := issues[0]
	requestsBefore := h.fake.CountRequests("")
	writesBefore := h.fake.CountRequests("IssueCreate") + h.fake.CountRequests("IssueUpdate")

	plan := h.dryRun(dl["id"].(string))
	t.Logf("dry run: %s", plan["reason"])
	reason := plan["reason"].(string)
	require.Contains(t, reason, "newer than this payload")
	require.Contains(t, reason, "does not overwrite newer data")
	require.Contains(t, reason, "changes nothing in Linear")
	require.Contains(t, reason, before["identifier"], "names the issue in Linear")
	require.Empty(t, plan["writes"], "field by field: nothing to write")
	since := sinceOf(t, plan)
	require.Equal(t, 2.0, since["entries"]["now"], "the newer event's filing, after the failure")
	require.Equal(t, "linsync", since["entries"]["by"])
	require.Equal(t, before["identifier"], since["issue"]["now"])
	require.Equal(t, "Linear", since["issue"]["by"])
	require.NotContains(t, since, "title")

	// The dry run changed nothing: same run, dead letter open, Linear untouched (one read, no write).
	st, run := h.runStatus(wf)
	require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_FAILED, st)
	require.Equal(t, failedRun, run)
	got := h.deadLetters("")
	require.Len(t, got, 1)
	require.Equal(t, "open", got[0]["status"])
	require.Equal(t, requestsBefore+1, h.fake.CountRequests(""), "the dry run read the issue from Linear")
	require.Equal(t, writesBefore, h.fake.CountRequests("IssueCreate")+h.fake.CountRequests("IssueUpdate"))
	after := h.fakeIssues()
	require.Len(t, after, 1)
	require.Equal(t, before["updatedAt"], after[0]["updatedAt"])
	require.Equal(t, before["description"], after[0]["description"])

	// A human retitles the issue in Linear: the dry run shows it among the changes since the failure.
	require.NoError(t, h.fake.Human(h.sd.Alice.Email).SetTitle(before["identifier"].(string), "CDN takeover, handled by infra"))
	since = sinceOf(t, h.dryRun(dl["id"].(string)))
	require.Equal(t, "CDN takeover, handled by infra", since["title"]["now"])
	require.Equal(t, "Linear", since["title"]["by"])
}

// writesOf returns a dry-run plan's writes as field → value written.
func writesOf(t *testing.T, plan map[string]any) map[string]any {
	t.Helper()
	out := map[string]any{}
	for _, w := range plan["writes"].([]any) {
		m := w.(map[string]any)
		out[m["field"].(string)] = m["after"]
	}
	return out
}

// sinceOf returns a dry-run plan's changes since the failure by field.
func sinceOf(t *testing.T, plan map[string]any) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, c := range plan["since_failure"].([]any) {
		m := c.(map[string]any)
		out[m["field"].(string)] = m
	}
	return out
}

// wireLog is the Linear client's transport in the failure tests: it notes when each request left linsync and when
// each rate-limit answer came back, in linsync's own view.
type wireLog struct {
	mu      sync.Mutex
	sent    []time.Time
	answers []time.Time
}

func (w *wireLog) RoundTrip(req *http.Request) (*http.Response, error) {
	now := time.Now()
	w.mu.Lock()
	w.sent = append(w.sent, now)
	w.mu.Unlock()
	req = req.Clone(req.Context())
	req.Header.Set(lineartest.HeaderSentAt, now.Format(time.RFC3339Nano))
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	body, rerr := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if rerr == nil && (resp.StatusCode == http.StatusTooManyRequests || bytes.Contains(body, []byte("RATELIMITED"))) {
		w.mu.Lock()
		w.answers = append(w.answers, time.Now())
		w.mu.Unlock()
	}
	return resp, rerr
}

func (w *wireLog) snapshot() (sent, answers []time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	sent, answers = slices.Clone(w.sent), slices.Clone(w.answers)
	slices.SortFunc(answers, func(a, b time.Time) int { return a.Compare(b) })
	return sent, answers
}

// TestRateLimitSharedAcrossWorkers: two workers' Linear client factories, sharing nothing in memory, call one fake
// Linear for the same workspace. Once Linear has refused one of them, neither sends before the reset, in both of
// Linear's styles: the other refuses locally (nothing sent) or waits the refusal out, since the refusal and its
// reset reach it through Postgres with the connection.
func TestRateLimitSharedAcrossWorkers(t *testing.T) {
	t.Parallel()
	h := newFailureHarness(t, fOptions{})
	const reset = 3 * time.Second
	factory := func() *linear.Clients {
		return &linear.Clients{Store: h.db, Endpoint: h.fake.URL(), HTTPClient: &http.Client{Transport: &wireLog{}}}
	}
	first, second := factory(), factory()
	for _, status := range []int{http.StatusBadRequest, http.StatusTooManyRequests} {
		h.fake.ResetRequests()
		h.fake.InjectRateLimit(lineartest.RateLimit{Status: status, RetryAfter: reset})
		a, _, err := first.For(t.Context(), h.wsID)
		require.NoError(t, err)
		_, err = linear.Organization(t.Context(), a.GQL())
		require.Equal(t, linear.ClassRateLimited, linear.ClassOf(err), "%v", err)
		refusal := h.fake.Requests()[0]
		require.Equal(t, "ratelimited", refusal.Fault)

		// The other worker learns the refusal with the connection: without a deadline to wait within, it refuses
		// locally, sending nothing.
		b, _, err := second.For(t.Context(), h.wsID)
		require.NoError(t, err)
		_, err = linear.Organization(t.Context(), b.GQL())
		require.Error(t, err, "the other worker sent before the reset")
		e := linear.Classify(err)
		require.Equal(t, linear.ClassRateLimited, e.Class, "%v", err)
		require.True(t, e.NotSent, "refused by the shared budget, not by Linear: %v", err)
		require.Len(t, h.fake.Requests(), 1, "nothing else reached Linear")

		// With time to wait (an activity's deadline), both wait out the reset and then send.
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		var wg sync.WaitGroup
		for _, c := range []*linear.Client{a, b} {
			wg.Go(func() {
				_, err := linear.Organization(ctx, c.GQL())
				assert.NoError(t, err)
			})
		}
		wg.Wait()
		cancel()
		reqs := h.fake.Requests()
		require.Len(t, reqs, 3)
		for _, r := range reqs[1:] {
			require.Empty(t, r.Fault)
			require.GreaterOrEqual(t, r.Time.Sub(refusal.Time), reset-2*time.Millisecond,
				"%s style: a request reached Linear %v after the refusal, before its reset", http.StatusText(status), r.Time.Sub(refusal.Time))
		}
	}
}
