package cisidecar

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

var ciPrefixes = []string{"CI_", "GITHUB_", "GITLAB_", "JENKINS_", "BUILD_", "SYSTEM_", "TF_", "CIRCLE", "TEAMCITY_",
	"TRAVIS", "BITBUCKET_", "RUNNER_", "ACTIONS_", "AGENT_", "CHANGE_", "GIT_", "ghprb", "gitlab"}
var ciNames = map[string]bool{"CI": true, "JOB_NAME": true, "BUILD_NUMBER": true, "BUILD_URL": true, "BUILD_ID": true,
	"JOB_URL": true, "NOTIFY_SOCKET": true, "LISTEN_FDS": true, "LISTEN_PID": true, "STATE_DIRECTORY": true,
	"RUNTIME_DIRECTORY": true, "CACHE_DIRECTORY": true, "CREDENTIALS_DIRECTORY": true, "WATCHDOG_USEC": true,
	"WATCHDOG_PID": true}

func python() string {
	if p := os.Getenv("CI_SIDECAR_TEST_PYTHON"); p != "" {
		return p
	}
	return "python3"
}

// serveArgv is the command line of a daemon under test: `python -m ci_sidecar serve` with args.
func serveArgv(args ...string) []string {
	return append([]string{python(), "-m", "ci_sidecar", "serve"}, args...)
}

// scrubbedEnv is this process's environment without CI/provider variables, with private dirs under dir.
func scrubbedEnv(t *testing.T, dir string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name := kv[:strings.IndexByte(kv, '=')]
		skip := ciNames[name]
		for _, p := range ciPrefixes {
			skip = skip || strings.HasPrefix(name, p)
		}
		if !skip && !strings.HasPrefix(name, "XDG_") {
			env = append(env, kv)
		}
	}
	for _, name := range []string{"XDG_STATE_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_RUNTIME_DIR"} {
		d := filepath.Join(dir, strings.ToLower(name))
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		env = append(env, name+"="+d)
	}
	// local run output (ci-sidecar-out) would otherwise land in the client's cwd, i.e. the checkout
	return append(env, "CI_SIDECAR_STATE_DIR="+filepath.Join(dir, "state"), "CI_SIDECAR_OUTPUT_DIR="+filepath.Join(dir, "out"),
		"PYTHONUNBUFFERED=1")
}

type daemon struct {
	path string
	env  []string
	dir  string
}

// startDaemon runs `python -m ci_sidecar serve --socket <short path> --debug-methods` until the test ends.
func startDaemon(t *testing.T) *daemon {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "csg")
	if err != nil {
		t.Fatal(err)
	}
	d := &daemon{path: filepath.Join(dir, "d.sock"), env: scrubbedEnv(t, dir), dir: dir}
	// the daemon takes output_dir from the *client's* environment: keep run output out of the checkout
	if os.Getenv("CI_SIDECAR_OUTPUT_DIR") == "" {
		t.Setenv("CI_SIDECAR_OUTPUT_DIR", filepath.Join(t.TempDir(), "out"))
	}
	argv := serveArgv("--socket", d.path, "--debug-methods")
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = d.env
	logf, _ := os.Create(filepath.Join(dir, "daemon.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		logf.Close()
		os.RemoveAll(dir)
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		if conn, err := net.Dial("unix", d.path); err == nil {
			conn.Close()
			return d
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(filepath.Join(dir, "daemon.log"))
			t.Fatalf("daemon exited: %s", log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("daemon not ready")
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// connectDaemon starts a daemon (startDaemon) and connects a client to it; both end with the test, the client first.
func connectDaemon(t *testing.T) (*daemon, *Client) {
	t.Helper()
	d := startDaemon(t)
	c, err := Connect(context.Background(), d.path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = c.Close(context.Background()) })
	return d, c
}
