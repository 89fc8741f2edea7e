//go:build !nodev

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"time"

	"github.com/linsync/linsync/linear/lineartest"
)

// runFakeLinear serves the fake Linear: a seeded workspace whose GraphQL endpoint checks every request against the
// real schema and which posts signed webhooks, so the whole loop runs without a Linear account.
func runFakeLinear(ctx context.Context, tc ToolConfig, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("fake-linear", flag.ContinueOnError)
	fs.SetOutput(stdout)
	addr := fs.String("addr", "127.0.0.1:8090", "listen address")
	schema := fs.String("schema", tc.LinearSchema, "a newer Linear schema.graphql to validate against (env LINEAR_SCHEMA; default: the embedded one)")
	hookURL := fs.String("webhook-url", "", "register a webhook posting to this URL (e.g. http://127.0.0.1:8080/webhooks/linear)")
	hookSecret := fs.String("webhook-secret", "fake-linear-webhook-secret", "signing secret of the -webhook-url webhook")
	retries := fs.String("webhook-retries", string(lineartest.RetryIdentical),
		"how a failed delivery is retried: identical (the first attempt's bytes, as Linear is reported to) or restamped (a new webhookTimestamp, signed again)")
	if err := fs.Parse(args); err != nil {
		return err
	}

	srv, err := lineartest.New(lineartest.Options{
		SchemaPath: *schema,
		// Linear retries after 1 min, 1 h and 6 h; compressed so a newcomer sees the behaviour.
		WebhookRetryDelays: []time.Duration{time.Second, 10 * time.Second, time.Minute},
		WebhookRetries:     lineartest.RetryMode(*retries),
		Logf:               log.New(stdout, "fake-linear: ", log.LstdFlags).Printf,
	})
	if err != nil {
		return fmt.Errorf("start fake linear: %w", err)
	}
	defer srv.Close()
	sd := srv.Seed()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *addr, err)
	}
	base := "http://" + ln.Addr().String()
	var hookID string
	if *hookURL != "" {
		hookID = srv.AddWebhook(*hookURL, *hookSecret)
	}
	printFakeLinearHelp(stdout, base, sd, hookID, *hookSecret)

	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve fake linear: %w", err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(shutdown); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("stop fake linear: %w", err)
	}
	return nil
}

func printFakeLinearHelp(w io.Writer, base string, sd lineartest.Seeded, hookID, hookSecret string) {
	fmt.Fprintf(w, `Fake Linear listening on %[1]s

GraphQL endpoint:  %[1]s/graphql
API key (acts as %[2]s <%[3]s>):  %[4]s
OAuth token (Bearer):  %[5]s

Teams:
  %[6]s (%[7]s, triage on)   id %[8]s
  %[9]s (%[10]s, triage off) id %[11]s
Humans: %[12]s, %[13]s

Point linsync at it: %[14]s=%[1]s/graphql, and connect a workspace with the API key above.
`, base, sd.Bot.Name, sd.Bot.Email, sd.APIKey, sd.OAuthToken,
		sd.Triage.Name, sd.Triage.Key, sd.Triage.ID, sd.Plain.Name, sd.Plain.Key, sd.Plain.ID, sd.Alice.Email, sd.Bob.Email, envLinearAPIURL.name)
	if hookID != "" {
		fmt.Fprintf(w, "Webhook %s registered for all teams, signing secret %q.\n", hookID, hookSecret)
	} else {
		fmt.Fprintln(w, "No webhook yet: pass -webhook-url, or let linsync register one with webhookCreate.")
	}
	fmt.Fprintf(w, `
Ask Linear who you are:
  curl -s %[1]s/graphql -H 'Authorization: %[2]s' -H 'Content-Type: application/json' \
    -d '{"query":"query Viewer { viewer { id name email } }","operationName":"Viewer"}'

Act as a human (ISSUE is an issue id or identifier such as %[3]s-1):
  curl -s -X POST %[1]s/_fake/human/create-issue -d '{"as":"%[4]s","team":"%[3]s","title":"Printer on fire"}'
  curl -s -X POST %[1]s/_fake/human/set-state    -d '{"as":"%[4]s","issueId":"ISSUE","state":"started"}'
  curl -s -X POST %[1]s/_fake/human/set-assignee -d '{"as":"%[4]s","issueId":"ISSUE","assignee":"%[5]s"}'
  curl -s -X POST %[1]s/_fake/human/set-priority -d '{"as":"%[4]s","issueId":"ISSUE","priority":1}'
  curl -s -X POST %[1]s/_fake/human/set-title    -d '{"as":"%[4]s","issueId":"ISSUE","title":"New title"}'
  curl -s -X POST %[1]s/_fake/human/comment      -d '{"as":"%[4]s","issueId":"ISSUE","body":"On it"}'
  curl -s -X POST %[1]s/_fake/human/edit-comment -d '{"as":"%[4]s","commentId":"COMMENT","body":"On it, ETA Friday"}'
  curl -s -X POST %[1]s/_fake/human/delete-comment -d '{"as":"%[4]s","commentId":"COMMENT"}'
  curl -s -X POST %[1]s/_fake/human/move-issue   -d '{"as":"%[4]s","issueId":"ISSUE","team":"ENG"}'
  curl -s -X POST %[1]s/_fake/human/delete-issue -d '{"as":"%[4]s","issueId":"ISSUE"}'

Look inside:    curl -s %[1]s/_fake/state | curl -s %[1]s/_fake/requests | curl -s %[1]s/_fake/deliveries
Inject faults:  curl -s -X POST %[1]s/_fake/faults/ratelimit -d '{"count":3,"status":400,"retryAfterMs":30000}'
                curl -s -X POST %[1]s/_fake/faults/status    -d '{"count":2,"status":503}'
                curl -s -X POST %[1]s/_fake/faults/latency   -d '{"latencyMs":800}'
                curl -s -X POST %[1]s/_fake/faults/delivery  -d '{"mode":"duplicate","count":1}'   (drop|duplicate|delay|reorder|resend)
Retries:        curl -s -X POST %[1]s/_fake/webhooks/retries -d '{"mode":"restamped"}'   (identical, the default, or restamped)
`, base, sd.APIKey, sd.Triage.Key, sd.Alice.Email, sd.Bob.Email)
}
