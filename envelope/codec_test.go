package envelope_test

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"

	"github.com/linsync/linsync/envelope"
	"github.com/linsync/linsync/linsynctest"
)

// webhookBody is the kind of value linsync's workflows carry: a Linear webhook with a person's name, email and words.
const webhookBody = `{"action":"create","type":"Comment","data":{"body":"Call me on +1 555 0100, the invoice is wrong",` +
	`"user":{"name":"Alice Example","email":"alice@example.com"}},"webhookTimestamp":1700000000000}`

func openKeeper(t testing.TB, keyURL string, previous ...string) *envelope.Keeper {
	t.Helper()
	k, err := envelope.Open(t.Context(), keyURL, previous...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = k.Close() })
	return k
}

func newKeyURL(t testing.TB) string {
	t.Helper()
	u, err := envelope.NewLocalKeyURL()
	require.NoError(t, err)
	return u
}

func payloadsOf(t testing.TB, values ...any) []*commonpb.Payload {
	t.Helper()
	ps, err := converter.GetDefaultDataConverter().ToPayloads(values...)
	require.NoError(t, err)
	return ps.Payloads
}

func TestCodecSealsPayloadsAndOpensThem(t *testing.T) {
	t.Parallel()
	keyURL := newKeyURL(t)
	codec := envelope.NewCodec(openKeeper(t, keyURL))
	plain := payloadsOf(t, webhookBody, map[string]string{"email": "bob@example.com"})
	sealed, err := codec.Encode(plain)
	require.NoError(t, err)
	require.Len(t, sealed, 2)
	for _, p := range sealed {
		require.Equal(t, envelope.CodecEncoding, string(p.Metadata["encoding"]))
		require.NotEmpty(t, p.Metadata[envelope.MetaKeyID])
		for _, secret := range []string{"alice@example.com", "Alice Example", "invoice", "bob@example.com"} {
			require.False(t, bytes.Contains(p.Data, []byte(secret)), "sealed data holds no %q", secret)
		}
	}
	opened, err := codec.Decode(sealed)
	require.NoError(t, err)
	var got string
	require.NoError(t, converter.GetDefaultDataConverter().FromPayload(opened[0], &got))
	require.Equal(t, webhookBody, got)

	// Another process with the same key (a fresh codec) opens it too: the wrapped data key travels in the metadata.
	opened, err = envelope.NewCodec(openKeeper(t, keyURL)).Decode(sealed)
	require.NoError(t, err)
	require.Equal(t, plain[1].Data, opened[1].Data)
}

func TestCodecPassesUnencryptedPayloadsThrough(t *testing.T) {
	t.Parallel()
	codec := envelope.NewCodec(openKeeper(t, newKeyURL(t)))
	plain := payloadsOf(t, "written before encryption was turned on")
	got, err := codec.Decode(plain)
	require.NoError(t, err)
	require.Equal(t, plain[0].Data, got[0].Data)
}

func TestCodecRefusesTamperingAndForeignKeys(t *testing.T) {
	t.Parallel()
	codec := envelope.NewCodec(openKeeper(t, newKeyURL(t)))
	sealed, err := codec.Encode(payloadsOf(t, webhookBody))
	require.NoError(t, err)

	flipped := &commonpb.Payload{Metadata: sealed[0].Metadata, Data: bytes.Clone(sealed[0].Data)}
	flipped.Data[len(flipped.Data)-1] ^= 1
	_, err = codec.Decode([]*commonpb.Payload{flipped})
	require.Error(t, err, "a changed byte fails authentication")

	renamed := &commonpb.Payload{Metadata: map[string][]byte{"encoding": []byte(envelope.CodecEncoding),
		envelope.MetaKeyID: []byte(strings.Repeat("0", 32)), envelope.MetaWrappedKey: sealed[0].Metadata[envelope.MetaWrappedKey]},
		Data: sealed[0].Data}
	_, err = codec.Decode([]*commonpb.Payload{renamed})
	require.ErrorContains(t, err, "does not match")

	_, err = envelope.NewCodec(openKeeper(t, newKeyURL(t))).Decode(sealed)
	require.Error(t, err, "another key-encryption key cannot open it")
}

