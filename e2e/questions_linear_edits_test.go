package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/linsync/linsync"
)

// TestCommentEditAndRemovalFollowThroughWebhooks: a human's comment in Linear becomes a reply; editing it there
// edits the reply, deleting it there deletes the reply, each through its webhook (no reconciliation involved), and
// the app is never asked to write anything back.
func TestCommentEditAndRemovalFollowThroughWebhooks(t *testing.T) {
	t.Parallel()
	h := newQuestionHarness(t, nil)
	id := h.createQuestion(map[string]any{"title": "Is the export daily?", "body": "?", "asker_email": h.sd.Alice.Email})
	issueID := issueOf(h.quiesce(id))
	bob := h.fake.Human(h.sd.Bob.Email)
	kept, err := bob.Comment(issueID, "Nightly, at 02:00.")
	require.NoError(t, err)
	gone, err := bob.Comment(issueID, "Ignore me.")
	require.NoError(t, err)
	h.quiesce(id)
	require.ElementsMatch(t, []string{"Nightly, at 02:00.", "Ignore me."}, h.replyBodies(id))

	writes := h.writes()
	require.NoError(t, bob.EditComment(kept, "Nightly, at 03:00 since the migration."))
	require.NoError(t, bob.DeleteComment(gone))
	h.quiesce(id)
	require.Equal(t, []string{"Nightly, at 03:00 since the migration."}, h.replyBodies(id))
	require.Equal(t, writes, h.writes(), "following Linear writes nothing back to it")
}

// TestTeamMoveFollowsTheIssue: a human moves a question's issue to another team. The question follows: new team,
// new identifier and URL; later edits in the new team still reach the question, and a reply from the app still
// lands on the same issue.
func TestTeamMoveFollowsTheIssue(t *testing.T) {
	t.Parallel()
	h := newQuestionHarness(t, nil)
	id := h.createQuestion(map[string]any{"title": "Who owns billing alerts?", "body": "?", "asker_email": h.sd.Alice.Email})
	q := h.quiesce(id)
	issueID := issueOf(q)
	before := q["linear"].(map[string]any)["identifier"].(string)
	require.True(t, strings.HasPrefix(before, h.sd.Triage.Key+"-"), before)

	alice := h.fake.Human(h.sd.Alice.Email)
	require.NoError(t, alice.MoveIssue(issueID, h.sd.Plain.Key))
	q = h.waitQuestion(id, "moved", func(q map[string]any) bool { return q["team_id"] == h.sd.Plain.ID })
	link := q["linear"].(map[string]any)
	require.True(t, strings.HasPrefix(link["identifier"].(string), h.sd.Plain.Key+"-"), "new identifier: %v", link)
	require.Contains(t, link["url"], link["identifier"])
	require.Equal(t, issueID, link["issue_id"], "the same issue")
	require.Equal(t, true, link["linked"])

	require.NoError(t, alice.SetState(issueID, "started"))
	h.waitQuestion(id, "in progress", func(q map[string]any) bool { return q["status"] == linsync.StatusInProgress })
	st, out := h.do(http.MethodPost, "/questions/"+id+"/replies", map[string]any{"body": "Thanks for taking it.",
		"author_email": h.sd.Alice.Email, "external_id": "r-move"})
	require.Equal(t, http.StatusCreated, st, out)
	h.quiesce(id)
	found := false
	for _, c := range h.fakeComments(issueID) {
		found = found || strings.Contains(c["body"].(string), "Thanks for taking it.")
	}
	require.True(t, found, "the reply landed on the moved issue")
	moved := false
	for _, a := range h.audit(id) {
		moved = moved || a.(map[string]any)["kind"] == linsync.AuditMoved
	}
	require.True(t, moved, "the audit trail records the move")
}

