package linear

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/linsync/linsync"
)

// TestNotificationEventFromRealPayloads reads Linear's captured deliveries as notification rules see them.
func TestNotificationEventFromRealPayloads(t *testing.T) {
	t.Parallel()
	load := func(name string) *Webhook {
		t.Helper()
		raw, err := os.ReadFile(filepath.Join("testdata", "payloads", name))
		require.NoError(t, err)
		w, err := DecodeWebhook(raw)
		require.NoError(t, err)
		return w
	}
	t.Run("IssueSLA breached", func(t *testing.T) {
		ev := NotificationEvent(load("issuesla_breached_2025_redacted.json"), "d", "")
		require.Equal(t, "IssueSLA", ev.Type)
		require.Equal(t, "breached", ev.Action)
		require.NotNil(t, ev.Issue)
		require.Equal(t, "test", ev.Issue.Title)
		tm, _ := linsync.FindNotificationTemplate("sla-at-risk")
		require.True(t, linsync.MatchNotification(linsync.NotificationRule{Enabled: true, Match: tm.Match}, ev))
	})
	t.Run("Project status changed", func(t *testing.T) {
		ev := NotificationEvent(load("zulip_project_update_status_2026.json"), "d", "")
		require.NotNil(t, ev.Project)
		require.True(t, ev.Project.StateChanged)
		require.Equal(t, "In Progress", ev.Project.State)
		require.Equal(t, "Dhruv Shetty", ev.Actor)
		require.Equal(t, []string{"startedAt", "statusId"}, ev.Changed, "updatedAt is left out")
		tm, _ := linsync.FindNotificationTemplate("project-state-changed")
		require.True(t, linsync.MatchNotification(linsync.NotificationRule{Enabled: true, Match: tm.Match}, ev))
		msg, err := linsync.RenderNotification(linsync.NotifySlack, linsync.NotificationRule{}, ev)
		require.NoError(t, err)
		require.Contains(t, msg.Text, "|Zulip-Test-Project> is now *In Progress*")
	})
	t.Run("ProjectUpdate posted", func(t *testing.T) {
		ev := NotificationEvent(load("lhc_projectupdate_create_2023.json"), "d", "")
		require.NotNil(t, ev.ProjectUpdate)
		require.Equal(t, "Testing", ev.ProjectUpdate.ProjectName)
		require.Equal(t, "Morgan", ev.ProjectUpdate.Author)
		tm, _ := linsync.FindNotificationTemplate("project-update-posted")
		require.True(t, linsync.MatchNotification(linsync.NotificationRule{Enabled: true, Match: tm.Match}, ev))
	})
	t.Run("Issue title change is not a completion", func(t *testing.T) {
		w := load("zulip_issue_update_title_2023.json")
		ev := NotificationEvent(w, "d", "")
		require.Equal(t, []string{"title"}, ev.Changed)
		tm, _ := linsync.FindNotificationTemplate("issue-completed")
		require.False(t, linsync.MatchNotification(linsync.NotificationRule{Enabled: true, Match: tm.Match}, ev))
	})
	t.Run("own actor is an echo", func(t *testing.T) {
		w := load("zulip_project_update_status_2026.json")
		require.True(t, NotificationEvent(w, "d", w.Actor.ID).Own)
		require.False(t, NotificationEvent(w, "d", "someone-else").Own)
	})
}

func TestNotificationEventCycleCompleted(t *testing.T) {
	t.Parallel()
	body := []byte(`{"action":"update","type":"Cycle","organizationId":"o","webhookTimestamp":1,
		"data":{"id":"c1","number":12,"teamId":"t","completedAt":"2026-01-01T00:00:00Z"},
		"updatedFrom":{"completedAt":null,"updatedAt":"x"}}`)
	w, err := DecodeWebhook(body)
	require.NoError(t, err)
	ev := NotificationEvent(w, "d", "")
	require.True(t, ev.Cycle.Completed)
	body = []byte(`{"action":"update","type":"Cycle","organizationId":"o","webhookTimestamp":1,
		"data":{"id":"c1","number":12,"teamId":"t","completedAt":"2026-01-01T00:00:00Z"},"updatedFrom":{"name":"old"}}`)
	w, err = DecodeWebhook(body)
	require.NoError(t, err)
	require.False(t, NotificationEvent(w, "d", "").Cycle.Completed, "a completed cycle renamed is not completed again")
}
