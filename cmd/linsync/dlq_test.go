package main

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/api"
	"github.com/linsync/linsync/linsynctest"
	"github.com/linsync/linsync/worker"
)

func TestMain(m *testing.M) { os.Exit(linsynctest.RunWithTemporal(m)) }

// TestDLQCommands drives `linsync dlq` against the real API: list, show, a dry run and a bulk replay with progress.
func TestDLQCommands(t *testing.T) {
	ctx := t.Context()
	db := linsynctest.DB(t)
	tc, _ := linsynctest.Temporal(t)
	tq := "test-" + uuid.NewString()
	acts, err := worker.NewActivities(worker.Deps{DB: db, Temporal: tc, TaskQueue: tq})
	require.NoError(t, err)
	w := worker.New(tc, tq, worker.Activities{DeadLetters: acts.DeadLetters}, sdkworker.Options{})
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)
	reg := prometheus.NewRegistry()
	s, err := api.New(api.Config{TaskQueue: tq}, db, tc, slog.New(slog.NewTextHandler(io.Discard, nil)), reg)
	require.NoError(t, err)
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)

	ws, err := db.CreateWorkspace(ctx, "acme", "Acme")
	require.NoError(t, err)
	_, token, err := db.CreateToken(ctx, ws.ID, "ops", []string{linsync.ScopeAdmin})
	require.NoError(t, err)
	input, _ := json.Marshal([]any{map[string]string{"workspace_id": ws.ID}})
	dl, err := db.RecordDeadLetter(ctx, linsync.DeadLetter{WorkspaceID: ws.ID, Kind: "NoSuchWorkflow", WorkflowID: "wf-" + uuid.NewString(),
		RunID: "r1", TaskQueue: tq, Input: input, ErrorClass: "LinearForbidden", ErrorMessage: "forbidden", Attempts: 1})
	require.NoError(t, err)

	t.Setenv("LINSYNC_TOKEN", token)
	dlq := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		require.NoError(t, run(ctx, append([]string{"dlq"}, append(args, "--api", srv.URL, "--workspace", "acme")...), &out))
		return out.String()
	}
	require.Contains(t, dlq("list"), dl.ID)
	require.Contains(t, dlq("list"), "LinearForbidden")
	require.NotContains(t, dlq("list", "--error-class", "LinearRateLimited"), dl.ID)
	require.Contains(t, dlq("show", dl.ID), `"error_message": "forbidden"`)
	require.Contains(t, dlq("replay", "--dry-run", dl.ID), "would replay")

	// A question whose push failed: the dry run is a diff, field by field.
	q, _, err := db.CreateQuestion(ctx, linsync.QuestionInput{WorkspaceID: ws.ID, ExternalID: "q-1", Title: "Where is churn?",
		Body: "For the deck.", AskerEmail: "alice@example.com", Priority: 2, TeamID: "team-1", At: time.Now()})
	require.NoError(t, err)
	qin, _ := json.Marshal([]any{map[string]string{"workspace_id": ws.ID, "question_id": q.ID}})
	qdl, err := db.RecordDeadLetter(ctx, linsync.DeadLetter{WorkspaceID: ws.ID, Kind: linsync.KindQuestionPush,
		WorkflowID: "question:" + ws.ID + ":" + q.ID, RunID: "r2", TaskQueue: tq, Input: qin, ErrorClass: "LinearForbidden",
		ErrorMessage: "create issue: forbidden", Attempts: 1})
	require.NoError(t, err)
	diff := dlq("replay", "--dry-run", qdl.ID)
	t.Logf("dry run:\n%s", diff)
	require.Contains(t, diff, qdl.ID+"  QuestionPush  would replay")
	require.Regexp(t, `writes to Linear:\s+field\s+now\s+replay writes`, diff)
	require.Regexp(t, `issue\s+\(none\)\s+→\s+"issueCreate"`, diff)
	require.Regexp(t, `title\s+\(none\)\s+→\s+"Where is churn\?"`, diff)
	require.Contains(t, diff, "since the failure:")
	out := dlq("replay", "--kind", "NoSuchWorkflow", "--rate", "20")
	require.Contains(t, out, "[##############################] 1 of 1 replayed", "the progress bar ends full")
	require.NotContains(t, out, "map[", "progress in words, not Go syntax")
	require.NotContains(t, out, "0/0", "no empty count before the replay has counted")

	var buf bytes.Buffer
	t.Setenv("LINSYNC_TOKEN", "lsk_wrong-token-000000000000")
	err = run(ctx, []string{"dlq", "list", "--api", srv.URL, "--workspace", "acme"}, &buf)
	require.ErrorContains(t, err, "401 unauthorized")
}

func TestProgressLine(t *testing.T) {
	require.Equal(t, "finding the failed events to replay…", progressLine(bulkProgress{}))
	require.Equal(t, "nothing matched: no failed event to replay", progressLine(bulkProgress{Finished: true}))
	require.Equal(t, "[###############...............] 1 of 2 replayed: 1 resync requested",
		progressLine(bulkProgress{Total: 2, Done: 1, Counts: map[string]int{"resync_requested": 1}}))
	require.Equal(t, "[##############################] 3 of 3 replayed: 1 already completed, 2 started",
		progressLine(bulkProgress{Total: 3, Done: 3, Finished: true, Counts: map[string]int{"started": 2, "already_completed": 1, "failed": 0}}))
}

func TestProgressBar(t *testing.T) {
	require.Equal(t, "[#####.....]", progressBar(1, 2, 10))
	require.Equal(t, "[..........]", progressBar(0, 5, 10))
	require.Equal(t, "[##########]", progressBar(0, 0, 10))
}
