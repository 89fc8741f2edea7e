package linear_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/linsync/linsync/linear"
	"github.com/linsync/linsync/linsynctest"
)

// schemaPayloads returns the schema-derived payloads (linear/testdata/schema-payloads) by file name.
func schemaPayloads(t *testing.T) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(linsynctest.LinearTestdata(t, "schema-payloads"), "*.json"))
	require.NoError(t, err)
	require.Len(t, files, 6)
	out := map[string][]byte{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		require.NoError(t, err)
		out[filepath.Base(f)] = raw
	}
	return out
}

// TestSchemaPayloadsMatchSchema: every schema-derived payload's data has exactly the fields of its
// <Type>WebhookPayload type in Linear's schema (and its child objects those of their types): no field the schema
// lacks, none the schema requires missing.
func TestSchemaPayloadsMatchSchema(t *testing.T) {
	t.Parallel()
	schema, err := linear.LoadSchema("")
	require.NoError(t, err)
	for name, raw := range schemaPayloads(t) {
		var body struct {
			Type string         `json:"type"`
			Data map[string]any `json:"data"`
		}
		require.NoError(t, json.Unmarshal(raw, &body), name)
		def := schema.Types[body.Type+"WebhookPayload"]
		require.NotNil(t, def, "%s: schema has %sWebhookPayload", name, body.Type)
		requireSchemaShape(t, schema, def, body.Data, name+": data")
	}
}

func requireSchemaShape(t *testing.T, schema *ast.Schema, def *ast.Definition, obj map[string]any, path string) {
	t.Helper()
	for k, v := range obj {
		f := def.Fields.ForName(k)
		require.NotNil(t, f, "%s.%s is not a field of %s", path, k, def.Name)
		if sub, ok := v.(map[string]any); ok {
			if td := schema.Types[f.Type.Name()]; td != nil && td.Kind == ast.Object {
				requireSchemaShape(t, schema, td, sub, path+"."+k)
			}
		}
	}
	for _, f := range def.Fields {
		if f.Type.NonNull && f.Directives.ForName("deprecated") == nil {
			_, ok := obj[f.Name]
			require.True(t, ok, "%s lacks %s, which %s requires", path, f.Name, def.Name)
		}
	}
}

// TestDecodeSchemaPayloads decodes every schema-derived payload into its typed value, with the ids, teams and
// states a notification rule would match on.
func TestDecodeSchemaPayloads(t *testing.T) {
	t.Parallel()
	p := schemaPayloads(t)
	decode := func(name string) *linear.Webhook {
		t.Helper()
		w, err := linear.DecodeWebhook(p[name])
		require.NoError(t, err, name)
		require.False(t, w.Unknown, name)
		require.NotEmpty(t, w.EntityID(), name)
		return w
	}
	r := decode("reaction_create.json").Reaction
	require.NotNil(t, r)
	require.Equal(t, "+1", r.Emoji)
	require.Equal(t, "ENG", r.Issue.Team.Key)
	require.Equal(t, "ENG-7", r.Issue.Identifier)
	require.Equal(t, "Deployed the fix.", r.Comment.Body)
	require.Equal(t, "alice@example.com", r.User.Email)

	c := decode("cycle_update_completed.json").Cycle
	require.NotNil(t, c)
	require.NotNil(t, c.CompletedAt, "a completed cycle says so")
	require.Equal(t, float64(12), c.Number)
	require.Equal(t, "7ea30000-0000-4000-8000-000000000002", c.TeamID)
	require.Equal(t, []string{"1550e000-0000-4000-8000-000000000007"}, c.UncompletedIssuesUponCloseIDs)
	require.Equal(t, []float64{0, 5, 9}, c.CompletedIssueCountHistory)

	a := decode("attachment_create.json").Attachment
	require.NotNil(t, a)
	require.Equal(t, "github", *a.SourceType)
	require.Equal(t, "1550e000-0000-4000-8000-000000000007", a.IssueID)
	require.JSONEq(t, `{"status":"open","number":481}`, string(a.Metadata))

	d := decode("document_update.json").Document
	require.NotNil(t, d)
	require.Equal(t, "b40c0000-0000-4000-8000-000000000005", *d.ProjectID)
	require.Contains(t, *d.Content, "Restart the scanner")

	uw := decode("user_update_deactivated.json")
	u := uw.User
	require.NotNil(t, u)
	require.False(t, u.Active, "a deactivated member")
	require.Equal(t, "userDeactivated", *u.DisableReason)
	require.Equal(t, "dana@example.com", u.Email)
	require.JSONEq(t, `{"active":true,"updatedAt":"2026-10-01T08:00:00.000Z"}`, string(uw.UpdatedFrom))

	cu := decode("customer_create.json").Customer
	require.NotNil(t, cu)
	require.Equal(t, "enterprise", cu.Tier.Name)
	require.Equal(t, "Active", cu.Status.DisplayName)
	require.Equal(t, []string{"shop.example.com"}, cu.Domains)
	require.InDelta(t, 120000, *cu.Revenue, 0)
}

// TestDecodeUnknownTypeIsRecordedNotFailed: a type Linear added after this schema decodes as Unknown (the delivery
// is recorded as such), not as an error.
func TestDecodeUnknownTypeIsRecordedNotFailed(t *testing.T) {
	t.Parallel()
	w, err := linear.DecodeWebhook([]byte(`{"action":"create","type":"Release","organizationId":"o","webhookTimestamp":1.7e12,"data":{"id":"r1"}}`))
	require.NoError(t, err)
	require.True(t, w.Unknown)
	require.Equal(t, "r1", w.EntityID())
}
