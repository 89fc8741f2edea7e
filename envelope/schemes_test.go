package envelope_test

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"
	"gocloud.dev/secrets"

	_ "github.com/linsync/linsync/envelope" // registers the schemes linsync compiles in
	"github.com/linsync/linsync/linsynctest"
)

// keyScheme finds key URL schemes the way documentation writes them: a KMS-looking word followed by "://".
var keyScheme = regexp.MustCompile(`\b([a-z0-9]*(?:kms|vault|keyvault|secrets|base64key))://`)

// TestDocumentedKeySchemesAreCompiledIn: every key URL scheme an example or a deployment file names is one that
// linsync's binary can open, so no operator copies an example that fails at start-up.
func TestDocumentedKeySchemesAreCompiledIn(t *testing.T) {
	t.Parallel()
	root := linsynctest.RepoRoot(t)
	files := []string{"README.md", "deploy/README.md", "docker-compose.yml"}
	k8s, err := filepath.Glob(filepath.Join(root, "deploy/k8s/*.yaml"))
	require.NoError(t, err)
	for _, f := range k8s {
		rel, err := filepath.Rel(root, f)
		require.NoError(t, err)
		files = append(files, rel)
	}
	seen := 0
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(root, f))
		require.NoError(t, err)
		for _, m := range keyScheme.FindAllStringSubmatch(string(b), -1) {
			seen++
			require.True(t, secrets.DefaultURLMux().ValidKeeperScheme(m[1]), "%s names the key URL scheme %s://, which linsync does not compile in", f, m[1])
		}
	}
	require.Positive(t, seen, "the documentation names key URLs")
}
