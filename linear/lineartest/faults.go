package lineartest

import (
	"net/http"
	"time"
)

// RateLimit is an injected rate limit. Status 400 (the default) answers like Linear: HTTP 400, a RATELIMITED error
// and X-RateLimit-Requests-Remaining: 0 with the reset RetryAfter from now; 429 answers with a Retry-After header.
type RateLimit struct {
	// Requests is how many of the next requests are refused. Default 1.
	Requests   int
	Status     int
	RetryAfter time.Duration
}

// DeliveryMode is a webhook delivery fault.
type DeliveryMode string

// Webhook delivery faults.
const (
	// DeliveryDrop loses the delivery: it is recorded but never sent.
	DeliveryDrop DeliveryMode = "drop"
	// DeliveryDuplicate sends the delivery twice with the same Linear-Delivery id.
	DeliveryDuplicate DeliveryMode = "duplicate"
	// DeliveryDelay sends the delivery after Delay, letting later ones overtake it.
	DeliveryDelay DeliveryMode = "delay"
	// DeliveryReorder holds Count deliveries and sends them in reverse order.
	DeliveryReorder DeliveryMode = "reorder"
	// DeliveryResend sends the delivery and, whatever the answer, retries it after Delay, as Linear does when the
	// answer to an attempt never reached it: a late retry (byte-identical unless the retries are re-stamped).
	DeliveryResend DeliveryMode = "resend"
)

// DeliveryFault applies Mode to the next Count webhook deliveries.
type DeliveryFault struct {
	Mode  DeliveryMode
	Count int
	Delay time.Duration
}

// faults are the pending injected faults; each GraphQL request takes at most one of each kind.
type faults struct {
	rateLimits []RateLimit
	statuses   []int
	latency    time.Duration
	delivery   []DeliveryFault
	// lostAnswers counts, per operation name, the requests still to be applied whose answer is then lost.
	lostAnswers map[string]int
}

type takenFault struct {
	rateLimit *RateLimit
	status    int
	latency   time.Duration
}

// take pops the fault for the next request. Callers hold s.mu.
func (f *faults) take() takenFault {
	t := takenFault{latency: f.latency}
	switch {
	case len(f.rateLimits) > 0:
		rl := f.rateLimits[0]
		t.rateLimit = &rl
		if f.rateLimits[0].Requests--; f.rateLimits[0].Requests <= 0 {
			f.rateLimits = f.rateLimits[1:]
		}
	case len(f.statuses) > 0:
		t.status, f.statuses = f.statuses[0], f.statuses[1:]
	}
	return t
}

// InjectRateLimit refuses the next rl.Requests GraphQL requests as rate limited.
func (s *Server) InjectRateLimit(rl RateLimit) {
	rl.Requests = max(rl.Requests, 1)
	s.mu.Lock()
	s.faults.rateLimits = append(s.faults.rateLimits, rl)
	s.mu.Unlock()
}

// statusError is the GraphQL error Linear sends with an HTTP status: its SDK's error types, so an injected 403 is a
// refusal a client must not retry and a 503 an outage it should.
func statusError(status int) *gqlErr {
	typ, code := "internal error", "INTERNAL_SERVER_ERROR"
	switch status {
	case http.StatusBadRequest:
		typ, code = "invalid input", "INVALID_INPUT"
	case http.StatusUnauthorized:
		typ, code = "authentication error", "AUTHENTICATION_ERROR"
	case http.StatusForbidden:
		typ, code = "forbidden", "FORBIDDEN"
	case http.StatusNotFound:
		typ, code = "invalid input", "NOT_FOUND"
	}
	return &gqlErr{Message: http.StatusText(status), Extensions: map[string]any{"type": typ, "code": code, "statusCode": status}}
}

// InjectStatus answers the next count GraphQL requests with an HTTP status (e.g. 500, 502, 503).
func (s *Server) InjectStatus(status, count int) {
	s.mu.Lock()
	for range max(count, 1) {
		s.faults.statuses = append(s.faults.statuses, status)
	}
	s.mu.Unlock()
}

// SetLatency delays every GraphQL answer by d (0 turns it off).
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	s.faults.latency = d
	s.mu.Unlock()
}

// LoseAnswers applies the next count requests of the named GraphQL operation (e.g. "WebhookUpdate") and then loses
// their answers: the connection is cut after the change was made, as when Linear's answer never reaches the client.
func (s *Server) LoseAnswers(operation string, count int) {
	s.mu.Lock()
	if s.faults.lostAnswers == nil {
		s.faults.lostAnswers = map[string]int{}
	}
	s.faults.lostAnswers[operation] += max(count, 1)
	s.mu.Unlock()
}

// takeLostAnswer reports whether the answer to an applied request of operation is to be lost. Callers hold s.mu.
func (f *faults) takeLostAnswer(operation string) bool {
	if f.lostAnswers[operation] <= 0 {
		return false
	}
	f.lostAnswers[operation]--
	return true
}

// InjectDeliveryFault applies f to the next f.Count webhook deliveries.
func (s *Server) InjectDeliveryFault(f DeliveryFault) {
	f.Count = max(f.Count, 1)
	s.mu.Lock()
	s.faults.delivery = append(s.faults.delivery, f)
	s.mu.Unlock()
}

// takeDelivery pops the fault for the next delivery. Callers hold s.mu.
func (f *faults) takeDelivery() (DeliveryFault, bool) {
	if len(f.delivery) == 0 {
		return DeliveryFault{}, false
	}
	d := f.delivery[0]
	if f.delivery[0].Count--; f.delivery[0].Count <= 0 {
		f.delivery = f.delivery[1:]
	}
	return d, true
}

func ms(n int64) time.Duration { return time.Duration(n) * time.Millisecond }
