package lineartest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/linsync/linsync/linear"
)

// Webhook data payloads, with the keys and JSON types of Linear's real deliveries (see the payload shape test).

func (s *Server) userChild(id *string) any {
	if id == nil || s.users[*id] == nil {
		return nil
	}
	u := s.users[*id]
	return map[string]any{"id": u.ID, "name": u.Name, "email": u.Email, "avatarUrl": nil, "url": s.userURL(u)}
}

func (s *Server) issueData(is *issue) map[string]any {
	st := s.states[is.StateID]
	t := s.teams[is.TeamID]
	labels := []any{}
	for _, id := range is.LabelIDs {
		if l := s.labels[id]; l != nil {
			labels = append(labels, map[string]any{"id": l.ID, "name": l.Name, "color": l.Color, "parentId": strPtr(l.ParentID)})
		}
	}
	var estimate any
	if is.Estimate != nil {
		estimate = float64(*is.Estimate)
	}
	d := map[string]any{
		"id": is.ID, "createdAt": iso(is.CreatedAt), "updatedAt": iso(is.UpdatedAt), "archivedAt": isoPtr(is.ArchivedAt),
		"number": is.Number, "title": is.Title, "priority": is.Priority, "estimate": estimate,
		"sortOrder": float64(-is.Number), "prioritySortOrder": float64(0), "startedAt": isoPtr(is.StartedAt),
		"completedAt": isoPtr(is.CompletedAt), "startedTriageAt": nil, "triagedAt": nil, "canceledAt": isoPtr(is.CanceledAt),
		"autoClosedAt": nil, "autoArchivedAt": nil, "dueDate": strPtr(is.DueDate), "slaStartedAt": nil,
		"slaBreachesAt": nil, "trashed": boolPtr(is.Trashed), "snoozedUntilAt": nil, "teamId": is.TeamID,
		"cycleId": nil, "projectId": nil, "projectMilestoneId": nil, "previousIdentifiers": append([]string{}, is.PreviousIdentifiers...),
		"creatorId": is.CreatorID, "externalUserCreatorId": nil, "assigneeId": strPtr(is.AssigneeID),
		"stateId": is.StateID, "subIssueSortOrder": nil, "priorityLabel": priorityLabel(is.Priority),
		"subscriberIds": slices.Clone(is.SubscriberIDs), "parentId": strPtr(is.ParentID), "labelIds": slices.Clone(is.LabelIDs),
		"labels": labels, "description": strPtr(is.Description), "descriptionData": descriptionData(is.Description),
		"identifier": is.Identifier, "url": s.issueURL(is), "botActor": nil, "reactionData": []any{},
		"team": map[string]any{"id": t.ID, "key": t.Key, "name": t.Name},
	}
	if st != nil {
		d["state"] = map[string]any{"id": st.ID, "color": st.Color, "name": st.Name, "type": st.Type}
	}
	if a := s.userChild(is.AssigneeID); a != nil {
		d["assignee"] = a
	}
	return d
}

func (s *Server) commentData(c *comment) map[string]any {
	is := s.issues[c.IssueID]
	d := map[string]any{
		"id": c.ID, "createdAt": iso(c.CreatedAt), "updatedAt": iso(c.UpdatedAt), "archivedAt": isoPtr(c.ArchivedAt),
		"body": c.Body, "issueId": c.IssueID, "parentId": strPtr(c.ParentID), "userId": c.UserID, "editedAt": isoPtr(c.EditedAt),
		"reactionData": []any{}, "botActor": nil, "user": s.userChild(&c.UserID),
	}
	if is != nil {
		d["issue"] = map[string]any{"id": is.ID, "title": is.Title, "identifier": is.Identifier, "teamId": is.TeamID,
			"url": s.issueURL(is), "team": map[string]any{"id": is.TeamID, "key": s.teams[is.TeamID].Key, "name": s.teams[is.TeamID].Name}}
	}
	return d
}

func (s *Server) labelData(l *label) map[string]any {
	return map[string]any{"id": l.ID, "createdAt": iso(l.CreatedAt), "updatedAt": iso(l.UpdatedAt), "archivedAt": nil,
		"name": l.Name, "color": l.Color, "description": nil, "teamId": strPtr(l.TeamID), "parentId": strPtr(l.ParentID),
		"isGroup": l.IsGroup, "creatorId": nil}
}

// emit queues a delivery of ev to every enabled webhook subscribed to its type and team. Callers hold s.mu.
func (s *Server) emit(ev event) {
	for _, wh := range s.webhooks {
		if !wh.Enabled || !slices.Contains(wh.ResourceTypes, ev.typ) {
			continue
		}
		if !wh.AllPublicTeams && (wh.TeamID == nil || *wh.TeamID != ev.teamID) {
			continue
		}
		if t := s.teams[ev.teamID]; wh.AllPublicTeams && t != nil && t.Private {
			continue // as in Linear: "all public teams" leaves private teams out
		}
		s.hooks.enqueue(&delivery{ID: uuid.NewString(), WebhookID: wh.ID, ev: ev})
	}
}

