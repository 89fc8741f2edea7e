package linear_test

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/linear"
	"github.com/linsync/linsync/linsynctest"
)

func TestSignAndVerify(t *testing.T) {
	t.Parallel()
	body := []byte(`{"action":"create"}`)
	sig := linear.Sign([]byte("s3cret"), body)
	require.Len(t, sig, 64)
	require.True(t, linear.VerifySignature(body, sig, []byte("s3cret")))
	require.True(t, linear.VerifySignature(body, strings.ToUpper(sig), []byte("s3cret")), "hex case does not matter")
	require.True(t, linear.VerifySignature(body, sig, []byte("old"), []byte("s3cret")), "any accepted secret")
	require.False(t, linear.VerifySignature(body, sig, []byte("other")))
	require.False(t, linear.VerifySignature(body, sig), "no secrets")
	require.False(t, linear.VerifySignature(body, sig, []byte{}), "an empty secret never verifies")
	require.False(t, linear.VerifySignature(body, sig[:62], []byte("s3cret")), "truncated")
	require.False(t, linear.VerifySignature(append(body, ' '), sig, []byte("s3cret")), "raw bytes, not re-serialised JSON")
	require.False(t, linear.VerifySignature(body, "zz"+sig[2:], []byte("s3cret")))
}

func TestCheckTimestamp(t *testing.T) {
	t.Parallel()
	now := time.UnixMilli(1_700_000_000_000)
	cases := []struct {
		name string
		ts   int64
		ok   bool
	}{
		{"now", now.UnixMilli(), true},
		{"59s old", now.Add(-59 * time.Second).UnixMilli(), true},
		{"exactly at tolerance", now.Add(-60 * time.Second).UnixMilli(), true},
		{"61s old", now.Add(-61 * time.Second).UnixMilli(), false},
		{"61s ahead", now.Add(61 * time.Second).UnixMilli(), false},
		{"missing", 0, false},
		{"negative", -5, false},
		// time.Time.Sub saturates past 292 years; a Duration-based check once let these through.
		{"300 years ahead", now.AddDate(300, 0, 0).UnixMilli(), false},
		{"largest decodable", math.MaxInt64 / 2, false},
	}
	for _, tc := range cases {
		err := linear.CheckTimestamp(tc.ts, now, time.Minute)
		if tc.ok {
			require.NoError(t, err, tc.name)
		} else {
			require.ErrorIs(t, err, linear.ErrWebhookExpired, tc.name)
		}
	}
}

// TestCheckTimestampWindow: a body may be as old as Linear's retry horizon, but no further in the future than the
// clock tolerance.
func TestCheckTimestampWindow(t *testing.T) {
	t.Parallel()
	now := time.UnixMilli(1_700_000_000_000)
	cases := []struct {
		name string
		ts   int64
		ok   bool
	}{
		{"now", now.UnixMilli(), true},
		{"a retry an hour later", now.Add(-time.Hour).UnixMilli(), true},
		{"the last retry, six hours later", now.Add(-6 * time.Hour).UnixMilli(), true},
		{"exactly at the horizon", now.Add(-8 * time.Hour).UnixMilli(), true},
		{"past the horizon", now.Add(-8*time.Hour - time.Second).UnixMilli(), false},
		{"within the future tolerance", now.Add(59 * time.Second).UnixMilli(), true},
		{"beyond the future tolerance", now.Add(2 * time.Minute).UnixMilli(), false},
		{"300 years ahead", now.AddDate(300, 0, 0).UnixMilli(), false},
		{"300 years old", now.AddDate(-300, 0, 0).UnixMilli(), false},
		{"missing", 0, false},
	}
	for _, tc := range cases {
		err := linear.CheckTimestampWindow(tc.ts, now, time.Minute, 8*time.Hour)
		if tc.ok {
			require.NoError(t, err, tc.name)
		} else {
			require.ErrorIs(t, err, linear.ErrWebhookExpired, tc.name)
		}
	}
}

