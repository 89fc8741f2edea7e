package api

import (
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// TestMergeOpenAPIFragments merges fragments in name order with access.yaml first: paths and operations add up, a
// definition repeated word for word (the shared Error schema) is kept once, and the info of access.yaml is kept.
func TestMergeOpenAPIFragments(t *testing.T) {
	t.Parallel()
	out, err := mergeOpenAPI(fstest.MapFS{
		"openapi/access.yaml": {Data: []byte(`openapi: 3.0.3
info: {title: linsync API, version: "1"}
paths:
  /v1/a: {get: {operationId: a, responses: {'200': {description: a}}}}
components:
  schemas:
    Error: {type: object, description: shared}
`)},
		"openapi/events.yaml": {Data: []byte(`openapi: 3.0.3
info: {title: events, version: "9"}
tags: [{name: events}]
paths:
  /v1/a: {post: {operationId: a2, responses: {'201': {description: a2}}}}
  /v1/b: {get: {operationId: b, responses: {'200': {description: b}}}}
components:
  schemas:
    Error: {type: object, description: shared}
    Event: {type: object}
`)},
	})
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, yaml.Unmarshal(out, &doc))
	require.Equal(t, "linsync API", asMap(doc["info"])["title"])
	paths := asMap(doc["paths"])
	require.Equal(t, "a", asMap(asMap(paths["/v1/a"])["get"])["operationId"])
	require.Equal(t, "a2", asMap(asMap(paths["/v1/a"])["post"])["operationId"])
	require.Contains(t, paths, "/v1/b")
	schemas := asMap(asMap(doc["components"])["schemas"])
	require.Equal(t, "shared", asMap(schemas["Error"])["description"])
	require.Contains(t, schemas, "Event")
	require.Len(t, doc["tags"], 1)
}

// TestMergeOpenAPIRefusesTwoDefinitionsOfOneName: two capabilities that name different schemas alike (both once had
// an AuditEntry) or document one operation twice must not silently lose one of them.
func TestMergeOpenAPIRefusesTwoDefinitionsOfOneName(t *testing.T) {
	t.Parallel()
	access := []byte(`openapi: 3.0.3
info: {title: linsync API, version: "1"}
paths:
  /v1/a: {get: {operationId: a, responses: {'200': {description: a}}}}
components:
  schemas:
    AuditEntry: {type: object, required: [field]}
`)
	_, err := mergeOpenAPI(fstest.MapFS{"openapi/access.yaml": {Data: access}, "openapi/gateway.yaml": {Data: []byte(`openapi: 3.0.3
info: {title: gateway, version: "1"}
paths: {}
components:
  schemas:
    AuditEntry: {type: object, required: [seq]}
`)}})
	require.ErrorContains(t, err, "components.schemas.AuditEntry is defined differently")

	_, err = mergeOpenAPI(fstest.MapFS{"openapi/access.yaml": {Data: access}, "openapi/events.yaml": {Data: []byte(`openapi: 3.0.3
info: {title: events, version: "1"}
paths:
  /v1/a: {get: {operationId: other, responses: {'200': {description: other}}}}
`)}})
	require.ErrorContains(t, err, "get /v1/a is defined differently")
}
