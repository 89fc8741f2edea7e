package api

import (
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// TestMergeOpenAPIFirstDefinitionWins merges fragments in name order with access.yaml first: paths and operations
// add up, a component or operation defined twice keeps its first definition.
func TestMergeOpenAPIFirstDefinitionWins(t *testing.T) {
	t.Parallel()
	fsys := fstest.MapFS{
		"openapi/access.yaml": {Data: []byte(`openapi: 3.0.3
info: {title: linsync API, version: "1"}
paths:
  /v1/a: {get: {operationId: a, responses: {'200': {description: a}}}}
components:
  schemas:
    Error: {type: object, description: first}
`)},
		"openapi/events.yaml": {Data: []byte(`openapi: 3.0.3
info: {title: events, version: "9"}
tags: [{name: events}]
paths:
  /v1/a: {get: {operationId: dup, responses: {'200': {description: dup}}}, post: {operationId: a2, responses: {'201': {description: a2}}}}
  /v1/b: {get: {operationId: b, responses: {'200': {description: b}}}}
components:
  schemas:
    Error: {type: object, description: second}
    Event: {type: object}
`)},
	}
	out, err := mergeOpenAPI(fsys)
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, yaml.Unmarshal(out, &doc))
	require.Equal(t, "linsync API", asMap(doc["info"])["title"])
	paths := asMap(doc["paths"])
	require.Equal(t, "a", asMap(asMap(paths["/v1/a"])["get"])["operationId"])
	require.Equal(t, "a2", asMap(asMap(paths["/v1/a"])["post"])["operationId"])
	require.Contains(t, paths, "/v1/b")
	schemas := asMap(asMap(doc["components"])["schemas"])
	require.Equal(t, "first", asMap(schemas["Error"])["description"])
	require.Contains(t, schemas, "Event")
	require.Len(t, doc["tags"], 1)
}
