package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// dlqCmd is the operator's view of dead letters: the same calls as the /v1 failed-events API.
func dlqCmd(ctx context.Context, tc ToolConfig, args []string, stdout io.Writer) error {
	const usage = "usage: linsync dlq list|show ID|replay (ID | --kind K --error-class C) [--dry-run] [--workspace WS]"
	if len(args) == 0 {
		return fmt.Errorf("%s", usage)
	}
	fs := flag.NewFlagSet("dlq "+args[0], flag.ContinueOnError)
	fs.SetOutput(stdout)
	apiURL := fs.String("api", tc.APIURL, "linsync API base URL (env LINSYNC_API_URL)")
	ws := fs.String("workspace", tc.Workspace, "workspace id or slug (env LINSYNC_WORKSPACE)")
	kind := fs.String("kind", "", "filter: workflow kind, e.g. LinearDelivery")
	class := fs.String("error-class", "", "filter: error class, e.g. LinearRateLimited")
	status := fs.String("status", "open", "filter for list: open, replayed or empty for all")
	dry := fs.Bool("dry-run", false, "show what a replay would change without replaying")
	rate := fs.Float64("rate", 5, "bulk replays per second (at most 20)")
	// Flags may come before or after the id, as operators type them.
	var pos []string
	for rest := args[1:]; ; {
		if err := fs.Parse(rest); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		pos, rest = append(pos, fs.Arg(0)), fs.Args()[1:]
	}
	token := tc.Token
	if token == "" || *ws == "" {
		return fmt.Errorf("set LINSYNC_TOKEN (an admin token) and --workspace (or LINSYNC_WORKSPACE)")
	}
	c := &apiClient{base: strings.TrimRight(*apiURL, "/") + "/v1/workspaces/" + url.PathEscape(*ws), token: token,
		http: &http.Client{Timeout: 40 * time.Second}}
	q := url.Values{}
	for k, v := range map[string]string{"kind": *kind, "error_class": *class} {
		if v != "" {
			q.Set(k, v)
		}
	}
	switch args[0] {
	case "list":
		if *status != "" {
			q.Set("status", *status)
		}
		var out struct {
			FailedEvents []struct {
				ID           string    `json:"id"`
				Kind         string    `json:"kind"`
				WorkflowID   string    `json:"workflow_id"`
				ErrorClass   string    `json:"error_class"`
				Status       string    `json:"status"`
				Attempts     int       `json:"attempts"`
				LastFailedAt time.Time `json:"last_failed_at"`
			} `json:"failed_events"`
		}
		if err := c.do(ctx, http.MethodGet, "/failed-events?"+q.Encode(), nil, &out); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tKIND\tERROR CLASS\tATTEMPTS\tLAST FAILED\tSTATUS\tWORKFLOW")
		for _, d := range out.FailedEvents {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", d.ID, d.Kind, d.ErrorClass, d.Attempts,
				d.LastFailedAt.Format(time.RFC3339), d.Status, d.WorkflowID)
		}
		return tw.Flush()
	case "show":
		if len(pos) != 1 {
			return fmt.Errorf("%s", usage)
		}
		var out json.RawMessage
		if err := c.do(ctx, http.MethodGet, "/failed-events/"+url.PathEscape(pos[0]), nil, &out); err != nil {
			return err
		}
		return printJSON(stdout, out)
	case "replay":
		if *dry {
			q = url.Values{"dry_run": {"true"}}
		} else {
			q = url.Values{}
		}
		if len(pos) == 1 {
			var out json.RawMessage
			if err := c.do(ctx, http.MethodPost, "/failed-events/"+url.PathEscape(pos[0])+"/replay?"+q.Encode(), nil, &out); err != nil {
				return err
			}
			if *dry {
				return printPlans(stdout, out)
			}
			return printJSON(stdout, out)
		}
		body := map[string]any{"kind": *kind, "error_class": *class, "rate_per_second": *rate}
		if *dry {
			var out json.RawMessage
			if err := c.do(ctx, http.MethodPost, `/failed-events:replay?dry_run=true`, body, &out); err != nil {
				return err
			}
			return printPlans(stdout, out)
		}
		var started struct {
			RequestID string `json:"request_id"`
		}
		if err := c.do(ctx, http.MethodPost, `/failed-events:replay`, body, &started); err != nil {
			return err
		}
		return c.followReplay(ctx, started.RequestID, stdout)
	}
	return fmt.Errorf("%s", usage)
}

// bulkProgress is the API's progress of a bulk replay.
type bulkProgress struct {
	Finished bool           `json:"finished"`
	Total    int            `json:"total"`
	Done     int            `json:"done"`
	Counts   map[string]int `json:"counts"`
}

