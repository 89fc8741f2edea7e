//go:build !nodev

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/linsync/linsync/linear"
	"github.com/linsync/linsync/linear/lineartest"
)

// Kinds of source item the chaos load submits, each with its own ledger.
const (
	kindQuestion = "question"
	kindReply    = "reply"
	kindTakeover = "event (takeover)"
	kindLink     = "event (broken link)"
	kindHook     = "webhook (posted)"
	kindLinear   = "webhook (from Linear)"
	kindComment  = "comment (in Linear)"
)

// submission is one request of the load: a source item (its kind and key), first or again.
type submission struct {
	kind, key string
	again     bool
	// do sends the request once and returns its status and answer.
	do func(ctx context.Context) (int, []byte, error)
}

// chaosLoad sends the mixed load, keeps what each submission was answered, and injects the faults as it goes.
type chaosLoad struct {
	c   *chaosStack
	rnd *rand.Rand
	hc  *http.Client

	mu sync.Mutex
	// acks counts the acknowledged submissions per kind and key; answers what the API said to each.
	acks      map[string]map[string]int
	dupAnswer map[string]int // answers ("duplicate", "existing", ...) to submissions of items already acked
	questions map[string]string
	later     []submission // replies and duplicates, sent once what they follow was acknowledged
	humanDone []string     // comment bodies written by humans in Linear
	// sent counts the first submissions handed to the senders, of total: the progress the faults are timed by.
	sent  atomic.Int64
	total int
	// inFlight counts the submissions handed to the senders and not yet answered.
	inFlight atomic.Int64
}

func newChaosLoad(c *chaosStack) *chaosLoad {
	return &chaosLoad{c: c, rnd: rand.New(rand.NewPCG(42, 12)),
		hc:   &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}},
		acks: map[string]map[string]int{}, dupAnswer: map[string]int{}, questions: map[string]string{}}
}

// call sends an admin request to the workspace's API through the proxy.
func (c *chaosStack) call(ctx context.Context, method, path string, body any) (int, []byte, error) {
	return doJSON(ctx, http.DefaultClient, method, c.proxy+"/v1/workspaces/chaos"+path, c.admin, body)
}

