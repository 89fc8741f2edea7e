package linear_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/linsync/linsync/linear"
	"github.com/linsync/linsync/linsynctest"
)

// capturedBodies are the real payloads and the schema-built ones the repository keeps.
func capturedBodies(tb testing.TB) map[string][]byte {
	tb.Helper()
	out := map[string][]byte{}
	for _, dir := range []string{"payloads", "schema-payloads"} {
		files, _ := filepath.Glob(filepath.Join(linsynctest.LinearTestdata(tb, dir), "*.json"))
		for _, p := range files {
			b, err := os.ReadFile(p)
			if err != nil {
				tb.Fatal(err)
			}
			out[dir+"/"+filepath.Base(p)] = b
		}
	}
	if len(out) < 10 {
		tb.Fatalf("found %d captured payloads", len(out))
	}
	return out
}

// awkwardBodies are where encoding/json's decoding is easy to get subtly wrong: key case and Unicode folding,
// duplicate keys, nulls, escapes, invalid UTF-8, numbers of every spelling, trailing bytes.
var awkwardBodies = map[string]string{
	"keys in another case":    `{"ACTION":"create","Type":"Issue","data":{"ID":"a","Title":"t","teamid":"x"}}`,
	"Kelvin sign folds to k":  `{"action":"create","type":"Issue","webhoo\u212aId":"w","data":{"id":"a"}}`,
	"long s folds to s":       `{"action":"create","type":"Issue","data":{"id":"a","\u017fortOrder":2}}`,
	"underscore and dash":     `{"action":"create","type":"Issue","organization_id":"o","web-hookId":"w","data":{"id":"a"}}`,
	"escaped key":             `{"\u0061ction":"create","type":"Issue","data":{"id":"a"}}`,
	"duplicate key":           `{"action":"create","action":"update","type":"Issue","data":{"id":"a"}}`,
	"duplicate in other case": `{"action":"create","ACTION":"update","type":"Issue","data":{"id":"a"}}`,
	"null data":               `{"action":"create","type":"Issue","data":null}`,
	"null entity fields":      `{"action":"create","type":"Issue","data":{"id":null,"title":null,"labelIds":null}}`,
	"null type":               `{"action":"create","type":null,"data":{"id":"a"}}`,
	"invalid UTF-8":           "{\"action\":\"create\",\"type\":\"Issue\",\"data\":{\"id\":\"a\xff\"}}",
	"lone surrogate":          `{"action":"create","type":"Issue","data":{"id":"\ud800"}}`,
	"float timestamp":         `{"action":"create","type":"Issue","webhookTimestamp":1.676e12,"data":{"id":"a"}}`,
	"negative timestamp":      `{"action":"create","type":"Issue","webhookTimestamp":-1,"data":{"id":"a"}}`,
	"string timestamp":        `{"action":"create","type":"Issue","webhookTimestamp":"1676","data":{"id":"a"}}`,
	"number for string":       `{"action":"create","type":"Issue","data":{"id":7}}`,
	"object for string":       `{"action":{},"type":"Issue","data":{"id":"a"}}`,
	"unknown fields":          `{"action":"create","type":"Issue","extra":[1,{"a":null}],"data":{"id":"a","extra":true}}`,
	"unknown type":            `{"action":"create","type":"Widget","data":{"id":"w","anything":[1,2]}}`,
	"trailing brace":          `{"action":"create","type":"Issue","data":{"id":"a"}}}`,
	"trailing garbage":        `{"action":"create","type":"Issue","data":{"id":"a"}} x`,
	"trailing space":          "{\"action\":\"create\",\"type\":\"Issue\",\"data\":{\"id\":\"a\"}} \n",
	"two objects":             `{"action":"create","type":"Issue","data":{"id":"a"}}{}`,
	"array body":              `[{"action":"create"}]`,
	"empty":                   ``,
	"deep nesting":            `{"action":"create","type":"Issue","data":{"id":"a","x":` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `}}`,
	"IssueSLA":                `{"action":"breached","type":"IssueSLA","issueData":{"id":"i"}}`,
	"IssueSLA null":           `{"action":"breached","type":"IssueSLA","issueData":null}`,
	"OAuthApp":                `{"action":"revoked","type":"OAuthApp","oauthClientId":"c"}`,
}

// TestFastDecodeIsStd: DecodeWebhook (the fast decoder, and encoding/json for what it refuses) gives exactly what
// encoding/json alone gives, value or error, for every captured payload and every awkward body.
func TestFastDecodeIsStd(t *testing.T) {
	bodies := map[string][]byte{}
	for name, b := range capturedBodies(t) {
		bodies[name] = b
	}
	for name, b := range awkwardBodies {
		bodies[name] = []byte(b)
	}
	for name, body := range bodies {
		got, err := linear.DecodeWebhook(body)
		want, werr := linear.DecodeWebhookStd(body)
		switch {
		case (err == nil) != (werr == nil):
			t.Errorf("%s: DecodeWebhook error %v, encoding/json %v", name, err, werr)
		case err != nil && err.Error() != werr.Error():
			t.Errorf("%s: DecodeWebhook error %q, encoding/json %q", name, err, werr)
		case err == nil && !reflect.DeepEqual(got, want):
			t.Errorf("%s: DecodeWebhook decoded\n%+v\nencoding/json\n%+v", name, got, want)
		}
		if peeked, ok := linear.PeekWebhook(body); ok {
			perr := peeked.DecodeEntity()
			if (perr == nil) != (werr == nil) || (perr != nil && perr.Error() != werr.Error()) {
				t.Errorf("%s: PeekWebhook+DecodeEntity error %v, encoding/json %v", name, perr, werr)
			} else if perr == nil && !reflect.DeepEqual(peeked, want) {
				t.Errorf("%s: PeekWebhook+DecodeEntity decoded\n%+v\nencoding/json\n%+v", name, peeked, want)
			}
		}
	}
}

// BenchmarkDecodeWebhook compares DecodeWebhook with encoding/json alone on a real Issue payload and on the ingest
// bench's Project body.
func BenchmarkDecodeWebhook(b *testing.B) {
	bodies := capturedBodies(b)
	project := []byte(`{"action":"create","type":"Project","organizationId":"bench-org","webhookId":"bench-acks",` +
		`"webhookTimestamp":1764370000000,"createdAt":"2026-11-28T23:00:00.123456789Z","data":{"id":` +
		`"0b8bb1f0-6f7e-4e51-9d43-3c0d5e0f7f2a","name":"bench project 1","description":"` +
		strings.Repeat("A signed webhook body about the size Linear sends. ", 20) + `","state":"planned"}}`)
	for _, c := range []struct {
		name string
		body []byte
	}{{"issue", bodies["payloads/zulip_issue_update_title_2023.json"]}, {"project", project}} {
		for _, d := range []struct {
			name   string
			decode func([]byte) (*linear.Webhook, error)
		}{{"fast", linear.DecodeWebhook}, {"encoding-json", linear.DecodeWebhookStd}} {
			b.Run(c.name+"/"+d.name, func(b *testing.B) {
				b.SetBytes(int64(len(c.body)))
				for b.Loop() {
					if _, err := d.decode(c.body); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
