package cisidecar

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func collect(t *testing.T, g *GoTestCollector, stream string) []TestResult {
	t.Helper()
	var got []TestResult
	for _, line := range strings.Split(strings.TrimSpace(stream), "\n") {
		got = append(got, g.AddLine([]byte(line))...)
	}
	return got
}

func byName(results []TestResult) map[string]TestResult {
	m := map[string]TestResult{}
	for _, r := range results {
		m[r.Name] = r
	}
	return m
}

// A failed test's message is its failing assertion (the last entry it printed), with file and line;
// a parent whose only fault is a failed subtest is not a second failure.
func TestGoTestCollectorFailures(t *testing.T) {
	stream := `{"Action":"run","Package":"p","Test":"TestA"}
{"Action":"output","Package":"p","Test":"TestA","Output":"=== RUN   TestA\n"}
{"Action":"output","Package":"p","Test":"TestA","Output":"    a_test.go:8: connecting\n"}
{"Action":"output","Package":"p","Test":"TestA","Output":"    a_test.go:9: want 3, got 2\n"}
{"Action":"output","Package":"p","Test":"TestA","Output":"        second line of the message\n"}
{"Action":"output","Package":"p","Test":"TestA","Output":"--- FAIL: TestA (0.00s)\n"}
{"Action":"fail","Package":"p","Test":"TestA","Elapsed":0.01}
{"Action":"run","Package":"p","Test":"TestP"}
{"Action":"run","Package":"p","Test":"TestP/one"}
{"Action":"run","Package":"p","Test":"TestP/two"}
{"Action":"output","Package":"p","Test":"TestP/two","Output":"    p_test.go:20: child failed\n"}
{"Action":"pass","Package":"p","Test":"TestP/one","Elapsed":0}
{"Action":"fail","Package":"p","Test":"TestP/two","Elapsed":0}
{"Action":"output","Package":"p","Test":"TestP","Output":"    p_test.go:18: parent log\n"}
{"Action":"fail","Package":"p","Test":"TestP","Elapsed":0}
{"Action":"run","Package":"p","Test":"TestT"}
{"Action":"run","Package":"p","Test":"TestT/x"}
{"Action":"pass","Package":"p","Test":"TestT/x","Elapsed":0}
{"Action":"pass","Package":"p","Test":"TestT","Elapsed":0}
{"Action":"run","Package":"p","Test":"TestPanics"}
{"Action":"output","Package":"p","Test":"TestPanics","Output":"--- FAIL: TestPanics (0.00s)\n"}
{"Action":"output","Package":"p","Test":"TestPanics","Output":"panic: assignment to entry in nil map [recovered]\n"}
{"Action":"output","Package":"p","Test":"TestPanics","Output":"goroutine 18 [running]:\n"}
{"Action":"output","Package":"p","Test":"TestPanics","Output":"testing.tRunner.func1.2({0x508ec0, 0x551ca0})\n"}
{"Action":"output","Package":"p","Test":"TestPanics","Output":"\t/usr/lib/go/src/testing/testing.go:1396 +0x24e\n"}
{"Action":"output","Package":"p","Test":"TestPanics","Output":"p.TestPanics(0x0?)\n"}
{"Action":"output","Package":"p","Test":"TestPanics","Output":"\t/src/p/p_test.go:30 +0x2e\n"}
{"Action":"fail","Package":"p","Test":"TestPanics","Elapsed":0}
{"Action":"fail","Package":"p","Elapsed":0.02}`
	g := NewGoTestCollector()
	g.Resolve = func(pkg, file string) string {
		if filepath.IsAbs(file) {
			return file
		}
		return "dir/" + file
	}
	got := byName(collect(t, g, stream))
	if len(got) != 5 {
		t.Fatalf("want TestA, TestP/one, TestP/two, TestT/x and TestPanics only (containers are not tests), got %+v", got)
	}
	a := got["TestA"]
	if a.Status != "failed" || a.Message != "want 3, got 2\nsecond line of the message" || a.File != "dir/a_test.go" || a.Line != 9 {
		t.Fatalf("TestA: want the assertion with its place, got %+v", a)
	}
	if !strings.Contains(a.Details, "connecting") || !strings.Contains(a.Stdout, "=== RUN") {
		t.Fatalf("TestA: the log belongs in details and the output in stdout: %+v", a)
	}
	if two := got["TestP/two"]; two.Status != "failed" || two.Message != "child failed" || two.Line != 20 {
		t.Fatalf("TestP/two: %+v", two)
	}
	if _, ok := got["TestP"]; ok {
		t.Fatalf("TestP failed only because TestP/two did: it must not be a second failure")
	}
	if got["TestT/x"].Status != "passed" {
		t.Fatalf("TestT/x: %+v", got["TestT/x"])
	}
	p := got["TestPanics"]
	if p.Status != "error" || p.Message != "panic: assignment to entry in nil map" || p.File != "/src/p/p_test.go" || p.Line != 30 {
		t.Fatalf("TestPanics: want the panic and the test's own frame, got %+v", p)
	}
}

