package activities_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/linsync/linsync/activities"
)

// TestSignCallbackStandardWebhooksVector checks the callback signature against the example published with the
// Standard Webhooks specification (secret, message id, timestamp and payload as given there); the same value comes
// out of
//
//	key=$(echo -n MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw | base64 -d | xxd -p -c 256)
//	printf '%s' 'msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330.{"test": 2432232314}' |
//	  openssl dgst -sha256 -mac HMAC -macopt hexkey:$key -binary | base64
func TestSignCallbackStandardWebhooksVector(t *testing.T) {
	t.Parallel()
	const (
		secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
		id     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
		ts     = "1614265330"
		want   = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	)
	body := []byte(`{"test": 2432232314}`)
	require.Equal(t, want, activities.SignCallback([]byte(secret), id, ts, body))
	require.NotEqual(t, want, activities.SignCallback([]byte(secret), id, "1614265331", body), "the timestamp is signed")
	require.NotEqual(t, want, activities.SignCallback([]byte(secret), "msg_other", ts, body), "the id is signed")
}