// TestDecodeSharedPayloads decodes every real payload into its typed entity.
func TestDecodeSharedPayloads(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join(linsynctest.LinearTestdata(t, "payloads"), "*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		raw, err := os.ReadFile(f)
		require.NoError(t, err)
		w, err := linear.DecodeWebhook(raw)
		require.NoError(t, err, f)
		require.NotEmpty(t, w.Type, f)
		require.NotEmpty(t, w.Action, f)
		require.Positive(t, int64(w.WebhookTimestamp), f)
		require.False(t, w.Unknown, "%s: every shared type is modelled", f)
		switch w.Type {
		case linear.TypeIssue, linear.TypeIssueSLA:
			require.NotNil(t, w.Issue, f)
			require.NotEmpty(t, w.Issue.Title, f)
		case linear.TypeComment:
			require.NotNil(t, w.Comment, f)
			require.NotEmpty(t, w.Comment.ID, f)
		case linear.TypeProject:
			require.NotNil(t, w.Project, f)
		case linear.TypeProjectUpdate:
			require.NotNil(t, w.ProjectUpdate, f)
		case linear.TypeIssueLabel:
			require.NotNil(t, w.IssueLabel, f)
		}
		if w.Type != linear.TypeIssueSLA {
			require.NotEmpty(t, w.EntityID(), f)
		}
	}
}

func TestDecodeSpecialAndBadShapes(t *testing.T) {
	t.Parallel()
	w, err := linear.DecodeWebhook([]byte(`{"type":"OAuthApp","action":"revoked","organizationId":"o","oauthClientId":"c1","webhookTimestamp":1.7e12}`))
	require.NoError(t, err)
	require.Equal(t, "c1", w.EntityID())
	require.Equal(t, linear.Millis(1.7e12), w.WebhookTimestamp)

	w, err = linear.DecodeWebhook([]byte(`{"type":"Issue","action":"update","data":{"id":"i1","title":"t","priority":1,"state":{"id":"s","name":"Done","type":"completed"}},"updatedFrom":{"stateId":"s0"}}`))
	require.NoError(t, err)
	require.Equal(t, "completed", w.Issue.State.Type)
	require.JSONEq(t, `{"stateId":"s0"}`, string(w.UpdatedFrom))

	w, err = linear.DecodeWebhook([]byte(`{"type":"Initiative","action":"create","data":{"id":"n1"}}`))
	require.NoError(t, err)
	require.True(t, w.Unknown)
	require.Equal(t, "n1", w.EntityID())

	cases := []struct{ body, code, field string }{
		{`{"type":`, linsync.EINVALID, ""},
		{`[]`, linsync.EUNPROCESSABLE, ""},
		{`{"action":"create"}`, linsync.EUNPROCESSABLE, "type"},
		{`{"type":"Issue"}`, linsync.EUNPROCESSABLE, "action"},
		{`{"type":"Issue","action":"create"}`, linsync.EUNPROCESSABLE, "data"},
		{`{"type":"Issue","action":"create","data":{"id":1}}`, linsync.EUNPROCESSABLE, "data.id"},
		{`{"type":"Comment","action":"create","data":{"id":"c","body":["x"]}}`, linsync.EUNPROCESSABLE, "data.body"},
		{`{"type":"IssueSLA","action":"breached"}`, linsync.EUNPROCESSABLE, "issueData"},
		{`{"type":"OAuthApp","action":"revoked"}`, linsync.EUNPROCESSABLE, "oauthClientId"},
		{`{"type":"Issue","action":"create","webhookTimestamp":"soon","data":{}}`, linsync.EUNPROCESSABLE, "webhookTimestamp"},
		{`{"type":"Issue","action":"create","data":{}} trailing`, linsync.EINVALID, ""},
	}
	for _, tc := range cases {
		_, err := linear.DecodeWebhook([]byte(tc.body))
		require.Error(t, err, tc.body)
		require.Equal(t, tc.code, linsync.ErrorCode(err), tc.body)
		if tc.field != "" {
			var e *linsync.Error
			require.ErrorAs(t, err, &e)
			require.Equal(t, tc.field, e.Field, tc.body)
		}
		// Ingress's one-pass path (PeekWebhook, then DecodeEntity) gives the same answer, or leaves the body to
		// DecodeWebhook: a malformed envelope never decodes cleanly.
		if peeked, ok := linear.PeekWebhook([]byte(tc.body)); ok {
			perr := peeked.DecodeEntity()
			require.Equal(t, err.Error(), perr.Error(), tc.body)
		} else {
			require.Contains(t, []string{"", "webhookTimestamp"}, tc.field, "%s: only a malformed envelope is left to the long way", tc.body)
		}
	}
}
