// Package e2e holds linsync's end-to-end tests: each boots the real stack (a database of its own, the shared
// Temporal dev server, a worker built by worker.NewActivities as cmd/linsync builds it, the API behind httptest, and
// the fake Linear at the network edge) and drives it as Linear, the Q&A app, a monitor or an operator would.
// `go test ./...` runs them with every other test; the package has no code of its own.
package e2e
