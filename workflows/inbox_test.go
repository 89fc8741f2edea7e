package workflows

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/converter"
)

// TestDeliveryItemKeepsTheBodyAsItCame: the inbox input carries the body's bytes unchanged (not compacted again),
// and the workflow decodes the stored input, passed through as a raw payload, into the delivery that was accepted.
func TestDeliveryItemKeepsTheBodyAsItCame(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	in := LinearDeliveryInput{DeliveryID: "d1", WorkspaceID: "w1", OrganizationID: "o1", EventType: "Issue",
		Action: "update", EntityID: "i1", KnownType: true, WebhookTimestamp: now, ReceivedAt: now,
		Body:        json.RawMessage("{ \"type\" : \"Issue\",\n  \"data\": {\"title\": \"caf\\u00e9 \\\"body\\\":\"} }\n"),
		ContentHash: "abc", UnclaimedTeam: "t1"}
	it, err := DeliveryItem(in, []byte{1}, now.Add(time.Hour))
	require.NoError(t, err)
	require.True(t, json.Valid(it.Input))
	require.Contains(t, string(it.Input), string(in.Body), "the body as it came")
	require.Equal(t, LinearDeliveryWorkflowID("w1", "d1"), it.WorkflowID)

	raw, err := storedInput(it.Input)
	require.NoError(t, err)
	payloads, err := converter.GetDefaultDataConverter().ToPayloads(raw)
	require.NoError(t, err)
	var got LinearDeliveryInput
	require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(payloads, &got))
	require.Equal(t, strings.TrimSpace(string(in.Body)), string(got.Body), "the body's bytes, less the whitespace around it")
	want := in
	want.Body = got.Body
	require.Equal(t, want, got)

	// As json.Marshal would have encoded it, but for the body's whitespace.
	var viaMarshal LinearDeliveryInput
	std, err := json.Marshal(in)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(std, &viaMarshal))
	require.JSONEq(t, string(viaMarshal.Body), string(got.Body))
	got.Body, viaMarshal.Body = nil, nil
	require.Equal(t, viaMarshal, got)

	// No body encodes as null, as json.Marshal has it.
	in.Body = nil
	it, err = DeliveryItem(in, nil, now)
	require.NoError(t, err)
	var none map[string]any
	require.NoError(t, json.Unmarshal(it.Input, &none))
	require.Contains(t, none, "body")
	require.Nil(t, none["body"])
}

// TestStoredInputRefusesWhatIsNotAnObject: an inbox row whose input is not a JSON object is never started.
func TestStoredInputRefusesWhatIsNotAnObject(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"", "  ", "[]", `"x"`, "{", `{"a":1} {"b":2}`, "null"} {
		_, err := storedInput([]byte(bad))
		require.Error(t, err, bad)
	}
	_, err := storedInput([]byte(` {"workspace_id":"w"} `))
	require.NoError(t, err)
}
