// Command gotest-sidecar streams the results of `go test` into a ci-sidecar run. It runs `go test`
// itself, so a build failure or a failing `go test` always fails the run and the command:
//
//	gotest-sidecar -name "go unit" -- ./...        # runs `go test -json ./...`
//
// or reads `go test -json` from stdin (then only `set -o pipefail` makes the shell see go test's status):
//
//	set -o pipefail; go test -json ./... 2>&1 | gotest-sidecar -name "go unit"
//
// It prints the tests' output as plain `go test` would. It joins CI_SIDECAR_RUN_ID when set (the owner
// completes it), else creates a run, completes it and prints where its report is. It talks to
// $CI_SIDECAR_SOCKET when set, else spawns `ci-sidecar serve --stdio`. The exit status is 1 when a
// test, a package or `go test` failed, 2 when the results could not be reported.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	cisidecar "github.com/ci-sidecar/ci-sidecar/clients/go"
)

const flushEvery = 100

type options struct {
	name, socket string
	quiet        bool
	goTestArgs   []string // run `go test -json <args>` when set, else read stdin
}

func main() {
	var o options
	flag.StringVar(&o.name, "name", "go test", "name of the run to create (when CI_SIDECAR_RUN_ID is not set)")
	flag.StringVar(&o.socket, "socket", "", "daemon socket (default: $CI_SIDECAR_SOCKET, else spawn ci-sidecar serve --stdio)")
	flag.BoolVar(&o.quiet, "quiet", false, "do not echo the tests' output")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: gotest-sidecar [flags] -- [go test flags] [packages]\n"+
			"       go test -json ./... 2>&1 | gotest-sidecar [flags]\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	o.goTestArgs = flag.Args()
	if st, err := os.Stdin.Stat(); len(o.goTestArgs) == 0 && err == nil && st.Mode()&os.ModeCharDevice != 0 {
		// nothing piped in and nothing to run: waiting on the terminal would look like a hang
		flag.Usage()
		os.Exit(2)
	}
	os.Exit(run(os.Stdin, os.Stdout, os.Stderr, o))
}

// reporter batches results into report_results calls; the first failure stops it.
type reporter struct {
	c        *cisidecar.Client
	runID    string
	batch    []cisidecar.TestResult
	sent     int
	failed   bool
	err      error
	lastSend time.Time
}

func (r *reporter) add(ctx context.Context, results []cisidecar.TestResult) {
	for _, res := range results {
		if res.Status == "failed" || res.Status == "error" {
			r.failed = true
		}
		r.batch = append(r.batch, res)
	}
	if len(r.batch) >= flushEvery || time.Since(r.lastSend) > time.Second {
		r.flush(ctx)
	}
}

func (r *reporter) flush(ctx context.Context) {
	r.lastSend = time.Now()
	if len(r.batch) == 0 || r.err != nil {
		return
	}
	if _, err := r.c.ReportResults(ctx, r.runID, r.batch); err != nil {
		r.err = err
		return
	}
	r.sent += len(r.batch)
	r.batch = r.batch[:0]
}