// TestDeletePolicies: deleting a question in the app archives it; with the "comment" policy its issue gets a note
// and keeps its state, with "cancel" the issue is cancelled. An issue deleted in Linear unlinks its question.
func TestDeletePolicies(t *testing.T) {
	t.Parallel()
	h := newQuestionHarness(t, nil)
	_, admin, err := h.db.CreateToken(t.Context(), h.wsID, "ops", []string{linsync.ScopeAdmin})
	require.NoError(t, err)
	setPolicy := func(policy string) {
		t.Helper()
		resp, raw := h.request(http.DefaultClient, http.MethodPut, "/v1/workspaces/"+h.ws+"/question-settings",
			map[string]any{"delete_policy": policy}, "Authorization", "Bearer "+admin, "Content-Type", "application/json")
		require.Equal(t, http.StatusOK, resp.StatusCode, string(raw))
	}
	stateOf := func(issueID string) string { return h.issue(issueID)["state"].(map[string]any)["type"].(string) }

	setPolicy(linsync.DeletePolicyComment)
	noted := h.createQuestion(map[string]any{"title": "Old question", "body": "?", "asker_email": h.sd.Alice.Email})
	notedIssue := issueOf(h.quiesce(noted))
	stateBefore := stateOf(notedIssue)
	st, out := h.do(http.MethodDelete, "/questions/"+noted, nil)
	require.Equal(t, http.StatusOK, st, out)
	h.waitQuestion(noted, "archive noted", func(q map[string]any) bool { return q["sync"].(map[string]any)["state"] == "synced" })
	require.Eventually(t, func() bool {
		for _, c := range h.fakeComments(notedIssue) {
			if strings.Contains(c["body"].(string), "archived in the Q&A app") {
				return true
			}
		}
		return false
	}, 10*time.Second, 50*time.Millisecond, "the issue gets a note")
	require.Equal(t, stateBefore, stateOf(notedIssue), "and keeps its state")

	setPolicy(linsync.DeletePolicyCancel)
	cancelled := h.createQuestion(map[string]any{"title": "Duplicate question", "body": "?", "asker_email": h.sd.Alice.Email})
	cancelledIssue := issueOf(h.quiesce(cancelled))
	st, out = h.do(http.MethodDelete, "/questions/"+cancelled, nil)
	require.Equal(t, http.StatusOK, st, out)
	require.Eventually(t, func() bool { return stateOf(cancelledIssue) == "canceled" }, 10*time.Second, 50*time.Millisecond,
		"the issue is cancelled in Linear")
	q := h.quiesce(cancelled)
	require.Equal(t, true, q["archived"])
	require.Equal(t, linsync.StatusClosed, q["status"])

	// Deleted in Linear: the question stays, unlinked, and says why.
	kept := h.createQuestion(map[string]any{"title": "Still relevant?", "body": "?", "asker_email": h.sd.Alice.Email})
	keptIssue := issueOf(h.quiesce(kept))
	require.NoError(t, h.fake.Human(h.sd.Bob.Email).DeleteIssue(keptIssue))
	q = h.waitQuestion(kept, "unlinked", func(q map[string]any) bool { return q["linear"].(map[string]any)["linked"] == false })
	require.Equal(t, "unlinked", q["sync"].(map[string]any)["state"])
	require.Contains(t, q["sync"].(map[string]any)["reason"], "deleted in Linear")
}

// fakeComments returns the comments of an issue in the fake Linear.
func (h *qHarness) fakeComments(issueID string) []map[string]any {
	h.t.Helper()
	resp, err := http.Get(h.fake.BaseURL() + "/_fake/state")
	require.NoError(h.t, err)
	defer resp.Body.Close()
	var st struct {
		Comments []map[string]any `json:"comments"`
	}
	require.NoError(h.t, json.NewDecoder(resp.Body).Decode(&st))
	var out []map[string]any
	for _, c := range st.Comments {
		if c["issueId"] == issueID && c["archivedAt"] == nil {
			out = append(out, c)
		}
	}
	return out
}
