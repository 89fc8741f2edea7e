//go:build !nodev

package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/linsync/linsync"
)

// kindLedger is the account of one kind of source item: every acknowledged submission is an item applied once,
// a duplicate of an item acknowledged before (deduplicated), or an item that failed for good (dead-lettered).
type kindLedger struct {
	kind string
	// received counts acknowledged submissions, unique the distinct items among them.
	received, unique int
	// applied items have exactly one effect, doubled ones more; dead ones none but a dead letter; lost ones none.
	applied, doubled, dead, lost int
	// effects is the histogram of effects per item (issues per question, replies per comment, ...).
	effects map[int]int
	effect  string
	// missing names a few items lost or doubled, for the report.
	missing []string
}

func (k *kindLedger) note(s string) {
	if len(k.missing) < 5 {
		k.missing = append(k.missing, s)
	}
}

func (k *kindLedger) deduplicated() int { return k.received - k.unique }

// ok is the ledger's equation, received = applied + deduplicated + dead-lettered, with nothing doubled.
func (k *kindLedger) ok() bool {
	return k.lost == 0 && k.doubled == 0 && k.received == k.applied+k.deduplicated()+k.dead
}

// ledger is the chaos run's account.
type ledger struct {
	kinds      []*kindLedger
	inboxDepth int
	// answers counts what the API answered to submissions of items acknowledged before.
	answers map[string]int
}

