package linear_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/linsync/linsync/linear"
)

// TestSignatureFixedVector checks Linear's webhook signature against a value computed outside linsync:
//
//	printf '%s' "$body" | openssl dgst -sha256 -hmac lin_wh_fixed_vector_secret -r
//
// so a change in how linsync signs or compares (hex case, a re-serialised body, a different MAC) fails here even
// though it would still agree with itself.
func TestSignatureFixedVector(t *testing.T) {
	t.Parallel()
	body := []byte(`{"action":"create","type":"Issue","organizationId":"org-1","webhookTimestamp":1700000000000,"data":{"id":"issue-1"}}`)
	secret := []byte("lin_wh_fixed_vector_secret")
	const want = "3e7ed81cfe83fbc289cf63f7ffd3173bb4f41bc6c4167f605073852ab74062d6"
	require.Equal(t, want, linear.Sign(secret, body))
	require.True(t, linear.VerifySignature(body, want, secret))
	require.False(t, linear.VerifySignature(body, want, []byte("lin_wh_fixed_vector_secreT")))
	require.False(t, linear.VerifySignature([]byte(`{"action": "create"}`), want, secret))
}
