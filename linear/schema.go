package linear

import (
	_ "embed"
	"fmt"
	"os"
	"sync"

	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
)

// SchemaSDL is Linear's GraphQL schema as vendored in schema.graphql (its provenance is in the file's header), so
// the binary checks documents against it from any working directory.
//
//go:embed schema.graphql
var SchemaSDL string

var (
	schemaMu    sync.Mutex
	schemaCache = map[string]*ast.Schema{}
)

// LoadSchema parses Linear's schema: the embedded copy when path is empty, else the SDL file at path (an override
// for a newer schema). Each source is parsed once per process; the schema is large and every fake server uses it.
func LoadSchema(path string) (*ast.Schema, error) {
	schemaMu.Lock()
	defer schemaMu.Unlock()
	if s, ok := schemaCache[path]; ok {
		return s, nil
	}
	src, name := SchemaSDL, "schema.graphql (embedded)"
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read linear schema: %w", err)
		}
		src, name = string(b), path
	}
	s, err := gqlparser.LoadSchema(&ast.Source{Name: name, Input: src})
	if err != nil {
		return nil, fmt.Errorf("parse linear schema %s: %w", name, err)
	}
	schemaCache[path] = s
	return s, nil
}
