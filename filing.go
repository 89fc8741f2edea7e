package linsync

import (
	"strings"
	"time"
)

// Filed issue statuses: pending until Linear has the issue, created after, capped when the hourly cap sent its
// events to a digest instead.
const (
	FiledPending = "pending"
	FiledCreated = "created"
	FiledCapped  = "capped"
)

// FiledIssue is one Linear issue linsync filed for events, or would have filed had the hourly cap not sent its
// events to a digest.
type FiledIssue struct {
	// ID is the Linear issue's id, chosen by linsync before issueCreate.
	ID              string     `json:"id"`
	WorkspaceID     string     `json:"-"`
	Kind            string     `json:"kind"`
	DedupKey        string     `json:"dedup_key"`
	WindowStart     time.Time  `json:"window_start"`
	WindowEnd       *time.Time `json:"window_end,omitempty"`
	TeamID          string     `json:"team_id"`
	RuleIndex       int        `json:"rule_index"`
	Labels          []string   `json:"labels"`
	Priority        int        `json:"priority"`
	Status          string     `json:"status"`
	DigestIssueID   *string    `json:"digest_issue_id,omitempty"`
	PreviousIssueID *string    `json:"previous_issue_id,omitempty"`
	Identifier      string     `json:"identifier,omitempty"`
	URL             string     `json:"url,omitempty"`
	Title           string     `json:"title,omitempty"`
	AppliedHash     string     `json:"-"`
	AppliedLabels   []string   `json:"-"`
	EntryCount      int        `json:"entry_count"`
	// ContentVersion counts changes to what the issue renders from; AppliedVersion is the one Linear last got.
	ContentVersion int64 `json:"-"`
	AppliedVersion int64 `json:"-"`
	// Links are the short links of the issue's entries, in arrival order (filled by postgres.DB.ListFiledIssues).
	Links     []string  `json:"links"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// FiledEntry is one thing an issue is about: a broken link of the host, a capped event in a digest, a trigger.
type FiledEntry struct {
	// Key dedupes within the issue: the link id for broken links, so a repeated link changes nothing.
	Key      string `json:"key"`
	EventKey string `json:"event_key"`
	// SourceKey names, in a digest, the issue the entry would have gone to.
	SourceKey string    `json:"source_key,omitempty"`
	ShortURL  string    `json:"short_url,omitempty"`
	Event     Event     `json:"event"`
	AddedAt   time.Time `json:"added_at,omitzero"`
}

// FiledIssueInput is an issue to record (or find) with entries to add to it.
type FiledIssueInput struct {
	ID          string
	WorkspaceID string
	Kind        string
	DedupKey    string
	WindowStart time.Time
	WindowEnd   *time.Time
	TeamID      string
	RuleIndex   int
	Labels      []string
	Priority    int
	Entries     []FiledEntry
	// TakeStaged also takes the entries staged for DedupKey (postgres.DB.StageEntries) into the issue.
	TakeStaged bool
}

// MergeLabels returns a followed by the names of b it lacks, ignoring case.
func MergeLabels(a, b []string) []string {
	out := make([]string, 0, len(a)+len(b))
	seen := map[string]bool{}
	for _, l := range append(append([]string{}, a...), b...) {
		k := strings.ToLower(strings.TrimSpace(l))
		if k == "" || seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, strings.TrimSpace(l))
	}
	return out
}

// MoreUrgent returns the more urgent of two Linear priorities (1 urgent … 4 low; 0, no priority, loses to any).
func MoreUrgent(a, b int) int {
	switch {
	case a == 0:
		return b
	case b == 0:
		return a
	}
	return min(a, b)
}

// FilingRequest asks to file an issue in Linear: to be its writer for one round, after the hourly cap allows it.
type FilingRequest struct {
	ID string
	// Writer names one attempt of one activity; LeaseUntil is that attempt's deadline, after which its lease no
	// longer keeps others out (a crashed attempt blocks no one past it).
	Writer     string
	LeaseUntil time.Time
	// Predecessor is the prefix of the writers of this activity's earlier attempts: a lease one of them left behind
	// (its release failed, e.g. while Postgres restarted) is taken over at once, since Temporal runs one attempt at a
	// time.
	Predecessor string
	// Hour and CapPerHour are the creation cap a new issue counts against; Uncapped skips it (digests, takeovers).
	Hour       time.Time
	CapPerHour int
	Uncapped   bool
	// DigestID names the digest of the issue's team for the hour, where a capped issue's entries go.
	DigestID func(teamID string) string
}

// FilingPlan is one round of filing, read in one short transaction: what to render and send to Linear.
type FilingPlan struct {
	Issue FiledIssue
	// Busy means another writer holds the issue's lease until BusyUntil: while it lives, it files every entry
	// recorded before it finishes (see postgres.DB.FinishFiling), so the caller sends nothing now; since it may
	// die with the lease held, the caller looks again once it is over, rather than counting its entries filed.
	Busy      bool
	BusyUntil time.Time
	Entries   []FiledEntry
	Previous  *FiledIssue
}

// FilingResult is what one round of filing brought Linear up to.
type FilingResult struct {
	ID     string
	Writer string
	// Version is the content version the round rendered (FilingPlan.Issue.ContentVersion).
	Version int64
	// Identifier and URL are set when the round created the issue.
	Identifier string
	URL        string
	Title      string
	Hash       string
	Labels     []string
}

// FinishOutcome says what postgres.DB.FinishFiling recorded.
type FinishOutcome struct {
	// Recorded is false when a newer version was already recorded: the round's write may have reached Linear after
	// the newer one, so what Linear shows is forgotten and the next round sends the newest again.
	Recorded bool
	// Behind is true when the issue has content Linear does not show yet (entries recorded while the round wrote,
	// or a lost compare-and-set): the caller files again.
	Behind bool
}

// FilingGrace is how long a filed issue may stay pending before the sync-status view counts it as stuck rather
// than in the hands of its workflow.
const FilingGrace = time.Minute

// PendingFiling is a filed issue Linear does not have yet.
type PendingFiling struct {
	IssueID   string    `json:"issue_id"`
	Kind      string    `json:"kind"`
	DedupKey  string    `json:"dedup_key"`
	Entries   int       `json:"entries"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// Recent is true while the filing is within FilingGrace of its last change: its workflow is probably at work.
	Recent bool `json:"-"`
}

