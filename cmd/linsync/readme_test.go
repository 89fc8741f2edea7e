//go:build !nodev

package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/linsync/linsync/linear/lineartest"
	"github.com/linsync/linsync/linsynctest"
)

// readmeBlock is a shell example of the README that the test runs: a ```sh fence right after a marker comment
// <!-- readme-test STACK [expect='REGEX'] [retry=DURATION] -->.
type readmeBlock struct {
	stack  string
	expect *regexp.Regexp
	retry  time.Duration
	line   int
	script string
}

var (
	readmeMarker = regexp.MustCompile(`^<!-- readme-test (\w+)((?:\s+\w+=(?:'[^']*'|\S+))*)\s*-->$`)
	readmeAttr   = regexp.MustCompile(`(\w+)=(?:'([^']*)'|(\S+))`)
	readmeVar    = regexp.MustCompile(`(?m)^([A-Z][A-Z0-9_]*)=`)
)

func readmeBlocks(tb testing.TB, readme string) []readmeBlock {
	tb.Helper()
	lines := strings.Split(readme, "\n")
	var out []readmeBlock
	for i := 0; i < len(lines); i++ {
		m := readmeMarker.FindStringSubmatch(strings.TrimSpace(lines[i]))
		if m == nil {
			continue
		}
		b := readmeBlock{stack: m[1], line: i + 1}
		for _, a := range readmeAttr.FindAllStringSubmatch(m[2], -1) {
			v := a[2] + a[3]
			switch a[1] {
			case "expect":
				b.expect = regexp.MustCompile(v)
			case "retry":
				d, err := time.ParseDuration(v)
				require.NoError(tb, err, "README line %d", b.line)
				b.retry = d
			default:
				tb.Fatalf("README line %d: unknown attribute %q", b.line, a[1])
			}
		}
		require.Less(tb, i+1, len(lines), "README line %d: marker without a block", b.line)
		require.Equal(tb, "```sh", strings.TrimSpace(lines[i+1]), "README line %d: a marker must precede a ```sh block", b.line)
		var body []string
		for i += 2; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
			body = append(body, lines[i])
		}
		b.script = strings.Join(body, "\n")
		out = append(out, b)
	}
	return out
}

// readmeShell runs README blocks in order the way a reader pastes them into one terminal: variables a block sets are
// there for the next one. Addresses and paths of the README's stack are rewritten to the test's.
type readmeShell struct {
	tb      testing.TB
	replace *strings.Replacer
	state   string
	vars    map[string]bool
}