// A package that does not compile fails the run: Go before 1.24 prints `FAIL pkg [build failed]` as
// text and the compiler errors on stderr; Go 1.24 reports both as events.
func TestGoTestCollectorBuildFailures(t *testing.T) {
	g := NewGoTestCollector()
	g.AddStderr("# example.com/m/broken [example.com/m/broken.test]")
	g.AddStderr("broken/broken_test.go:3:28: undefined: helper")
	got := collect(t, g, `FAIL	example.com/m/broken [build failed]
FAIL	example.com/m/nosetup [setup failed]
{"Action":"pass","Package":"example.com/m/ok","Test":"TestOK","Elapsed":0}
{"Action":"pass","Package":"example.com/m/ok","Elapsed":0}`)
	got = append(got, g.Finish(2)...)
	m := map[string]TestResult{}
	for _, r := range got {
		m[r.Suite+" "+r.Name] = r
	}
	b := m["example.com/m/broken (build)"]
	if b.Status != "error" || b.File != "broken/broken_test.go" || b.Line != 3 ||
		b.Message != "package example.com/m/broken does not compile: undefined: helper" || !strings.Contains(b.Details, "undefined: helper") {
		t.Fatalf("build failure: %+v (all: %+v)", b, got)
	}
	if s := m["example.com/m/nosetup (setup)"]; s.Status != "error" {
		t.Fatalf("setup failure: %+v", got)
	}
	if len(got) != 3 {
		t.Fatalf("go test's exit 2 is explained by the broken packages: no extra entry; got %+v", got)
	}

	g = NewGoTestCollector()
	got = collect(t, g, `{"ImportPath":"example.com/m/b [example.com/m/b.test]","Action":"build-output","Output":"# example.com/m/b\n"}
{"ImportPath":"example.com/m/b [example.com/m/b.test]","Action":"build-output","Output":"b/b_test.go:5:2: syntax error\n"}
{"ImportPath":"example.com/m/b [example.com/m/b.test]","Action":"build-fail"}
{"Action":"start","Package":"example.com/m/b"}
{"Action":"fail","Package":"example.com/m/b","Elapsed":0,"FailedBuild":"example.com/m/b [example.com/m/b.test]"}`)
	if len(got) != 1 || got[0].Name != "(build)" || got[0].Line != 5 || len(g.Finish(1)) != 0 {
		t.Fatalf("Go 1.24 build events: %+v", got)
	}
}

