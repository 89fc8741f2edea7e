package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/api"
	"github.com/linsync/linsync/linear"
	"github.com/linsync/linsync/postgres"
)

// idleInTxProbe carries the activities' Linear requests and, halfway through each one (while Linear is working on
// it), counts the connections of the test's database that are idle in a transaction.
type idleInTxProbe struct {
	t       testing.TB
	db      atomic.Pointer[postgres.DB]
	delay   time.Duration
	mu      sync.Mutex
	samples map[string]int // operation -> samples taken while it was in flight
	worst   map[string]int // operation -> most connections seen idle in a transaction
}

func (p *idleInTxProbe) RoundTrip(r *http.Request) (*http.Response, error) {
	op := "?"
	if r.Body != nil {
		raw, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, fmt.Errorf("read request body: %w", err)
		}
		r.Body = io.NopCloser(bytes.NewReader(raw))
		if i := bytes.Index(raw, []byte(`"operationName":"`)); i >= 0 {
			rest := raw[i+len(`"operationName":"`):]
			op = string(rest[:bytes.IndexByte(rest, '"')])
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		db := p.db.Load()
		if db == nil {
			return
		}
		time.Sleep(p.delay)
		// Two looks 100 ms apart, while Linear still works: a transaction held across the call is idle in both with
		// the same start, where a transaction caught between two of its statements (the drainer's claim of an empty
		// inbox, a moment long) is not. The drainer's claim is held across Temporal starts by design, never across
		// Linear, and is left out. A fresh context: the request's own may end first, and the sample must still be
		// taken.
		look := func() (map[int]time.Time, error) {
			rows, err := db.Pool().Query(p.t.Context(), `SELECT pid, xact_start FROM pg_stat_activity
				WHERE datname = current_database() AND state = 'idle in transaction'
				AND query NOT LIKE '%FOR UPDATE SKIP LOCKED%'`)
			if err != nil {
				return nil, err
			}
			held := map[int]time.Time{}
			for rows.Next() {
				var pid int
				var since time.Time
				if err := rows.Scan(&pid, &since); err != nil {
					return nil, err
				}
				held[pid] = since
			}
			return held, rows.Err()
		}
		first, err := look()
		if err == nil {
			time.Sleep(min(100*time.Millisecond, p.delay/2))
			var second map[int]time.Time
			if second, err = look(); err == nil {
				for pid, since := range first {
					if !second[pid].Equal(since) {
						delete(first, pid)
					}
				}
			}
		}
		if err != nil {
			p.t.Errorf("sample pg_stat_activity: %v", err)
			return
		}
		n := len(first)
		p.mu.Lock()
		p.samples[op]++
		p.worst[op] = max(p.worst[op], n)
		p.mu.Unlock()
	}()
	resp, err := http.DefaultTransport.RoundTrip(r)
	<-done
	return resp, err
}

// TestEventsFilingHoldsNoTransactionAcrossLinear slows Linear down and looks at Postgres while each Linear call of
// filing is in flight: no connection is idle in a transaction (neither pool connections nor row locks are held
// while Linear works). Two click thresholds of one link, band and hour race for the same issue; the one that
// does not get to write leaves its entry to the one that does, and the issue still shows both.
func TestEventsFilingHoldsNoTransactionAcrossLinear(t *testing.T) {
	t.Parallel()
	const latency = 600 * time.Millisecond
	probe := &idleInTxProbe{t: t, delay: latency / 2, samples: map[string]int{}, worst: map[string]int{}}
	s := newStack(t, stackOptions{cfg: api.Config{StartTimeout: 5 * time.Second}, worker: stackWorker{events: true},
		linearTransport: probe, workspace: "links", workspaceName: "Links",
		connect: &stackConnection{orgName: "Fake", labels: []string{"short-link"}},
		tokens:  []stackToken{{"scanner", []string{linsync.ScopeEventsWrite}}, {"admin", []string{linsync.ScopeAdmin}}}})
	reader, err := linear.New(linear.Options{Credential: linear.Credential{APIKey: s.sd.APIKey}, Endpoint: s.fake.URL()})
	require.NoError(t, err)
	h := &eventsHarness{stack: s, token: s.tokens["scanner"], admin: s.tokens["admin"], reader: reader}
	h.settings(map[string]any{"debounce_ms": 200})
	probe.db.Store(s.db)
	s.fake.SetLatency(latency)

	click := func(key string, current int) map[string]any {
		return map[string]any{"id": key, "event": "link.click_threshold", "link_id": "01J9V7QXMZ8K2Y3N4P5R6T7W8Z",
			"short_url": "https://s.example.me/spring-launch", "band": "spike", "current_hour_clicks": current,
			"baseline_hourly_clicks": 612, "multiplier": 13.76, "triggered_at": "2026-06-04T11:14:00Z"}
	}
	h.batch([]map[string]any{
		click("c1", 8421), click("c2", 9000),
		brokenEvent("b1", "slow.example.com", "a", "http_5xx", "organic"), brokenEvent("b2", "slow.example.com", "b", "http_5xx", "organic"),
	}, "accepted")
	issues := h.waitSettled(2, 4)

	for _, f := range issues {
		is := h.issue(f.ID)
		require.NotNil(t, is.Description)
		if f.Kind == "link.click_threshold" {
			require.Equal(t, 2, f.EntryCount)
			require.Contains(t, *is.Description, "The threshold fired 2 times this hour", "both racing events are in the issue")
		} else {
			require.Contains(t, *is.Description, "https://s.example.me/a")
			require.Contains(t, *is.Description, "https://s.example.me/b")
		}
	}
	require.Equal(t, 2, s.fake.CountRequests("IssueCreate"), "one create per dedup key and window")

	probe.mu.Lock()
	defer probe.mu.Unlock()
	t.Logf("samples while in flight: %v; most connections idle in a transaction: %v", probe.samples, probe.worst)
	require.Positive(t, probe.samples["IssueCreate"], "sampled while issueCreate was in flight")
	var ops []string
	for op, n := range probe.worst {
		if n > 0 {
			ops = append(ops, fmt.Sprintf("%s: %d", op, n))
		}
	}
	require.Empty(t, ops, "connections idle in a transaction while Linear was called: %s", strings.Join(ops, ", "))
}