func (sh *readmeShell) run(b readmeBlock) string {
	sh.tb.Helper()
	script := sh.replace.Replace(b.script)
	for _, m := range readmeVar.FindAllStringSubmatch(script, -1) {
		sh.vars[m[1]] = true
	}
	var save strings.Builder
	for v := range sh.vars {
		fmt.Fprintf(&save, "declare -p %s >> %q 2>/dev/null || true\n", v, sh.state+".next")
	}
	// curl fails on HTTP errors, as a reader would notice an error answer.
	prelude := "set -euo pipefail\ncurl() { command curl --fail-with-body --max-time 20 \"$@\"; }\n" +
		"[ -f " + sh.state + " ] && source " + sh.state + "\n"
	full := prelude + script + "\n: > " + sh.state + ".next\n" + save.String() + "mv " + sh.state + ".next " + sh.state + "\n"

	deadline := time.Now().Add(b.retry)
	for {
		cmd := exec.Command("bash", "-c", full)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		ok := err == nil && (b.expect == nil || b.expect.Match(out.Bytes()))
		if ok {
			return out.String()
		}
		if time.Now().After(deadline) {
			sh.tb.Fatalf("README line %d (%s stack): %v\n--- script\n%s\n--- output\n%s\n--- expected output matching %v",
				b.line, b.stack, err, script, out.String(), b.expect)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// devStack runs `linsync dev` in this process as `make dev` does, on free ports, with the variables env returns for
// the API's address, and returns the API's and the fake Linear's host:port and the state directory.
func devStack(t *testing.T, env func(api string) map[string]string) (api, fake, dir string) {
	t.Helper()
	_, temporalAddr := linsynctest.Temporal(t)
	api, err := linsynctest.FreeHostPort()
	require.NoError(t, err)
	fake, err = linsynctest.FreeHostPort()
	require.NoError(t, err)
	ops, err := linsynctest.FreeHostPort()
	require.NoError(t, err)
	dir = t.TempDir()
	base := map[string]string{
		"LINSYNC_HTTP_ADDR": api, "LINSYNC_OPS_ADDR": ops, "DATABASE_URL": linsynctest.DatabaseURL(t), "TEMPORAL_ADDRESS": temporalAddr,
		"LINSYNC_TASK_QUEUE": "readme-" + filepath.Base(dir), "LINSYNC_LOG_LEVEL": "error", "LINEAR_API_URL": "",
		"LINSYNC_SECRETS_KEY_URL": "", "LINSYNC_BOOTSTRAP_TOKEN": "", "LINSYNC_PUBLIC_URL": "",
	}
	if env != nil {
		for k, v := range env(api) {
			base[k] = v
		}
	}
	for k, v := range base {
		t.Setenv(k, v)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var out bytes.Buffer
	go func() {
		done <- run(ctx, []string{"dev", "-dir", dir, "-fake-linear-addr", fake, "-ui-port", "0"}, &out)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(30 * time.Second):
			t.Error("dev stack did not stop")
		}
	})
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + ops + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 90*time.Second, 200*time.Millisecond, "dev stack not ready")
	return api, fake, dir
}

// TestReadmeExamples runs every marked example of the README against the stack `make dev` brings up: the built-in
// fake Linear ("fake"), and a Linear reached through LINEAR_API_URL that a newcomer connects by hand ("linear").
func TestReadmeExamples(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(linsynctest.RepoRoot(t), "README.md"))
	require.NoError(t, err)
	blocks := readmeBlocks(t, string(b))
	byStack := map[string][]readmeBlock{}
	for _, bl := range blocks {
		byStack[bl.stack] = append(byStack[bl.stack], bl)
	}
	require.NotEmpty(t, byStack["fake"], "README examples for the built-in fake Linear")
	require.NotEmpty(t, byStack["linear"], "README examples for connecting a Linear by hand")
	require.Len(t, byStack, 2, "unknown stack in a README marker")

	t.Run("fake", func(t *testing.T) {
		api, fake, dir := devStack(t, nil)
		sh := &readmeShell{tb: t, state: filepath.Join(dir, "readme.state"), vars: map[string]bool{},
			replace: strings.NewReplacer("localhost:8080", api, "127.0.0.1:8090", fake, ".cache/dev/", dir+"/")}
		for _, bl := range byStack["fake"] {
			sh.run(bl)
		}
	})

	t.Run("linear", func(t *testing.T) {
		// "Linear" is a fake of its own, reached like the real one through LINEAR_API_URL; the dev workspace is
		// then not connected, and the reader connects a workspace with a personal API key.
		linearSrv := lineartest.Start(t, lineartest.Options{})
		sd := linearSrv.Seed()
		api, _, dir := devStack(t, func(api string) map[string]string {
			// The public URL is what the reader's tunnel would be: connecting registers linsync's webhook there.
			return map[string]string{"LINEAR_API_URL": linearSrv.URL() + "/graphql", "LINSYNC_PUBLIC_URL": "http://" + api}
		})
		sh := &readmeShell{tb: t, state: filepath.Join(dir, "readme.state"), vars: map[string]bool{},
			replace: strings.NewReplacer("localhost:8080", api, ".cache/dev/", dir+"/",
				"https://linear.example/fake", linearSrv.URL(), "lin_api_YOUR_PERSONAL_KEY", sd.APIKey)}
		for _, bl := range byStack["linear"] {
			sh.run(bl)
		}
	})
}
