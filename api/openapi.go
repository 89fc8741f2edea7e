package api

import (
	"embed"
	"fmt"
	"io/fs"
	"net/http"
	"reflect"
	"slices"
	"sync"

	"github.com/gin-gonic/gin"
	"go.yaml.in/yaml/v3"
)

// Each capability documents its /v1 routes in a full OpenAPI 3 fragment of its own (openapi/<capability>.yaml);
// they are merged into the one document served at /openapi.yaml.
//
//go:embed openapi/*.yaml
var openapiFragments embed.FS

// openAPISections are the components sections merged by name.
var openAPISections = []string{"schemas", "responses", "parameters", "requestBodies", "headers", "securitySchemes", "examples", "links", "callbacks"}

var (
	openAPIOnce sync.Once
	openAPIDoc  []byte
	openAPIErr  error
)

// OpenAPI returns linsync's OpenAPI 3 document as YAML: the fragments in file-name order, merged, with the info,
// servers, security and tags of the first fragment (access.yaml) kept. Fragments may repeat a shared definition such
// as the Error schema to stay valid on their own, but a path operation or a component defined twice differently is
// an error: one capability's definition would silently replace another's.
func OpenAPI() ([]byte, error) {
	openAPIOnce.Do(func() { openAPIDoc, openAPIErr = mergeOpenAPI(openapiFragments) })
	return openAPIDoc, openAPIErr
}

func mergeOpenAPI(fsys fs.FS) ([]byte, error) {
	names, err := fs.Glob(fsys, "openapi/*.yaml")
	if err != nil {
		return nil, fmt.Errorf("list openapi fragments: %w", err)
	}
	slices.Sort(names)
	if i := slices.Index(names, "openapi/access.yaml"); i > 0 {
		names = append([]string{names[i]}, slices.Delete(names, i, i+1)...)
	}
	var doc map[string]any
	for _, name := range names {
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("read openapi fragment %s: %w", name, err)
		}
		var frag map[string]any
		if err := yaml.Unmarshal(b, &frag); err != nil {
			return nil, fmt.Errorf("parse openapi fragment %s: %w", name, err)
		}
		if frag == nil {
			continue
		}
		if doc == nil {
			doc = frag
			continue
		}
		if err := mergeOpenAPIFragment(doc, frag); err != nil {
			return nil, fmt.Errorf("merge openapi fragment %s: %w", name, err)
		}
	}
	if doc == nil {
		return nil, fmt.Errorf("merge openapi fragments: none found")
	}
	out, err := yaml.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("render merged openapi document: %w", err)
	}
	return out, nil
}

// mergeOpenAPIFragment adds frag's path operations, components and tags to doc, refusing a name doc already defines
// differently.
func mergeOpenAPIFragment(doc, frag map[string]any) error {
	paths := child(doc, "paths")
	for p, item := range asMap(frag["paths"]) {
		into := child(paths, p)
		for op, v := range asMap(item) {
			if had, taken := into[op]; taken && !reflect.DeepEqual(had, v) {
				return fmt.Errorf("%s %s is defined differently by an earlier fragment", op, p)
			}
			into[op] = v
		}
	}
	comps := child(doc, "components")
	fcomps := asMap(frag["components"])
	for _, section := range openAPISections {
		src := asMap(fcomps[section])
		if len(src) == 0 {
			continue
		}
		dst := child(comps, section)
		for name, v := range src {
			if had, taken := dst[name]; taken && !reflect.DeepEqual(had, v) {
				return fmt.Errorf("components.%s.%s is defined differently by an earlier fragment", section, name)
			}
			dst[name] = v
		}
	}
	tags, _ := doc["tags"].([]any)
	seen := map[any]bool{}
	for _, t := range tags {
		seen[asMap(t)["name"]] = true
	}
	ftags, _ := frag["tags"].([]any)
	for _, t := range ftags {
		if n := asMap(t)["name"]; !seen[n] {
			seen[n] = true
			tags = append(tags, t)
		}
	}
	if len(tags) > 0 {
		doc["tags"] = tags
	}
	return nil
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

// child returns m[key] as a map, creating it when missing.
func child(m map[string]any, key string) map[string]any {
	c := asMap(m[key])
	if c == nil {
		c = map[string]any{}
		m[key] = c
	}
	return c
}

// serveOpenAPI serves the merged document at /openapi.yaml; a fragment that does not parse fails start-up.
func serveOpenAPI(e *gin.Engine) error {
	doc, err := OpenAPI()
	if err != nil {
		return err
	}
	e.GET("/openapi.yaml", func(c *gin.Context) {
		c.Data(http.StatusOK, "application/yaml; charset=utf-8", doc)
	})
	return nil
}
