// Command gotest-sidecar reads `go test -json` on stdin, prints the tests' output as plain `go test`
// would, and streams every result into a ci-sidecar run:
//
//	go test -json ./... | gotest-sidecar -name "go unit"
//
// It joins CI_SIDECAR_RUN_ID when set (the owner completes it), else creates a run and completes it.
// It talks to $CI_SIDECAR_SOCKET when set, else spawns `ci-sidecar serve --stdio`. The exit status is 1
// when a test or package failed, 2 when the results could not be reported.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	cisidecar "github.com/ci-sidecar/ci-sidecar/clients/go"
)

const flushEvery = 100

func main() {
	name := flag.String("name", "go test", "name of the run to create (when CI_SIDECAR_RUN_ID is not set)")
	socket := flag.String("socket", "", "daemon socket (default: $CI_SIDECAR_SOCKET, else spawn ci-sidecar serve --stdio)")
	quiet := flag.Bool("quiet", false, "do not echo the tests' output")
	flag.Parse()
	os.Exit(run(os.Stdin, os.Stdout, os.Stderr, *name, *socket, *quiet))
}

func run(in io.Reader, out, errOut io.Writer, name, socket string, quiet bool) int {
	ctx := context.Background()
	var c *cisidecar.Client
	var err error
	opts := &cisidecar.Options{ClientName: "gotest-sidecar"}
	if socket != "" {
		c, err = cisidecar.Connect(ctx, socket, opts)
	} else {
		c, err = cisidecar.Open(ctx, opts)
	}
	if err != nil {
		fmt.Fprintf(errOut, "gotest-sidecar: %v\n", err)
		return 2
	}
	defer c.Close(ctx)
	run, joined, err := c.JoinOrCreateRun(ctx, name)
	if err != nil {
		fmt.Fprintf(errOut, "gotest-sidecar: cannot create or join the run: %v\n", err)
		return 2
	}

	collector := cisidecar.NewGoTestCollector()
	var batch []cisidecar.TestResult
	failed, reported := false, 0
	var reportErr error
	flush := func() {
		if len(batch) == 0 || reportErr != nil {
			return
		}
		if _, err := c.ReportResults(ctx, run.ID, batch); err != nil {
			reportErr = err
			return
		}
		reported += len(batch)
		batch = batch[:0]
	}
	lastFlush := time.Now()
	scanner := bufio.NewScanner(in)
	scanner.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for scanner.Scan() {
		line := scanner.Bytes()
		ev, ok := cisidecar.ParseGoTestLine(line)
		if !ok {
			// build errors and other text go through untouched
			if !quiet {
				fmt.Fprintln(out, string(line))
			}
			continue
		}
		if ev.Action == "output" && !quiet {
			fmt.Fprint(out, ev.Output)
		}
		if ev.Action == "fail" {
			failed = true
		}
		if r := collector.Add(ev); r != nil {
			batch = append(batch, *r)
			if len(batch) >= flushEvery || time.Since(lastFlush) > time.Second {
				flush()
				lastFlush = time.Now()
			}
		}
	}
	flush()
	if err := scanner.Err(); err != nil {
		fmt.Fprintf(errOut, "gotest-sidecar: reading stdin: %v\n", err)
		return 2
	}
	if reportErr != nil {
		fmt.Fprintf(errOut, "gotest-sidecar: results NOT reported to run %s: %v\n", run.ID, reportErr)
		return 2
	}
	if joined {
		fmt.Fprintf(errOut, "gotest-sidecar: reported %d results to run %s (joined; its owner completes it)\n", reported, run.ID)
	} else {
		done, err := c.CompleteTestRun(ctx, run.ID, "")
		if err != nil {
			fmt.Fprintf(errOut, "gotest-sidecar: cannot complete run %s: %v\n", run.ID, err)
			return 2
		}
		fmt.Fprintf(errOut, "gotest-sidecar: run %s %s: %d passed, %d failed, %d errors, %d skipped\n",
			done.ID, done.Conclusion, done.Counts.Passed, done.Counts.Failed, done.Counts.Errors, done.Counts.Skipped)
	}
	if failed {
		return 1
	}
	return 0
}