// A package failing outside its tests, tests a crash left unfinished, a failing `go test` with no
// failed test and an empty input all become failing entries.
func TestGoTestCollectorFailuresOutsideTests(t *testing.T) {
	g := NewGoTestCollector()
	got := collect(t, g, `{"Action":"output","Package":"m","Output":"panic: fixture database unavailable\n"}
{"Action":"output","Package":"m","Output":"m.TestMain(0x0)\n"}
{"Action":"output","Package":"m","Output":"\t/src/m/m_test.go:10 +0x27\n"}
{"Action":"fail","Package":"m","Elapsed":0}
{"Action":"run","Package":"s","Test":"TestSlow"}
{"Action":"run","Package":"s","Test":"TestSlow/inner"}
{"Action":"output","Package":"s","Test":"TestSlow/inner","Output":"panic: test timed out after 1s\n"}
{"Action":"fail","Package":"s","Elapsed":1}`)
	if len(got) != 2 {
		t.Fatalf("want (package) of m and the unfinished TestSlow/inner, got %+v", got)
	}
	if got[0].Name != "(package)" || got[0].Message != "panic: fixture database unavailable" || got[0].Line != 10 {
		t.Fatalf("TestMain panic: %+v", got[0])
	}
	if got[1].Name != "TestSlow/inner" || got[1].Status != "error" || got[1].Message != "panic: test timed out after 1s" {
		t.Fatalf("unfinished test: %+v", got[1])
	}

	g = NewGoTestCollector()
	collect(t, g, `{"Action":"pass","Package":"ok","Test":"TestOK","Elapsed":0}`)
	g.AddStderr("go: some trouble after the tests")
	if f := g.Finish(1); len(f) != 1 || f[0].Name != "(go test)" || !strings.Contains(f[0].Message, "exited 1") ||
		!strings.Contains(f[0].Details, "some trouble") {
		t.Fatalf("go test exit 1 with no failed test: %+v", f)
	}
	if f := NewGoTestCollector().Finish(-1); len(f) != 1 || f[0].Status != "error" {
		t.Fatalf("no events at all must fail the run: %+v", f)
	}
}

func buildGotestSidecar(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "gotest-sidecar")
	build := exec.Command("go", "build", "-o", bin, "./cmd/gotest-sidecar")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// runDaemon starts a daemon serving the run methods, a client of it and a fresh gotest-sidecar binary.
func runDaemon(t *testing.T) (*daemon, *Client, string) {
	d, c := connectDaemon(t)
	for _, m := range []string{"create_test_run", "report_results", "complete_test_run", "get_test_run_status"} {
		if !c.Serves(m) {
			t.Skipf("daemon does not serve %s yet", m)
		}
	}
	return d, c, buildGotestSidecar(t)
}

// runAgainst runs cmd with the daemon's environment; its stderr and exit status.
func runAgainst(d *daemon, cmd *exec.Cmd, env ...string) (string, int) {
	cmd.Env = append(append(append([]string{}, d.env...), "CI_SIDECAR_SOCKET="+d.path), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return stderr.String(), ee.ExitCode()
	}
	if err != nil {
		return stderr.String() + err.Error(), -1
	}
	return stderr.String(), 0
}

var summaryLine = regexp.MustCompile(`run (\S+) (\w+): (\d+) passed, (\d+) failed, (\d+) errors, (\d+) skipped`)

// TestGotestSidecarEndToEnd pipes a real `go test -json` run into the command and checks the run.
func TestGotestSidecarEndToEnd(t *testing.T) {
	d, c, bin := runDaemon(t)
	gotest := exec.Command("go", "test", "-json", "-count=1", ".")
	gotest.Dir = "testdata/sample"
	events, _ := gotest.Output() // exits 1: TestDivides fails
	cmd := exec.Command(bin, "-name", "go sample", "-quiet")
	cmd.Stdin = bytes.NewReader(events)
	stderr, code := runAgainst(d, cmd)
	if code != 1 {
		t.Fatalf("want exit 1 (a test failed), got %d; stderr: %s", code, stderr)
	}
	// TestAdds, TestDivides, TestLater, TestTable/one, TestTable/two (TestTable only holds subtests)
	m := regexp.MustCompile(`run (\S+) failure: 3 passed, 1 failed, 0 errors, 1 skipped`).FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("summary: %s", stderr)
	}
	run, err := c.GetTestRunStatus(context.Background(), m[1])
	if err != nil {
		t.Fatal(err)
	}
	if run.Name != "go sample" || run.Status != "finished" || run.Counts.Total != 5 || run.Counts.Failed != 1 {
		t.Fatalf("run: %+v", run)
	}
	report := regexp.MustCompile(`gotest-sidecar: report: (\S+)`).FindStringSubmatch(stderr)
	if report == nil {
		t.Fatalf("the report path is printed at the end: %s", stderr)
	}
	if _, err := os.Stat(report[1]); err != nil {
		t.Fatalf("the printed report does not exist: %v", err)
	}
}

