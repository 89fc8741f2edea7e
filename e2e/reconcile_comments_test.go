package e2e

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/linsync/linsync/activities"
	"github.com/linsync/linsync/linear/lineartest"
)

// TestReconcileRepairsDroppedCommentWebhooks: a human's comment, then an edit of another and the removal of a
// third, each lose their webhook. The question misses all three until one reconciliation run reads the comments
// changed since the watermark (one request per page, not per issue) and applies them through the comment webhook's
// own activity; a second run changes nothing, and linsync's own replies never come back as replies.
func TestReconcileRepairsDroppedCommentWebhooks(t *testing.T) {
	t.Parallel()
	h := newReconcileHarness(t, lineartest.Options{})
	id := h.createQuestion(map[string]any{"title": "Which dashboard shows churn?", "body": "For the board deck.",
		"asker_email": "asker@example.com"})
	issueID := issueOf(h.quiesce(id))
	st, out := h.do(http.MethodPost, "/questions/"+id+"/replies", map[string]any{"body": "Looking into it.",
		"author_email": "bob@example.com", "external_id": "r-app"})
	require.Equal(t, http.StatusCreated, st, out)
	bob := h.fake.Human(h.sd.Bob.Email)
	edited, err := bob.Comment(issueID, "First draft of the answer.")
	require.NoError(t, err)
	removed, err := bob.Comment(issueID, "Wrong issue, sorry.")
	require.NoError(t, err)
	h.quiesce(id)
	require.ElementsMatch(t, []string{"Looking into it.", "First draft of the answer.", "Wrong issue, sorry."}, h.replyBodies(id))

	h.fake.InjectDeliveryFault(lineartest.DeliveryFault{Mode: lineartest.DeliveryDrop, Count: 3})
	_, err = h.fake.Human(h.sd.Alice.Email).Comment(issueID, "It is the Retention board.")
	require.NoError(t, err)
	require.NoError(t, bob.EditComment(edited, "The answer: see the Retention board."))
	require.NoError(t, bob.DeleteComment(removed))
	require.NoError(t, h.fake.Flush(t.Context()))
	require.ElementsMatch(t, []string{"Looking into it.", "First draft of the answer.", "Wrong issue, sorry."}, h.replyBodies(id),
		"the question missed all three")

	h.fake.ResetRequests()
	res := h.reconcile()
	require.True(t, res.Connected)
	kinds := map[string]int{}
	for _, r := range res.Repairs {
		kinds[r.Kind]++
		require.Equal(t, id, r.QuestionID)
	}
	require.Equal(t, map[string]int{activities.DriftComment: 3}, kinds, "%+v", res.Repairs)
	require.ElementsMatch(t, []string{"Looking into it.", "The answer: see the Retention board.", "It is the Retention board."},
		h.replyBodies(id), "created, edited and removed as the webhooks would have")
	require.Equal(t, 1, h.fake.CountRequests("CommentsUpdatedSince"), "one page of comments, one request")
	require.InDelta(t, 3, h.counter("linsync_drift_repaired_total", activities.DriftComment), 0)

	again := h.reconcile()
	for _, r := range again.Repairs {
		require.NotEqual(t, activities.DriftComment, r.Kind, "nothing was missed since: %+v", again.Repairs)
	}
	require.Len(t, h.replyBodies(id), 3)
}

// replyBodies lists the bodies of the question's replies that are not deleted.
func (h *qHarness) replyBodies(id string) []string {
	h.t.Helper()
	st, out := h.do(http.MethodGet, "/questions/"+id+"/replies", nil)
	require.Equal(h.t, http.StatusOK, st, out)
	var bodies []string
	for _, r := range out["replies"].([]any) {
		m := r.(map[string]any)
		if m["deleted_at"] == nil {
			bodies = append(bodies, m["body"].(string))
		}
	}
	return bodies
}