func run(in io.Reader, out, errOut io.Writer, o options) int {
	ctx := context.Background()
	var c *cisidecar.Client
	var err error
	opts := &cisidecar.Options{ClientName: "gotest-sidecar"}
	if o.socket != "" {
		c, err = cisidecar.Connect(ctx, o.socket, opts)
	} else {
		c, err = cisidecar.Open(ctx, opts)
	}
	if err != nil {
		fmt.Fprintf(errOut, "gotest-sidecar: %v\n", err)
		return 2
	}
	defer c.Close(ctx)
	testRun, joined, err := c.JoinOrCreateRun(ctx, o.name)
	if err != nil {
		fmt.Fprintf(errOut, "gotest-sidecar: cannot create or join the run: %v\n", err)
		return 2
	}

	collector := cisidecar.NewGoTestCollector()
	collector.Resolve = newResolver().resolve
	rep := &reporter{c: c, runID: testRun.ID, lastSend: time.Now()}
	var mu sync.Mutex // the collector sees stdout and stderr lines from two goroutines
	onLine := func(line []byte) {
		mu.Lock()
		defer mu.Unlock()
		ev, ok := cisidecar.ParseGoTestLine(line)
		if !o.quiet {
			if !ok {
				fmt.Fprintln(out, string(line))
			} else if ev.Action == "output" || ev.Action == "build-output" {
				fmt.Fprint(out, ev.Output)
			}
		}
		rep.add(ctx, collector.AddLine(line))
	}
	onStderr := func(line []byte) {
		fmt.Fprintln(errOut, string(line)) // compiler errors stay visible
		mu.Lock()
		defer mu.Unlock()
		collector.AddStderr(string(line))
	}

	exitCode := -1
	interrupted := false
	if len(o.goTestArgs) > 0 {
		exitCode, interrupted, err = runGoTest(o.goTestArgs, onLine, onStderr)
	} else {
		err = scanLines(in, onLine)
	}
	if err != nil {
		fmt.Fprintf(errOut, "gotest-sidecar: %v\n", err)
		return 2
	}
	rep.add(ctx, collector.Finish(exitCode))
	rep.flush(ctx)
	if rep.err != nil {
		fmt.Fprintf(errOut, "gotest-sidecar: results NOT reported to run %s: %v\n", testRun.ID, rep.err)
		return 2
	}
	code := 0
	if rep.failed || exitCode > 0 {
		code = 1
	}
	if joined {
		fmt.Fprintf(errOut, "gotest-sidecar: reported %d results to run %s (joined; its owner completes it)\n", rep.sent, testRun.ID)
		return code
	}
	conclusion := ""
	if interrupted {
		conclusion = "cancelled"
	}
	done, err := c.CompleteTestRunWait(ctx, testRun.ID, conclusion, 30*time.Second)
	if err != nil {
		fmt.Fprintf(errOut, "gotest-sidecar: cannot complete run %s: %v\n", testRun.ID, err)
		return 2
	}
	fmt.Fprintf(errOut, "gotest-sidecar: run %s %s: %d passed, %d failed, %d errors, %d skipped\n",
		done.ID, done.Conclusion, done.Counts.Passed, done.Counts.Failed, done.Counts.Errors, done.Counts.Skipped)
	if done.OutputDir != "" {
		fmt.Fprintf(errOut, "gotest-sidecar: report: %s\n", filepath.Join(done.OutputDir, "report.html"))
	}
	if undelivered := done.Delivery.Pending + done.Delivery.Failed; undelivered > 0 {
		fmt.Fprintf(errOut, "gotest-sidecar: %d provider writes undelivered %s\n", undelivered, done.Delivery.LastError)
	}
	return code
}

func scanLines(r io.Reader, each func([]byte)) error {
	scanner := bufio.NewScanner(r)
	scanner.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for scanner.Scan() {
		each(scanner.Bytes())
	}
	if err := scanner.Err(); err != nil {
		return fmt.Errorf("reading the test output: %w", err)
	}
	return nil
}

// runGoTest runs `go test -json args…`, feeding its stdout and stderr line by line; SIGINT and
// SIGTERM are passed on to it. exitCode is go test's exit status.
func runGoTest(args []string, onLine, onStderr func([]byte)) (exitCode int, interrupted bool, err error) {
	argv := append([]string{"test", "-json"}, args...)
	cmd := exec.Command("go", argv...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return 0, false, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return 0, false, err
	}
	if err := cmd.Start(); err != nil {
		return 0, false, fmt.Errorf("cannot run go test: %w", err)
	}
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(signals)
	stopForward := make(chan struct{})
	var got os.Signal
	var gotMu sync.Mutex
	go func() {
		for {
			select {
			case s := <-signals:
				gotMu.Lock()
				got = s
				gotMu.Unlock()
				_ = cmd.Process.Signal(s)
			case <-stopForward:
				return
			}
		}
	}()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = scanLines(stderr, onStderr)
	}()
	readErr := scanLines(stdout, onLine)
	wg.Wait()
	waitErr := cmd.Wait()
	close(stopForward)
	gotMu.Lock()
	interrupted = got != nil
	gotMu.Unlock()
	if readErr != nil {
		return 0, interrupted, readErr
	}
	var ee *exec.ExitError
	if errors.As(waitErr, &ee) {
		if code := ee.ExitCode(); code >= 0 {
			return code, interrupted, nil
		}
		return 1, interrupted, nil // killed by a signal
	}
	if waitErr != nil {
		return 0, interrupted, waitErr
	}
	return 0, interrupted, nil
}
