package envelope_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/linsync/linsync/envelope"
)

func newKeeper(t *testing.T) *envelope.Keeper {
	t.Helper()
	url, err := envelope.NewLocalKeyURL()
	require.NoError(t, err)
	k, err := envelope.Open(t.Context(), url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = k.Close() })
	return k
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	k := newKeeper(t)
	secret := []byte("lin_wh_s3cr3t-value")
	ct, err := k.Encrypt(t.Context(), secret)
	require.NoError(t, err)
	require.NotContains(t, string(ct), string(secret))

	ct2, err := k.Encrypt(t.Context(), secret)
	require.NoError(t, err)
	require.NotEqual(t, ct, ct2, "every value gets its own data key and nonce")

	got, err := k.Decrypt(t.Context(), ct)
	require.NoError(t, err)
	require.Equal(t, secret, got)
}

func TestTamperAndWrongKey(t *testing.T) {
	t.Parallel()
	k := newKeeper(t)
	ct, err := k.Encrypt(t.Context(), []byte("value"))
	require.NoError(t, err)

	for i := range ct {
		bad := append([]byte(nil), ct...)
		bad[i] ^= 0x01
		_, err := k.Decrypt(t.Context(), bad)
		require.Error(t, err, "flipping byte %d must fail", i)
	}
	_, err = newKeeper(t).Decrypt(t.Context(), ct)
	require.Error(t, err, "another key must not open it")
	_, err = k.Decrypt(t.Context(), ct[:2])
	require.Error(t, err)
}

func TestOpenNeverEchoesKeyMaterial(t *testing.T) {
	t.Parallel()
	_, err := envelope.Open(t.Context(), "base64key://not-valid-base64-SECRETMATERIAL")
	require.Error(t, err)
	require.NotContains(t, err.Error(), "SECRETMATERIAL")
	_, err = envelope.Open(t.Context(), "")
	require.Error(t, err)
}

func TestLast4(t *testing.T) {
	t.Parallel()
	require.Equal(t, "…abcd", envelope.Last4("lin_api_xyzabcd"))
	require.Equal(t, "…", envelope.Last4("abc"))
	require.False(t, strings.Contains(envelope.Last4("lin_api_xyzabcd"), "lin_api"))
}
