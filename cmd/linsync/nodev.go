//go:build nodev

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// A production build (go build -tags nodev) leaves out the development commands, and with them the fake Linear and
// the test helpers they link; the commands then say so.
var errNotBuiltIn = errors.New("not built in: this binary was built with -tags nodev; use a default build (go run ./cmd/linsync)")

func dev(context.Context, Config, []string, io.Writer) error {
	return fmt.Errorf("linsync dev: %w", errNotBuiltIn)
}

func runFakeLinear(context.Context, ToolConfig, []string, io.Writer) error {
	return fmt.Errorf("linsync fake-linear: %w", errNotBuiltIn)
}

func benchCmd(context.Context, Config, []string, io.Writer) error {
	return fmt.Errorf("linsync bench: %w", errNotBuiltIn)
}

func chaosCmd(context.Context, []string, io.Writer) error {
	return fmt.Errorf("linsync chaos: %w", errNotBuiltIn)
}
