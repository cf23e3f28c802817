// Command gen-types writes methods_gen.go from the daemon's rpc.discover document. Run it in clients/go:
//
//	go run ./cmd/gen-types
//
// The daemon is spawned as `$CI_SIDECAR_TEST_PYTHON -m ci_sidecar serve --stdio --debug-methods` (python3
// by default) with a private state directory, so the debug methods are typed too.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	cisidecar "github.com/ci-sidecar/ci-sidecar/clients/go"
	"github.com/ci-sidecar/ci-sidecar/clients/go/internal/gentypes"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "gen-types:", err)
		os.Exit(1)
	}
}

func run() error {
	python := os.Getenv("CI_SIDECAR_TEST_PYTHON")
	if python == "" {
		python = "python3"
	}
	dir, err := os.MkdirTemp("", "gen-types")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	c, err := cisidecar.Spawn(ctx, &cisidecar.Options{
		Argv: []string{python, "-m", "ci_sidecar", "serve", "--stdio", "--debug-methods"},
		Env:  append(os.Environ(), "CI_SIDECAR_STATE_DIR="+filepath.Join(dir, "state")),
	})
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	var raw json.RawMessage
	if err := c.Call(ctx, "rpc.discover", nil, &raw); err != nil {
		return err
	}
	var doc gentypes.Doc
	if err := json.Unmarshal(raw, &doc); err != nil {
		return err
	}
	src, err := gentypes.Render(doc)
	if err != nil {
		return err
	}
	return os.WriteFile("methods_gen.go", src, 0o644)
}