// After a rotation (a new LINSYNC_SECRETS_KEY_URL, the old one in LINSYNC_SECRETS_PREVIOUS_KEY_URLS), payloads sealed
// under the old key still open, new payloads are sealed under the new key only, and so are secrets at rest.
func TestCodecKeyRotationKeepsOldPayloadsReadable(t *testing.T) {
	t.Parallel()
	oldURL, newURL := newKeyURL(t), newKeyURL(t)
	oldKeeper := openKeeper(t, oldURL)
	oldSealed, err := envelope.NewCodec(oldKeeper).Encode(payloadsOf(t, webhookBody))
	require.NoError(t, err)
	oldSecret, err := oldKeeper.Encrypt(t.Context(), []byte("lin_api_secret"))
	require.NoError(t, err)

	rotated := openKeeper(t, newURL, oldURL)
	codec := envelope.NewCodec(rotated)
	opened, err := codec.Decode(oldSealed)
	require.NoError(t, err)
	var got string
	require.NoError(t, converter.GetDefaultDataConverter().FromPayload(opened[0], &got))
	require.Equal(t, webhookBody, got)
	secret, err := rotated.Decrypt(t.Context(), oldSecret)
	require.NoError(t, err)
	require.Equal(t, "lin_api_secret", string(secret))

	newSealed, err := codec.Encode(payloadsOf(t, webhookBody))
	require.NoError(t, err)
	require.NotEqual(t, oldSealed[0].Metadata[envelope.MetaKeyID], newSealed[0].Metadata[envelope.MetaKeyID])
	_, err = envelope.NewCodec(openKeeper(t, newURL)).Decode(newSealed)
	require.NoError(t, err, "new payloads need only the new key")
	_, err = envelope.NewCodec(openKeeper(t, newURL)).Decode(oldSealed)
	require.Error(t, err, "without the previous key the old payload stays sealed")
}

// The codec runs on every payload; these measure its cost against the conversion it wraps, on the largest captured
// Linear webhook body (what the API hands Temporal on the ingest path). Compare in one run:
// go test ./envelope -run '^$' -bench Payload -benchmem
func capturedBody(b *testing.B) json.RawMessage {
	b.Helper()
	raw, err := os.ReadFile(linsynctest.LinearTestdata(b, "payloads", "zulip_issue_update_title_2023.json"))
	if err != nil {
		b.Fatal(err)
	}
	return raw
}

func BenchmarkPayloadConvert(b *testing.B) {
	body, dc := capturedBody(b), converter.GetDefaultDataConverter()
	for b.Loop() {
		if _, err := dc.ToPayloads(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPayloadConvertAndSeal(b *testing.B) {
	body := capturedBody(b)
	dc := converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), envelope.NewCodec(openKeeper(b, newKeyURL(b))))
	for b.Loop() {
		if _, err := dc.ToPayloads(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPayloadConvertAndOpen(b *testing.B) {
	dc := converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), envelope.NewCodec(openKeeper(b, newKeyURL(b))))
	ps, err := dc.ToPayloads(capturedBody(b))
	if err != nil {
		b.Fatal(err)
	}
	var out json.RawMessage
	for b.Loop() {
		if err := dc.FromPayloads(ps, &out); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPayloadSealCost converts the body with and without the codec, interleaved in one loop so both see the same
// machine, and reports the ratio of their times and the time sealing adds per payload.
func BenchmarkPayloadSealCost(b *testing.B) {
	body := capturedBody(b)
	plain := converter.GetDefaultDataConverter()
	sealed := converter.NewCodecDataConverter(plain, envelope.NewCodec(openKeeper(b, newKeyURL(b))))
	var tPlain, tSealed time.Duration
	for b.Loop() {
		t0 := time.Now()
		if _, err := plain.ToPayloads(body); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := sealed.ToPayloads(body); err != nil {
			b.Fatal(err)
		}
		tPlain, tSealed = tPlain+t1.Sub(t0), tSealed+time.Since(t1)
	}
	b.ReportMetric(float64(tSealed)/float64(tPlain), "sealed/plain")
	b.ReportMetric(float64(tSealed-tPlain)/float64(b.N), "ns-added/op")
}