func doJSON(ctx context.Context, hc *http.Client, method, url, token string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// originals are the first submissions of every item but replies (which follow their question), shuffled, so
// kinds and items arrive interleaved and out of any order.
func (l *chaosLoad) originals() []submission {
	o := l.c.o
	var subs []submission
	for i := range o.questions {
		subs = append(subs, l.question(fmt.Sprintf("q-%04d", i)))
	}
	for i := range o.takeovers {
		subs = append(subs, l.event(kindTakeover, fmt.Sprintf("tk-%04d", i), map[string]any{"event": "domain.takeover_detected",
			"domain": fmt.Sprintf("d%04d.chaos.example", i), "dangling_record": "CNAME to an unclaimed bucket"}))
	}
	for i := range o.links {
		host := fmt.Sprintf("h%d.chaos.example", i%o.hosts)
		subs = append(subs, l.event(kindLink, fmt.Sprintf("bl-%04d", i), map[string]any{"event": "link.broken",
			"link_id": fmt.Sprintf("lnk-%04d", i), "short_url": fmt.Sprintf("https://s.chaos.example/l%04d", i),
			"destination_url": "https://" + host + fmt.Sprintf("/p/%04d", i), "failure_type": "http_5xx",
			"tags": []string{"paid"}}))
	}
	for i := range o.hooks {
		subs = append(subs, l.webhook(i))
	}
	l.rnd.Shuffle(len(subs), func(i, j int) { subs[i], subs[j] = subs[j], subs[i] })
	return subs
}

func (l *chaosLoad) question(key string) submission {
	body := map[string]any{"title": "Chaos question " + key, "body": "Asked during the chaos run.",
		"asker_email": l.c.sd.Alice.Email, "external_id": key}
	return submission{kind: kindQuestion, key: key, do: func(ctx context.Context) (int, []byte, error) {
		return l.c.call(ctx, http.MethodPost, "/questions", body)
	}}
}

func (l *chaosLoad) reply(qkey, questionID string) submission {
	key := "r-" + qkey
	body := map[string]any{"body": "Chaos reply " + key, "author_email": l.c.sd.Bob.Email, "external_id": key}
	return submission{kind: kindReply, key: key, do: func(ctx context.Context) (int, []byte, error) {
		return l.c.call(ctx, http.MethodPost, "/questions/"+questionID+"/replies", body)
	}}
}

func (l *chaosLoad) event(kind, key string, ev map[string]any) submission {
	ev["id"] = key
	return submission{kind: kind, key: key, do: func(ctx context.Context) (int, []byte, error) {
		return l.c.call(ctx, http.MethodPost, "/events", ev)
	}}
}

// webhook is a signed delivery the load posts as Linear would: an Issue update for an issue no question is linked
// to, or a Project created. Its body is signed once: every retry and duplicate sends the same bytes.
func (l *chaosLoad) webhook(i int) submission {
	key := fmt.Sprintf("ent-%04d-%s", i, uuid.NewString()[:8])
	ev := map[string]any{"action": "update", "type": "Issue", "organizationId": l.c.sd.OrganizationID,
		"webhookId": "chaos-posted", "webhookTimestamp": time.Now().UnixMilli(), "createdAt": time.Now().UTC().Format(time.RFC3339Nano),
		"data": map[string]any{"id": key, "title": "Not linked " + key, "priority": 2}}
	if i%2 == 1 {
		ev["action"], ev["type"] = "create", "Project"
		ev["data"] = map[string]any{"id": key, "name": "Chaos project " + key}
	}
	body, _ := json.Marshal(ev)
	return l.signed(key, body, uuid.NewString())
}

func (l *chaosLoad) signed(key string, body []byte, deliveryID string) submission {
	sig := linear.Sign([]byte(l.c.secret), body)
	return submission{kind: kindHook, key: key, do: func(ctx context.Context) (int, []byte, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.c.proxy+"/webhooks/linear/chaos", bytes.NewReader(body))
		if err != nil {
			return 0, nil, err
		}
		id := deliveryID
		if repost, ok := ctx.Value(repostKey{}).(string); ok {
			id = repost
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(linear.HeaderDelivery, id)
		req.Header.Set(linear.HeaderSignature, sig)
		req.Header.Set("Linear-Timestamp", fmt.Sprint(time.Now().UnixMilli()))
		resp, err := l.hc.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, b, err
	}}
}

// submit sends a submission until it is acknowledged, as Linear and a well-behaved app retry, and records the
// answer. It gives up only when the run's time is up.
func (l *chaosLoad) submit(ctx context.Context, s submission) {
	wait := 200 * time.Millisecond
	for {
		status, body, err := s.do(ctx)
		if err == nil && status >= 200 && status < 300 {
			l.acked(s, status, body)
			return
		}
		if err == nil && status != http.StatusServiceUnavailable && status != http.StatusBadGateway && status < 500 {
			l.c.logf("%s %s refused for good: %d %s", s.kind, s.key, status, body)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// acked records an acknowledged submission and queues what follows it: a reply after its question, and, for one
// item in five, a second submission of the same item (a webhook's also under a new Linear-Delivery).
func (l *chaosLoad) acked(s submission, status int, body []byte) {
	var answer struct {
		Status   string         `json:"status"`
		Question map[string]any `json:"question"`
	}
	_ = json.Unmarshal(body, &answer)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.acks[s.kind] == nil {
		l.acks[s.kind] = map[string]int{}
	}
	seen := l.acks[s.kind][s.key] > 0
	l.acks[s.kind][s.key]++
	if seen {
		a := answer.Status
		if a == "" {
			a = fmt.Sprintf("HTTP %d", status)
		}
		l.dupAnswer[s.kind+": "+a]++
		return
	}
	if s.kind == kindQuestion {
		id, _ := answer.Question["id"].(string)
		l.questions[s.key] = id
		if len(l.questions) <= l.c.o.replies {
			l.later = append(l.later, l.reply(s.key, id))
		}
	}
	if s.again || l.rnd.Float64() >= l.c.o.dupRate {
		return
	}
	again := s
	again.again = true
	if s.kind == kindHook && l.rnd.IntN(2) == 0 {
		// The captured body re-posted under a new Linear-Delivery: the header is not signed.
		again = l.repost(s)
	}
	l.later = append(l.later, again)
}

// repost sends a webhook submission's exact bytes again under a new delivery id.
func (l *chaosLoad) repost(s submission) submission {
	orig, id := s.do, uuid.NewString()
	return submission{kind: s.kind, key: s.key, again: true, do: func(ctx context.Context) (int, []byte, error) {
		return orig(context.WithValue(ctx, repostKey{}, id))
	}}
}

type repostKey struct{}

func (l *chaosLoad) takeLater() (submission, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.later) == 0 {
		return submission{}, false
	}
	i := l.rnd.IntN(len(l.later))
	s := l.later[i]
	l.later[i] = l.later[len(l.later)-1]
	l.later = l.later[:len(l.later)-1]
	return s, true
}

// run sends the load with o.senders concurrent senders, the faults timed by how much of it was sent.
func (l *chaosLoad) run(ctx context.Context) error {
	subs := l.originals()
	l.total = len(subs)
	work := make(chan submission)
	var wg sync.WaitGroup
	for range l.c.o.senders {
		wg.Go(func() {
			for s := range work {
				l.submit(ctx, s)
				l.inFlight.Add(-1)
			}
		})
	}
	faults := l.faults(ctx)
	humans := l.humans(ctx)
	pace := time.NewTicker(time.Duration(float64(time.Second) / l.c.o.rate))
	defer pace.Stop()
	send := func(s submission) bool {
		l.inFlight.Add(1)
		select {
		case work <- s:
			return true
		case <-ctx.Done():
			l.inFlight.Add(-1)
			return false
		}
	}
	for i, s := range subs {
		select {
		case <-pace.C:
		case <-ctx.Done():
		}
		if send(s) {
			l.sent.Add(1)
		}
		if i%4 == 3 { // a reply or a duplicate every few items, interleaved with the rest
			if later, ok := l.takeLater(); ok {
				send(later)
			}
		}
	}
	// What is left: the last replies and duplicates. More are queued as submissions in flight are acknowledged, so
	// the load is done only when nothing is queued and nothing is in flight.
	for ctx.Err() == nil {
		if later, ok := l.takeLater(); ok {
			send(later)
			continue
		}
		if l.inFlight.Load() == 0 {
			if later, ok := l.takeLater(); ok {
				send(later)
				continue
			}
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	close(work)
	wg.Wait()
	<-faults
	<-humans
	return ctx.Err()
}

// faults kills workers, restarts Postgres and Temporal and sends rate-limit storms at set points of the load.
func (l *chaosLoad) faults(ctx context.Context) <-chan struct{} {
	o := l.c.o
	type fault struct {
		at   float64
		name string
		do   func() error
	}
	var plan []fault
	for k := range o.workerKills {
		w := l.c.workers[k%len(l.c.workers)]
		plan = append(plan, fault{at: 0.15 + 0.6*float64(k)/float64(max(o.workerKills, 1)), name: "SIGKILL " + w.name,
			do: func() error {
				w.kill()
				time.Sleep(2 * time.Second)
				return w.start()
			}})
	}
	if o.restartPostgres {
		plan = append(plan, fault{at: 0.35, name: "restart Postgres", do: func() error { return l.c.pg.restart(ctx) }})
	}
	if o.restartTemporal {
		plan = append(plan, fault{at: 0.55, name: "restart the Temporal dev server", do: func() error {
			l.c.stopT()
			var err error
			l.c.stopT, err = startDevTemporal(ctx, o.cli, l.c.dir+"/temporal", l.c.tHost, 0, "")
			return err
		}})
	}
	for k := range o.storms {
		status := []int{http.StatusBadRequest, http.StatusTooManyRequests}[k%2]
		plan = append(plan, fault{at: 0.1 + 0.8*float64(k)/float64(max(o.storms, 1)), name: fmt.Sprintf("rate-limit storm (HTTP %d)", status),
			do: func() error {
				l.c.fake.InjectRateLimit(lineartest.RateLimit{Requests: 25, Status: status, RetryAfter: 2 * time.Second})
				return nil
			}})
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for len(plan) > 0 && ctx.Err() == nil {
			progress := float64(l.sent.Load()) / float64(max(l.total, 1))
			rest := plan[:0]
			for _, f := range plan {
				if progress < f.at {
					rest = append(rest, f)
					continue
				}
				l.c.logf("%s (%.0f%% of the load sent)", f.name, 100*progress)
				if err := f.do(); err != nil {
					l.c.logf("%s failed: %v", f.name, err)
				}
			}
			plan = rest
			time.Sleep(100 * time.Millisecond)
		}
	}()
	return done
}

// humans act in Linear on the questions' issues while the load runs: comments (each must come back as exactly one
// reply) and priority changes, with webhook faults: reordered, duplicated and late byte-identical retries.
func (l *chaosLoad) humans(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		modes := []lineartest.DeliveryFault{{Mode: lineartest.DeliveryReorder, Count: 3},
			{Mode: lineartest.DeliveryDuplicate}, {Mode: lineartest.DeliveryResend, Delay: 8 * time.Second}}
		for n := 0; n < l.c.o.human && ctx.Err() == nil; {
			issue := l.someIssue()
			if issue == "" {
				time.Sleep(200 * time.Millisecond)
				continue
			}
			if n%3 == 0 {
				l.c.fake.InjectDeliveryFault(modes[(n/3)%len(modes)])
			}
			who := l.c.fake.Human(l.c.sd.Alice.Email)
			if n%2 == 0 {
				body := fmt.Sprintf("Human comment %04d in Linear", n)
				if _, err := who.Comment(issue, body); err == nil {
					l.mu.Lock()
					l.humanDone = append(l.humanDone, body)
					l.mu.Unlock()
				}
			} else {
				_ = who.SetPriority(issue, 1+n%4)
			}
			n++
			time.Sleep(time.Duration(20+l.rnd.IntN(60)) * time.Millisecond)
		}
	}()
	return done
}

// someIssue picks the Linear issue of a question already filed, or "" when none is yet.
func (l *chaosLoad) someIssue() string {
	st, err := fakeState(l.c.fakeURL)
	if err != nil {
		return ""
	}
	var ids []string
	for _, is := range st.Issues {
		if strings.HasPrefix(is.Title, "Chaos question ") {
			ids = append(ids, is.ID)
		}
	}
	if len(ids) == 0 {
		return ""
	}
	return ids[l.rnd.IntN(len(ids))]
}

// fakeLinearState is what the ledger reads of the fake Linear's state.
type fakeLinearState struct {
	Issues []struct {
		ID          string  `json:"id"`
		Title       string  `json:"title"`
		Description *string `json:"description"`
	} `json:"issues"`
	Comments []struct {
		ID   string `json:"id"`
		Body string `json:"body"`
	} `json:"comments"`
}

func fakeState(base string) (*fakeLinearState, error) {
	resp, err := http.Get(base + "/_fake/state")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var st fakeLinearState
	return &st, json.NewDecoder(resp.Body).Decode(&st)
}