// RetryMode is how the fake retries a failed delivery. Public reports say Linear's retries are byte-identical to
// the first attempt (only the unsigned Linear-Timestamp header is fresh), so a receiver that checks the signed
// webhookTimestamp against a short window refuses every retry; the fake can send them either way.
type RetryMode string

// Retry modes.
const (
	// RetryIdentical re-sends the first attempt: same body (with its original webhookTimestamp), same
	// Linear-Signature, same Linear-Delivery; only Linear-Timestamp is fresh.
	RetryIdentical RetryMode = "identical"
	// RetryRestamped renders the body again with a new webhookTimestamp and signs it again, same Linear-Delivery.
	RetryRestamped RetryMode = "restamped"
)

func (m RetryMode) valid() bool { return m == RetryIdentical || m == RetryRestamped }

// SetWebhookRetries changes how later retries are made (see RetryMode).
func (s *Server) SetWebhookRetries(m RetryMode) error {
	if !m.valid() {
		return fmt.Errorf("webhook retries %q: want %s or %s", m, RetryIdentical, RetryRestamped)
	}
	s.mu.Lock()
	s.retries = m
	s.mu.Unlock()
	return nil
}

// WebhookRetries reports how retries are made.
func (s *Server) WebhookRetries() RetryMode {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.retries
}

// body renders the delivery's JSON with webhookTimestamp at.
func (s *Server) body(d *delivery, at time.Time) []byte {
	ev := d.ev
	b := map[string]any{
		"action": ev.action, "type": ev.typ, "data": ev.data, "organizationId": s.org.ID,
		"createdAt": iso(ev.at), "webhookId": d.WebhookID, "webhookTimestamp": at.UnixMilli(), "actor": nil,
	}
	if ev.url != "" {
		b["url"] = ev.url
	}
	if ev.updatedFrom != nil {
		b["updatedFrom"] = ev.updatedFrom
	}
	if ev.actor != nil {
		b["actor"] = map[string]any{"id": ev.actor.ID, "name": ev.actor.Name, "email": ev.actor.Email,
			"url": s.userURL(ev.actor), "type": "user"}
	}
	out, _ := json.Marshal(b)
	return out
}

// Delivery is one webhook delivery attempt the fake made (or dropped).
type Delivery struct {
	ID        string // Linear-Delivery
	WebhookID string
	URL       string
	Event     string // Linear-Event
	Action    string
	Body      []byte
	Attempt   int
	Time      time.Time
	// Status is the receiver's HTTP status, 0 when the request failed or was dropped.
	Status  int
	Err     string
	Dropped bool
}

type delivery struct {
	ID, WebhookID string
	ev            event
	attempt       int
	// body and signature are the first attempt's, which a byte-identical retry sends again.
	body      []byte
	signature string
}

// dispatcher sends deliveries one at a time, in order, so tests see Linear's order unless a fault changes it.
type dispatcher struct {
	s      *Server
	client *http.Client

	mu      sync.Mutex
	queue   []*delivery
	held    []*delivery
	pending int
	log     []Delivery
	wake    chan struct{}
	done    chan struct{}
	stopped bool
}

func newDispatcher(s *Server) *dispatcher {
	d := &dispatcher{s: s, client: &http.Client{Timeout: s.opts.WebhookTimeout},
		wake: make(chan struct{}, 1), done: make(chan struct{})}
	go d.run()
	return d
}

func (d *dispatcher) enqueue(dl *delivery) {
	d.mu.Lock()
	d.queue = append(d.queue, dl)
	d.pending++
	d.mu.Unlock()
	d.poke()
}

func (d *dispatcher) poke() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func (d *dispatcher) close() {
	d.mu.Lock()
	if !d.stopped {
		d.stopped = true
		close(d.done)
	}
	d.mu.Unlock()
}

func (d *dispatcher) run() {
	for {
		select {
		case <-d.done:
			return
		case <-d.wake:
		}
		for {
			d.mu.Lock()
			if len(d.queue) == 0 {
				d.mu.Unlock()
				break
			}
			dl := d.queue[0]
			d.queue = d.queue[1:]
			d.mu.Unlock()
			d.route(dl)
		}
	}
}

