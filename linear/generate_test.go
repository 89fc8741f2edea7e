package linear_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/Khan/genqlient/generate"
	"github.com/stretchr/testify/require"

	"github.com/linsync/linsync/linear"
)

// TestGeneratedIsFresh regenerates the genqlient code from the vendored schema.graphql and operations.graphql and
// fails when the checked-in generated.go differs: run `make generate`.
func TestGeneratedIsFresh(t *testing.T) {
	t.Parallel()
	cfg, err := generate.ReadAndValidateConfig("genqlient.yaml")
	require.NoError(t, err)
	files, err := generate.Generate(cfg)
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for name, want := range files {
		got, err := os.ReadFile(name)
		require.NoError(t, err)
		require.True(t, string(want) == string(got), "%s is stale: run `make generate`", filepath.Base(name))
	}
}

// TestBoundInputsMatchSchema keeps the hand-written input structs honest: every field they can send exists on
// Linear's input type, and every required field of that type is there.
func TestBoundInputsMatchSchema(t *testing.T) {
	t.Parallel()
	schema, err := linear.LoadSchema("")
	require.NoError(t, err)
	for _, v := range []any{linear.IssueCreateInput{}, linear.IssueUpdateInput{}, linear.CommentCreateInput{},
		linear.IssueLabelCreateInput{}, linear.WebhookCreateInput{}, linear.WebhookUpdateInput{}} {
		typ := reflect.TypeOf(v)
		def := schema.Types[typ.Name()]
		require.NotNil(t, def, typ.Name())
		sent := map[string]bool{}
		for i := range typ.NumField() {
			name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
			require.NotNil(t, def.Fields.ForName(name), "%s.%s is not in the schema", typ.Name(), name)
			sent[name] = true
		}
		for _, f := range def.Fields {
			if f.Type.NonNull && f.DefaultValue == nil {
				require.True(t, sent[f.Name], "%s misses required %s", typ.Name(), f.Name)
			}
		}
	}
}
