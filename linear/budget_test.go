package linear

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/linsync/linsync"
)

// TestBudgetSharesOnlyWhatOthersNeed: a healthy budget shares nothing; a refusal and a window below the pacing
// threshold are shared; another process adopts the refusal and a lower count of the same window, never a stale one.
func TestBudgetSharesOnlyWhatOthersNeed(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	reset := now.Add(30 * time.Minute)
	var a budget
	a.windows = map[string]RateWindow{"requests": {Kind: "requests", Limit: 1000, Remaining: 900, Reset: reset}}
	require.Equal(t, linsync.SharedRateLimit{}, a.shared(now, 0.1), "healthy: nothing to share")

	a.windows["requests"] = RateWindow{Kind: "requests", Limit: 1000, Remaining: 40, Reset: reset}
	a.block(now.Add(5 * time.Second))
	s := a.shared(now, 0.1)
	require.Equal(t, now.Add(5*time.Second), s.BlockedUntil)
	require.Equal(t, []RateWindow{{Kind: "requests", Limit: 1000, Remaining: 40, Reset: reset}}, s.Windows)

	var b budget
	b.windows = map[string]RateWindow{"requests": {Kind: "requests", Limit: 1000, Remaining: 600, Reset: reset}}
	b.adopt(s, now)
	// Paced by 40 requests over 30 minutes (45 s apart), and never before the refusal's reset.
	require.Equal(t, 45*time.Second, b.delay(now, 0.1), "the other process paces by what is left")
	require.InDelta(t, 40, b.windows["requests"].Remaining, 0, "and paces by the lower count")

	// A note from before the window reset changes nothing.
	b.windows["requests"] = RateWindow{Kind: "requests", Limit: 1000, Remaining: 990, Reset: reset.Add(time.Hour)}
	b.adopt(s, now)
	require.InDelta(t, 990, b.windows["requests"].Remaining, 0)
}