type storedResult struct {
	Name, Suite, Status, Message, File string
	Line                               int
}

func runResults(t *testing.T, reportDir string) map[string]storedResult {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(reportDir, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct{ Results []storedResult }
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	m := map[string]storedResult{}
	for _, r := range doc.Results {
		m[r.Suite+" "+r.Name] = r
	}
	return m
}

// `gotest-sidecar -- ./...` runs go test itself: a package that does not compile, a TestMain panic
// and failing assertions make a failed run and exit 1, each with its message and place.
func TestGotestSidecarRunsGoTest(t *testing.T) {
	d, _, bin := runDaemon(t)
	cmd := exec.Command(bin, "-name", "broken module", "-quiet", "--", "-count=1", "./...")
	cmd.Dir = "testdata/broken"
	stderr, code := runAgainst(d, cmd)
	if code != 1 {
		t.Fatalf("want exit 1, got %d; stderr: %s", code, stderr)
	}
	if !strings.Contains(stderr, "undefinedHelper") {
		t.Fatalf("the compiler's errors stay visible on stderr: %s", stderr)
	}
	// TestLogsThenFails, TestParent/ok, TestParent/bad, TestPasses, (build) of nocompile, (package) of mainpanic
	m := summaryLine.FindStringSubmatch(stderr)
	if m == nil || m[2] != "failure" || m[3] != "2" || m[4] != "2" || m[5] != "2" {
		t.Fatalf("want failure: 2 passed, 2 failed, 2 errors; stderr: %s", stderr)
	}
	report := regexp.MustCompile(`gotest-sidecar: report: (\S+)`).FindStringSubmatch(stderr)
	if report == nil {
		t.Fatalf("no report path: %s", stderr)
	}
	got := runResults(t, filepath.Dir(report[1]))
	if len(got) != 6 {
		t.Fatalf("want 6 results, got %+v", got)
	}
	a := got["example.com/broken/asserts TestLogsThenFails"]
	if a.Message != "got 2 rows, want 3" || a.File != "asserts/asserts_test.go" || a.Line != 8 {
		t.Fatalf("the failing assertion, not the first log line: %+v", a)
	}
	if b := got["example.com/broken/nocompile (build)"]; b.Status != "error" || b.File != "nocompile/nocompile_test.go" ||
		!strings.Contains(b.Message, "undefined: undefinedHelper") {
		t.Fatalf("build failure: %+v", b)
	}
	if p := got["example.com/broken/mainpanic (package)"]; p.Status != "error" || p.Message != "panic: fixture database unavailable" {
		t.Fatalf("TestMain panic: %+v", p)
	}
}

// The documented pipeline fails when go test fails: with pipefail the shell sees go test's status,
// and the build failure line on stdin fails the run itself.
func TestGotestSidecarPipelineFails(t *testing.T) {
	d, _, bin := runDaemon(t)
	script := `set -o pipefail; go test -json -count=1 ./nocompile ./asserts 2>&1 | "$BIN" -name piped -quiet`
	cmd := exec.Command("bash", "-c", script)
	cmd.Dir = "testdata/broken"
	stderr, code := runAgainst(d, cmd, "BIN="+bin)
	if code == 0 {
		t.Fatalf("the pipeline must fail; stderr: %s", stderr)
	}
	m := summaryLine.FindStringSubmatch(stderr)
	if m == nil || m[2] != "failure" || m[5] != "1" {
		t.Fatalf("want a failed run with the build failure as an error: %s", stderr)
	}
}
