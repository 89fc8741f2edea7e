//go:build tools

// Package temporal pins the Temporal CLI that the dev stack and integration tests run.
// It lives in its own module so that the server's large dependency tree stays out of the main go.mod.
package temporal

import _ "github.com/temporalio/cli/cmd/temporal"
