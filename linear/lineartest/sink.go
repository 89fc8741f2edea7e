package lineartest

import (
	"encoding/json"
	"io"
	"net/http"
	"sync"
)

// sinks record what is posted to /_fake/sink/{name}: a stand-in for a Slack incoming webhook or any other receiver
// of linsync's outbound messages, so the dev stack (and the README's examples) can point notifications somewhere
// and read back what arrived.
type sinks struct {
	mu     sync.Mutex
	bodies map[string][]json.RawMessage
}

// maxSinkBodies bounds what a sink keeps: the newest are kept.
const maxSinkBodies = 1000

func (k *sinks) serve(w http.ResponseWriter, r *http.Request, name string) {
	w.Header().Set("Content-Type", "application/json")
	switch r.Method {
	case http.MethodPost:
		b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil || !json.Valid(b) {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"the body must be JSON"}`))
			return
		}
		k.mu.Lock()
		if k.bodies == nil {
			k.bodies = map[string][]json.RawMessage{}
		}
		k.bodies[name] = append(k.bodies[name], b)
		if n := len(k.bodies[name]); n > maxSinkBodies {
			k.bodies[name] = k.bodies[name][n-maxSinkBodies:]
		}
		k.mu.Unlock()
		_, _ = w.Write([]byte(`{"ok":true}`))
	case http.MethodGet:
		_ = json.NewEncoder(w).Encode(map[string]any{"messages": k.get(name)})
	default:
		http.Error(w, "use GET or POST", http.StatusMethodNotAllowed)
	}
}

func (k *sinks) get(name string) []json.RawMessage {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := append([]json.RawMessage{}, k.bodies[name]...)
	return out
}

// Sink returns the bodies posted to /_fake/sink/{name}, oldest first.
func (s *Server) Sink(name string) []json.RawMessage { return s.sinks.get(name) }
