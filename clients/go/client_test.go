package cisidecar

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestClientEnvironmentDrivesCIDetection(t *testing.T) {
	t.Setenv("GITHUB_ACTIONS", "true") // the client sends its environment at initialize
	t.Setenv("CI", "true")
	t.Setenv("GITHUB_REPOSITORY", "octo/widgets")
	_, c := connectDaemon(t)
	var init struct {
		CI struct {
			Provider   string `json:"provider"`
			Repository string `json:"repository"`
		} `json:"ci"`
	}
	if err := json.Unmarshal(c.InitializeResult, &init); err != nil {
		t.Fatal(err)
	}
	if init.CI.Provider != "github" || init.CI.Repository != "octo/widgets" {
		t.Fatalf("the daemon did not use the client's environment: %+v", init.CI)
	}
}

func TestErrorsAreRPCErrors(t *testing.T) {
	_, c := connectDaemon(t)
	ctx := context.Background()
	err := c.Call(ctx, "sidecar/debug/sleep", map[string]any{"seconds": "x"}, nil)
	var rpcErr *RPCError
	if !errors.As(err, &rpcErr) || rpcErr.Code != CodeInvalidParams {
		t.Fatalf("want -32602, got %v", err)
	}
	var data struct{ Path string }
	if err := rpcErr.DecodeData(&data); err != nil || data.Path != "$.seconds" {
		t.Fatalf("data: %s", rpcErr.Data)
	}
}

func TestConcurrentCallsCancelAndProgress(t *testing.T) {
	_, c := connectDaemon(t)
	ctx := context.Background()
	var mu sync.Mutex
	var kinds []string
	off := c.OnNotification(func(method string, params json.RawMessage) {
		if method != "$/progress" {
			return
		}
		var p struct{ Value struct{ Kind string } }
		_ = json.Unmarshal(params, &p)
		mu.Lock()
		kinds = append(kinds, p.Value.Kind)
		mu.Unlock()
	})
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			errs <- c.Call(ctx, "sidecar/debug/sleep", map[string]any{"seconds": 0.4, "workDoneToken": i}, nil)
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if time.Since(start) > 2*time.Second {
		t.Fatalf("8 concurrent 0.4 s sleeps took %v: serialized", time.Since(start))
	}
	off()
	mu.Lock()
	begins := strings.Count(strings.Join(kinds, ","), "begin")
	mu.Unlock()
	if begins != 8 {
		t.Fatalf("want 8 progress begins, got %v", kinds)
	}

	cctx, cancel := context.WithTimeout(ctx, 150*time.Millisecond)
	defer cancel()
	err := c.Call(cctx, "sidecar/debug/sleep", map[string]any{"seconds": 30}, nil)
	var rpcErr *RPCError
	if !errors.As(err, &rpcErr) || rpcErr.Code != CodeRequestCancelled || !errors.Is(err, context.Canceled) {
		t.Fatalf("want -32800, got %v", err)
	}
}

func TestMissingDaemon(t *testing.T) {
	ctx := context.Background()
	_, err := Connect(ctx, "/tmp/no-such-dir-cs/d.sock", nil)
	if !errors.Is(err, ErrDaemonNotFound) || !strings.Contains(err.Error(), "/tmp/no-such-dir-cs/d.sock") {
		t.Fatalf("want ErrDaemonNotFound naming the path, got %v", err)
	}
	_, err = Spawn(ctx, &Options{Argv: []string{"ci-sidecar-not-installed-xyz"}})
	if !errors.Is(err, ErrDaemonNotFound) {
		t.Fatalf("want ErrDaemonNotFound, got %v", err)
	}
}

func TestStdioDaemonDiesMidRequest(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	c, err := Spawn(ctx, &Options{Argv: serveArgv("--stdio", "--debug-methods"),
		Env: scrubbedEnv(t, dir), Stderr: os.Stderr})
	if err != nil {
		t.Fatal(err)
	}
	var st struct{ Transport string }
	if err := c.Call(ctx, "sidecar/status", nil, &st); err != nil || st.Transport != "stdio" {
		t.Fatalf("status: %v %+v", err, st)
	}
	time.AfterFunc(100*time.Millisecond, func() { _ = c.cmd.Process.Kill() })
	err = c.Call(ctx, "sidecar/debug/sleep", map[string]any{"seconds": 30}, nil)
	if !errors.Is(err, ErrConnectionLost) {
		t.Fatalf("want ErrConnectionLost, got %v", err)
	}
	if err := c.Call(ctx, "sidecar/status", nil, nil); !errors.Is(err, ErrConnectionLost) {
		t.Fatalf("later calls: want ErrConnectionLost, got %v", err)
	}
	_, _ = c.Close(ctx)
}

func TestStdioCloseExitsZeroAndRunID(t *testing.T) {
	t.Setenv("CI_SIDECAR_RUN_ID", "run-from-exec")
	ctx := context.Background()
	c, err := Spawn(ctx, &Options{Argv: serveArgv("--stdio"), Env: scrubbedEnv(t, t.TempDir())})
	if err != nil {
		t.Fatal(err)
	}
	if c.RunID != "run-from-exec" {
		t.Fatalf("RunID %q", c.RunID)
	}
	summary, err := c.Close(ctx)
	if err != nil || summary == nil {
		t.Fatalf("close: %v %v", summary, err)
	}
	if c.ExitCode() != 0 {
		t.Fatalf("exit code %d", c.ExitCode())
	}
}
