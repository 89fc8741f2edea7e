package linear_test

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/linear"
	"github.com/linsync/linsync/linsynctest"
)

// FuzzVerifyAndDecode feeds arbitrary bodies and signature headers through what ingress runs on untrusted input.
// Verification must never accept a signature it did not compute, and decoding must never panic, must fail only
// with linsync's invalid or unprocessable codes, and must give exactly what encoding/json alone gives (the fast
// decoder is trusted only where it agrees).
func FuzzVerifyAndDecode(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(linsynctest.LinearTestdata(f, "payloads"), "*.json"))
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, linear.Sign([]byte("fuzz-secret"), b))
	}
	f.Add([]byte(`{"type":"Issue","action":"create","data":null}`), "00")
	for _, b := range awkwardBodies {
		f.Add([]byte(b), "00")
	}
	secret := []byte("fuzz-secret")
	f.Fuzz(func(t *testing.T, body []byte, sig string) {
		if linear.VerifySignature(body, sig, secret) && sig != linear.Sign(secret, body) {
			// Only another spelling (case, surrounding space) of the true digest may pass.
			if !linear.VerifySignature(body, linear.Sign(secret, body), secret) {
				t.Fatalf("accepted a signature that is not the body's digest")
			}
		}
		if !linear.VerifySignature(body, linear.Sign(secret, body), secret) {
			t.Fatalf("rejected the body's own signature")
		}
		w, err := linear.DecodeWebhook(body)
		std, serr := linear.DecodeWebhookStd(body)
		if (err == nil) != (serr == nil) || (err != nil && err.Error() != serr.Error()) {
			t.Fatalf("DecodeWebhook: %v, encoding/json: %v", err, serr)
		}
		if err == nil && !reflect.DeepEqual(w, std) {
			t.Fatalf("DecodeWebhook decoded %+v, encoding/json %+v", w, std)
		}
		// Ingress decodes the envelope before the signature and the entity after it: for every body it takes that
		// way, the outcome is DecodeWebhook's.
		if peeked, ok := linear.PeekWebhook(body); ok {
			perr := peeked.DecodeEntity()
			if (perr == nil) != (err == nil) || linsync.ErrorCode(perr) != linsync.ErrorCode(err) {
				t.Fatalf("PeekWebhook+DecodeEntity: %v, DecodeWebhook: %v", perr, err)
			}
			if err == nil && !reflect.DeepEqual(peeked, w) {
				t.Fatalf("PeekWebhook+DecodeEntity decoded %+v, DecodeWebhook %+v", peeked, w)
			}
		}
		if err != nil {
			if c := linsync.ErrorCode(err); c != linsync.EINVALID && c != linsync.EUNPROCESSABLE {
				t.Fatalf("decode failed with code %q: %v", c, err)
			}
			return
		}
		if w.Type == "" || w.Action == "" {
			t.Fatalf("decoded a webhook without type or action")
		}
		_ = w.EntityID()
	})
}