// followReplay polls a bulk replay and draws a progress bar until it is done.
func (c *apiClient) followReplay(ctx context.Context, requestID string, stdout io.Writer) error {
	last := 0
	for {
		var p bulkProgress
		if err := c.do(ctx, http.MethodGet, `/failed-events:replay/`+requestID, nil, &p); err != nil {
			return err
		}
		line := progressLine(p)
		// Spaces wipe what a longer previous line left on the terminal.
		fmt.Fprintf(stdout, "\r%s%s", line, strings.Repeat(" ", max(last-len(line), 0)))
		last = len(line)
		if p.Finished {
			fmt.Fprintln(stdout)
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// progressLine says in words how far a bulk replay is: a bar, how many of how many, and what became of them
// ("2 started, 1 resync requested"), outcomes in alphabetical order.
func progressLine(p bulkProgress) string {
	if p.Total == 0 {
		if p.Finished {
			return "nothing matched: no failed event to replay"
		}
		return "finding the failed events to replay…"
	}
	line := fmt.Sprintf("%s %d of %d replayed", progressBar(p.Done, p.Total, 30), p.Done, p.Total)
	outcomes := make([]string, 0, len(p.Counts))
	for outcome, n := range p.Counts {
		if n > 0 {
			outcomes = append(outcomes, outcome)
		}
	}
	if len(outcomes) == 0 {
		return line
	}
	slices.Sort(outcomes)
	parts := make([]string, len(outcomes))
	for i, o := range outcomes {
		parts[i] = fmt.Sprintf("%d %s", p.Counts[o], strings.ReplaceAll(o, "_", " "))
	}
	return line + ": " + strings.Join(parts, ", ")
}

func progressBar(done, total, width int) string {
	if total <= 0 {
		return "[" + strings.Repeat("#", width) + "]"
	}
	n := done * width / total
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", width-n) + "]"
}

type apiClient struct {
	base, token string
	http        *http.Client
}

func (c *apiClient) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("call linsync API: %w", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		_ = json.Unmarshal(raw, &e)
		return fmt.Errorf("linsync API answered %d %s: %s", resp.StatusCode, e.Error.Code, e.Error.Message)
	}
	return json.Unmarshal(raw, out)
}

func printJSON(w io.Writer, raw json.RawMessage) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return err
	}
	buf.WriteByte('\n')
	_, err := buf.WriteTo(w)
	return err
}

// printPlans prints a dry run as a diff: per dead letter, whether it would replay and why, then field by field what
// the replay would write to Linear (Linear's value now → the value written) and what changed since the failure.
func printPlans(w io.Writer, raw json.RawMessage) error {
	var resp struct {
		Plan []struct {
			ID          string `json:"id"`
			Kind        string `json:"kind"`
			WouldReplay bool   `json:"would_replay"`
			Reason      string `json:"reason"`
			Writes      []struct {
				Field         string `json:"field"`
				Before, After any
				Note          string `json:"note"`
			} `json:"writes"`
			SinceFailure []struct {
				Field string    `json:"field"`
				Now   any       `json:"now"`
				At    time.Time `json:"at"`
				By    string    `json:"by"`
			} `json:"since_failure"`
		} `json:"plan"`
	}
	if err := json.Unmarshal(raw, &resp); err != nil {
		return fmt.Errorf("read dry run: %w", err)
	}
	show := func(v any) string {
		if v == nil {
			return "(none)"
		}
		b, _ := json.Marshal(v)
		return string(b)
	}
	for i, p := range resp.Plan {
		if i > 0 {
			fmt.Fprintln(w)
		}
		verdict := "would replay"
		if !p.WouldReplay {
			verdict = "would not replay"
		}
		fmt.Fprintf(w, "%s  %s  %s\n  %s\n", p.ID, p.Kind, verdict, p.Reason)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		if len(p.Writes) == 0 {
			fmt.Fprintln(tw, "  writes to Linear:\tnothing")
		} else {
			fmt.Fprintln(tw, "  writes to Linear:\tfield\tnow\t\treplay writes")
			for _, c := range p.Writes {
				fmt.Fprintf(tw, "\t%s\t%s\t→\t%s", c.Field, show(c.Before), show(c.After))
				if c.Note != "" {
					fmt.Fprintf(tw, "\t%s", c.Note)
				}
				fmt.Fprintln(tw)
			}
		}
		if len(p.SinceFailure) == 0 {
			fmt.Fprintln(tw, "  since the failure:\tnothing changed")
		} else {
			fmt.Fprintln(tw, "  since the failure:\tfield\tnow\t\tby, at")
			for _, c := range p.SinceFailure {
				fmt.Fprintf(tw, "\t%s\t%s\t\t%s, %s\n", c.Field, show(c.Now), c.By, c.At.UTC().Format(time.RFC3339))
			}
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}