// progress says what is still missing, kind by kind; with detail, it names a few of the items.
func (l *ledger) progress(detail bool) string {
	parts := []string{fmt.Sprintf("inbox %d", l.inboxDepth)}
	for _, k := range l.kinds {
		if k.lost > 0 || k.doubled > 0 {
			p := fmt.Sprintf("%s: %d not applied, %d doubled", k.kind, k.lost, k.doubled)
			if detail {
				p += " (" + strings.Join(k.missing, ", ") + ")"
			}
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, "; ")
}

func (l *ledger) balanced() bool {
	for _, k := range l.kinds {
		if !k.ok() {
			return false
		}
	}
	return l.inboxDepth == 0
}

// account counts, for each acknowledged item, its effects (found by effects) and whether it has a dead letter.
func account(kind, effect string, acks map[string]int, effects func(key string) int, dead func(key string) bool) *kindLedger {
	k := &kindLedger{kind: kind, effect: effect, effects: map[int]int{}}
	for key, n := range acks {
		k.received += n
		k.unique++
		e := effects(key)
		k.effects[e]++
		switch {
		case e == 1:
			k.applied++
		case e > 1:
			k.doubled++
			k.note(fmt.Sprintf("%s doubled (%d)", key, e))
		case dead(key):
			k.dead++
		default:
			k.lost++
			k.note(key + " lost")
		}
	}
	return k
}

// settle waits until every acknowledged item is applied or dead-lettered and nothing waits in the inbox (or the
// run's time is up), then returns the ledger.
func (l *chaosLoad) settle(ctx context.Context) (*ledger, error) {
	conn, err := pgx.Connect(ctx, l.c.dbURL)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	var led *ledger
	lastReport := time.Now()
	for {
		flushCtx, cancel := context.WithTimeout(ctx, time.Second)
		flushed := l.c.fake.Flush(flushCtx) == nil
		cancel()
		if led, err = l.accountAll(ctx, conn); err != nil && ctx.Err() == nil {
			l.c.logf("account: %v", err)
		}
		if led != nil && led.balanced() && flushed {
			return led, nil
		}
		if led != nil && time.Since(lastReport) > 15*time.Second {
			lastReport = time.Now()
			l.c.logf("settling: %s", led.progress(false))
		}
		select {
		case <-ctx.Done():
			if led == nil {
				return nil, fmt.Errorf("chaos run out of time before any account: %w", err)
			}
			l.c.logf("out of time: the ledger as it stands")
			return led, nil
		case <-time.After(2 * time.Second):
		}
	}
}

// accountAll reads linsync's database and the fake Linear and draws up the ledger.
func (l *chaosLoad) accountAll(ctx context.Context, conn *pgx.Conn) (*ledger, error) {
	st, err := fakeState(l.c.fakeURL)
	if err != nil {
		return nil, err
	}
	titles, texts := map[string]int{}, []string{}
	for _, is := range st.Issues {
		titles[is.Title]++
		if is.Description != nil {
			texts = append(texts, *is.Description)
		}
	}
	// A reply reaches Linear as "**author** replied in the Q&A app:" and its body: counted by the body.
	comments := map[string]int{}
	for _, c := range st.Comments {
		comments[c.Body[strings.LastIndex(c.Body, "\n")+1:]]++
	}
	q := func(sql string, args ...any) (map[string]int, error) {
		rows, err := conn.Query(ctx, sql, args...)
		if err != nil {
			return nil, err
		}
		out := map[string]int{}
		for rows.Next() {
			var k string
			var n int
			if err := rows.Scan(&k, &n); err != nil {
				return nil, err
			}
			out[k] = n
		}
		return out, rows.Err()
	}
	failedQuestions, err := q(`SELECT external_id, 1 FROM questions WHERE sync_state = 'failed'`)
	if err != nil {
		return nil, err
	}
	deadLetters, err := q(`SELECT workflow_id, 1 FROM failed_events WHERE status = 'open'`)
	if err != nil {
		return nil, err
	}
	// Effects of posted webhooks: their recorded deliveries that handled them (a duplicate's record is not one).
	hookEffects, err := q(`SELECT entity_id, count(*) FROM webhook_deliveries
		WHERE webhook_id = 'chaos-posted' AND outcome IN ('processed', 'ignored', 'unknown_type') GROUP BY entity_id`)
	if err != nil {
		return nil, err
	}
	hookFailed, err := q(`SELECT entity_id, 1 FROM webhook_deliveries WHERE webhook_id = 'chaos-posted' AND outcome = 'failed'`)
	if err != nil {
		return nil, err
	}
	recorded, err := q(`SELECT delivery_id::text, 1 FROM webhook_deliveries WHERE outcome IN ('processed', 'ignored', 'unknown_type')`)
	if err != nil {
		return nil, err
	}
	failedDeliveries, err := q(`SELECT delivery_id::text, 1 FROM webhook_deliveries WHERE outcome = 'failed'`)
	if err != nil {
		return nil, err
	}
	linearReplies, err := q(`SELECT body, count(*) FROM question_replies WHERE source = 'linear' GROUP BY body`)
	if err != nil {
		return nil, err
	}
	led := &ledger{answers: map[string]int{}}
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM inbox WHERE started_at IS NULL`).Scan(&led.inboxDepth); err != nil {
		return nil, err
	}

	l.mu.Lock()
	acks := map[string]map[string]int{}
	for kind, m := range l.acks {
		acks[kind] = map[string]int{}
		for k, n := range m {
			acks[kind][k] = n
		}
	}
	for a, n := range l.dupAnswer {
		led.answers[a] = n
	}
	human := map[string]int{}
	for _, body := range l.humanDone {
		human[body] = 1
	}
	l.mu.Unlock()

	contains := func(s string) int {
		n := 0
		for _, t := range texts {
			if strings.Contains(t, s) {
				n++
			}
		}
		return n
	}
	eventDead := func(key string) bool { return deadLetters["event:"+l.c.wsID+":"+key] > 0 }
	linearAcks := map[string]int{}
	for _, d := range l.c.fake.Deliveries() {
		if d.Status == http.StatusOK {
			linearAcks[d.ID]++
		}
	}
	led.kinds = []*kindLedger{
		account(kindQuestion, "issues per question", acks[kindQuestion],
			func(k string) int { return titles["Chaos question "+k] },
			func(k string) bool { return failedQuestions[k] > 0 }),
		account(kindReply, "comments per reply", acks[kindReply],
			func(k string) int { return comments["Chaos reply "+k] },
			func(k string) bool { return failedQuestions[strings.TrimPrefix(k, "r-")] > 0 }),
		account(kindTakeover, "issues per takeover", acks[kindTakeover],
			func(k string) int { return titles[takeoverTitle(k)] },
			eventDead),
		account(kindLink, "issues listing the link", acks[kindLink],
			func(k string) int { return contains("s.chaos.example/l" + strings.TrimPrefix(k, "bl-")) },
			eventDead),
		account(kindHook, "handled records per body", acks[kindHook],
			func(k string) int { return hookEffects[k] },
			func(k string) bool { return hookFailed[k] > 0 }),
		account(kindLinear, "handled records per delivery", linearAcks,
			func(k string) int { return recorded[k] },
			func(k string) bool { return failedDeliveries[k] > 0 }),
		account(kindComment, "replies per comment", human,
			func(k string) int { return linearReplies[k] },
			func(string) bool { return false }),
	}
	return led, nil
}

func takeoverTitle(key string) string {
	return "[" + linsync.DefaultTitlePrefix + "] Domain takeover detected: d" + strings.TrimPrefix(key, "tk-") + ".chaos.example"
}

// print writes the ledger: per kind, received = applied + deduplicated + dead-lettered, and the effects per item.
func (l *ledger) print(w io.Writer, took time.Duration) {
	fmt.Fprintf(w, "\nchaos ledger (%s)\n", took.Round(time.Second))
	fmt.Fprintf(w, "  %-24s %9s %9s %13s %14s %6s %8s  %s\n", "kind", "received", "applied", "deduplicated",
		"dead-lettered", "lost", "doubled", "balance")
	for _, k := range l.kinds {
		fmt.Fprintf(w, "  %-24s %9d %9d %13d %14d %6d %8d  %s\n", k.kind, k.received, k.applied, k.deduplicated(), k.dead,
			k.lost, k.doubled, map[bool]string{true: "ok", false: "DOES NOT BALANCE"}[k.ok()])
	}
	fmt.Fprintln(w, "\neffects per source item (Linear issues and comments, linsync records)")
	for _, k := range l.kinds {
		var parts []string
		ns := make([]int, 0, len(k.effects))
		for n := range k.effects {
			ns = append(ns, n)
		}
		sort.Ints(ns)
		for _, n := range ns {
			parts = append(parts, fmt.Sprintf("%d item(s) with %d", k.effects[n], n))
		}
		fmt.Fprintf(w, "  %-24s %-30s %s\n", k.kind, k.effect+":", strings.Join(parts, ", "))
	}
	if len(l.answers) > 0 {
		var parts []string
		for a, n := range l.answers {
			parts = append(parts, fmt.Sprintf("%s %d", a, n))
		}
		sort.Strings(parts)
		fmt.Fprintf(w, "\nanswers to submissions of items acknowledged before: %s\n", strings.Join(parts, "; "))
	}
	fmt.Fprintf(w, "inbox items still waiting for their workflow: %d\n", l.inboxDepth)
	if l.balanced() {
		fmt.Fprintln(w, "nothing lost, nothing doubled")
	} else {
		fmt.Fprintln(w, "FAILED: something was lost or doubled: "+l.progress(true))
	}
}
