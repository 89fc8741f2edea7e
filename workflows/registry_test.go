package workflows

import (
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestWorkflowTypeNames: every registered name is its function's name, which is what Temporal derives when a
// workflow is started by function rather than by name.
func TestWorkflowTypeNames(t *testing.T) {
	t.Parallel()
	for name, fn := range All() {
		full := runtime.FuncForPC(reflect.ValueOf(fn).Pointer()).Name()
		require.Equal(t, name, full[strings.LastIndex(full, ".")+1:])
	}
}