// AggregatorInput is an issue being aggregated: the entries of one issue collected over its window and filed,
// debounced. It starts (or continues) workflows.IssueAggregator and is that workflow's whole state across
// continue-as-new; it lives here because both the workflow and the activity that signal-with-starts it
// (activities.Events.SignalAggregator) carry it, and the api reads it back from dead letters.
type AggregatorInput struct {
	WorkspaceID string        `json:"workspace_id"`
	Kind        string        `json:"kind"`
	DedupKey    string        `json:"dedup_key"`
	Window      time.Duration `json:"window"`
	Debounce    time.Duration `json:"debounce"`
	// WindowStart is zero until the first entry arrives; fixed windows (digests) set both ends.
	WindowStart time.Time `json:"window_start,omitzero"`
	WindowEnd   time.Time `json:"window_end,omitzero"`
	Decision    Decision  `json:"decision"`
	// Pending are entries handed over in the workflow's own payloads (before entries were staged in Postgres);
	// Staged counts the entries staged in Postgres for DedupKey since the last filing, which files them all.
	Pending []FiledEntry `json:"pending,omitempty"`
	Staged  int          `json:"staged,omitempty"`
	// Capped is set once the cap sent this window's entries to digests.
	Capped bool `json:"capped,omitempty"`
	// Runs counts continue-as-new generations, for logs and tests.
	Runs int `json:"runs,omitempty"`
	// LinearMaxAttempts bounds the attempts of each call to Linear (0: workflows.DefaultLinearMaxAttempts).
	LinearMaxAttempts int32 `json:"linear_max_attempts,omitempty"`
}
