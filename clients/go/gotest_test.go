package cisidecar

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestGoTestCollector(t *testing.T) {
	stream := `{"Action":"run","Package":"p","Test":"TestA"}
{"Action":"output","Package":"p","Test":"TestA","Output":"=== RUN   TestA\n"}
{"Action":"output","Package":"p","Test":"TestA","Output":"    a_test.go:9: want 3, got 2\n"}
{"Action":"output","Package":"p","Test":"TestA","Output":"--- FAIL: TestA (0.00s)\n"}
{"Action":"fail","Package":"p","Test":"TestA","Elapsed":0.01}
{"Action":"pass","Package":"p","Test":"TestB","Elapsed":0}
{"Action":"fail","Package":"p","Elapsed":0.02}
{"Action":"output","Package":"q","Output":"q/x.go:3:1: syntax error\n"}
{"Action":"fail","Package":"q","Elapsed":0}
not json: build output`
	g := NewGoTestCollector()
	var got []TestResult
	for _, line := range strings.Split(stream, "\n") {
		if ev, ok := ParseGoTestLine([]byte(line)); ok {
			if r := g.Add(ev); r != nil {
				got = append(got, *r)
			}
		}
	}
	if len(got) != 3 {
		t.Fatalf("want 3 results (A failed, B passed, q errored), got %+v", got)
	}
	if got[0].Status != "failed" || got[0].Message != "a_test.go:9: want 3, got 2" || !strings.Contains(got[0].Stdout, "want 3") {
		t.Fatalf("failed test: %+v", got[0])
	}
	if got[1].Status != "passed" || got[1].Suite != "p" {
		t.Fatalf("passed test: %+v", got[1])
	}
	if got[2].Status != "error" || got[2].Suite != "q" || !strings.Contains(got[2].Details, "syntax error") {
		t.Fatalf("package failure: %+v", got[2])
	}
}

// TestGotestSidecarEndToEnd pipes a real `go test -json` run into the command and checks the run.
func TestGotestSidecarEndToEnd(t *testing.T) {
	d := startDaemon(t)
	ctx := context.Background()
	c, err := Connect(ctx, d.path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	for _, m := range []string{"create_test_run", "report_results", "complete_test_run", "get_test_run_status"} {
		if !c.Serves(m) {
			t.Skipf("daemon does not serve %s yet", m)
		}
	}
	bin := filepath.Join(t.TempDir(), "gotest-sidecar")
	build := exec.Command("go", "build", "-o", bin, "./cmd/gotest-sidecar")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	gotest := exec.Command("go", "test", "-json", "-count=1", ".")
	gotest.Dir = "testdata/sample"
	events, _ := gotest.Output() // exits 1: TestDivides fails
	cmd := exec.Command(bin, "-name", "go sample", "-quiet")
	cmd.Env = append(append([]string{}, d.env...), "CI_SIDECAR_SOCKET="+d.path)
	cmd.Stdin = bytes.NewReader(events)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("want exit 1 (a test failed), got %v; stderr: %s", err, stderr.String())
	}
	m := regexp.MustCompile(`run (\S+) failure: 4 passed, 1 failed, 0 errors, 1 skipped`).FindStringSubmatch(stderr.String())
	if m == nil {
		t.Fatalf("summary: %s", stderr.String())
	}
	run, err := c.GetTestRunStatus(ctx, m[1])
	if err != nil {
		t.Fatal(err)
	}
	// TestAdds, TestDivides, TestLater, TestTable, TestTable/one, TestTable/two
	if run.Name != "go sample" || run.Status != "finished" || run.Counts.Total != 6 || run.Counts.Failed != 1 {
		t.Fatalf("run: %+v", run)
	}
}