// route applies the next delivery fault (first attempts only) and sends.
func (d *dispatcher) route(dl *delivery) {
	if dl.attempt > 0 {
		d.send(dl)
		return
	}
	d.s.mu.Lock()
	f, ok := d.s.faults.takeDelivery()
	last := ok && len(d.s.faults.delivery) == 0 || ok && d.s.faults.delivery[0].Mode != f.Mode
	d.s.mu.Unlock()
	switch {
	case !ok:
		d.send(dl)
	case f.Mode == DeliveryDrop:
		d.record(Delivery{ID: dl.ID, WebhookID: dl.WebhookID, Event: dl.ev.typ, Action: dl.ev.action, Time: d.s.now(), Dropped: true})
		d.finish()
	case f.Mode == DeliveryDuplicate:
		d.sendAgain(dl, 0)
	case f.Mode == DeliveryDelay:
		time.AfterFunc(f.Delay, func() { d.send(dl) })
	case f.Mode == DeliveryResend:
		// The answer to the first attempt is lost on the way back (Linear timed out): whatever it was, Linear
		// retries, late, as its retry mode says.
		d.sendAgain(dl, f.Delay)
	case f.Mode == DeliveryReorder:
		d.mu.Lock()
		d.held = append(d.held, dl)
		var flush []*delivery
		if last {
			flush, d.held = d.held, nil
		}
		d.mu.Unlock()
		for _, h := range slices.Backward(flush) {
			d.send(h)
		}
	}
}

// sendAgain sends dl, then the same delivery once more: at once (a duplicate), or as a retry after the delay.
func (d *dispatcher) sendAgain(dl *delivery, after time.Duration) {
	d.mu.Lock()
	d.pending++
	d.mu.Unlock()
	d.send(dl)
	again := *dl
	if after <= 0 {
		d.send(&again)
		return
	}
	again.attempt++
	time.AfterFunc(after, func() { d.enqueueRetry(&again) })
}

// send makes one attempt; a failure schedules a retry or, after the last one, counts against the webhook.
func (d *dispatcher) send(dl *delivery) {
	s := d.s
	s.mu.Lock()
	wh := s.webhooks[dl.WebhookID]
	var url, secret string
	enabled := wh != nil && wh.Enabled
	if enabled {
		url, secret = wh.URL, wh.Secret
	}
	s.mu.Unlock()
	if !enabled {
		d.finish()
		return
	}
	now := s.now()
	s.mu.Lock()
	identical := s.retries == RetryIdentical
	s.mu.Unlock()
	body, signature := dl.body, dl.signature
	if body == nil || !identical {
		body = s.body(dl, now)
		signature = linear.Sign([]byte(secret), body)
		dl.body, dl.signature = body, signature
	}
	rec := Delivery{ID: dl.ID, WebhookID: dl.WebhookID, URL: url, Event: dl.ev.typ, Action: dl.ev.action, Body: body, Attempt: dl.attempt + 1, Time: now}
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, url, bytes.NewReader(body))
	if err == nil {
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
		req.Header.Set("Accept-Charset", "utf-8")
		req.Header.Set("User-Agent", "Linear-Webhook")
		req.Header.Set(linear.HeaderDelivery, dl.ID)
		req.Header.Set(linear.HeaderEvent, dl.ev.typ)
		req.Header.Set(linear.HeaderSignature, signature)
		req.Header.Set("Linear-Timestamp", itoa64(now.UnixMilli()))
		var resp *http.Response
		if resp, err = d.client.Do(req); err == nil {
			rec.Status = resp.StatusCode
			resp.Body.Close()
		}
	}
	if err != nil {
		rec.Err = err.Error()
	}
	d.record(rec)
	if s.opts.Logf != nil {
		s.opts.Logf("webhook %s %s/%s delivery %s attempt %d → status %d %s", url, dl.ev.typ, dl.ev.action, dl.ID, rec.Attempt, rec.Status, rec.Err)
	}
	ok := rec.Status == http.StatusOK
	if !ok && dl.attempt < len(s.opts.WebhookRetryDelays) {
		next := *dl
		next.attempt++
		time.AfterFunc(s.opts.WebhookRetryDelays[dl.attempt], func() { d.enqueueRetry(&next) })
		return
	}
	s.mu.Lock()
	if wh := s.webhooks[dl.WebhookID]; wh != nil {
		if ok {
			wh.failures = 0
		} else if wh.failures++; wh.failures >= s.opts.DisableAfterFailures {
			// Linear may disable a webhook whose URL keeps failing; it must be re-enabled by hand.
			wh.Enabled = false
		}
	}
	s.mu.Unlock()
	d.finish()
}

func (d *dispatcher) enqueueRetry(dl *delivery) {
	d.mu.Lock()
	d.queue = append(d.queue, dl)
	d.mu.Unlock()
	d.poke()
}

func (d *dispatcher) record(r Delivery) {
	d.mu.Lock()
	d.log = append(d.log, r)
	d.mu.Unlock()
}

func (d *dispatcher) finish() {
	d.mu.Lock()
	d.pending--
	d.mu.Unlock()
}

func (d *dispatcher) flush(ctx context.Context) error {
	t := time.NewTicker(2 * time.Millisecond)
	defer t.Stop()
	for {
		d.mu.Lock()
		idle := d.pending <= len(d.held)
		d.mu.Unlock()
		if idle {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Deliveries returns every webhook delivery attempt so far, in the order made.
func (s *Server) Deliveries() []Delivery {
	s.hooks.mu.Lock()
	defer s.hooks.mu.Unlock()
	return slices.Clone(s.hooks.log)
}
