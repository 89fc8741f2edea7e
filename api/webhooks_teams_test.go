package api

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/linsync/linsync/linsynctest"
)

// TestTeamOfBody finds the team of every kind of payload that has one, from real and schema-derived bodies.
func TestTeamOfBody(t *testing.T) {
	t.Parallel()
	read := func(elem ...string) []byte {
		b, err := os.ReadFile(filepath.Join(linsynctest.LinearTestdata(t, elem...)))
		require.NoError(t, err)
		return b
	}
	cases := []struct {
		name string
		body []byte
		want string
	}{
		{"issue", []byte(`{"type":"Issue","data":{"id":"i","teamId":"t1"}}`), "t1"},
		{"issue with team only", []byte(`{"type":"Issue","data":{"id":"i","team":{"id":"t2"}}}`), "t2"},
		{"comment on an issue", []byte(`{"type":"Comment","data":{"id":"c","issue":{"id":"i","teamId":"t3"}}}`), "t3"},
		{"issue SLA", []byte(`{"type":"IssueSLA","issueData":{"id":"i","teamId":"t4"}}`), "t4"},
		{"user", []byte(`{"type":"User","data":{"id":"u"}}`), ""},
		{"malformed", []byte(`{`), ""},
		{"real issue", read("payloads", "zulip_issue_update_title_2023.json"), teamIn(t, read("payloads", "zulip_issue_update_title_2023.json"))},
		{"reaction (schema)", read("schema-payloads", "reaction_create.json"), "7ea30000-0000-4000-8000-000000000002"},
		{"cycle (schema)", read("schema-payloads", "cycle_update_completed.json"), "7ea30000-0000-4000-8000-000000000002"},
		{"customer (schema)", read("schema-payloads", "customer_create.json"), ""},
	}
	for _, tc := range cases {
		require.Equal(t, tc.want, teamOfBody(tc.body), tc.name)
	}
}

// teamIn reads data.teamId the plain way, for a real payload whose team the test does not restate.
func teamIn(t *testing.T, body []byte) string {
	t.Helper()
	var v struct {
		Data struct {
			TeamID string `json:"teamId"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal(body, &v))
	require.NotEmpty(t, v.Data.TeamID)
	return v.Data.TeamID
}
