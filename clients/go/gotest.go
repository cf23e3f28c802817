package cisidecar

import (
	"encoding/json"
	"strings"
)

// GoTestEvent is one line of `go test -json` (cmd/test2json).
type GoTestEvent struct {
	Time    string   `json:"Time"`
	Action  string   `json:"Action"` // run pause cont pass bench fail output skip start
	Package string   `json:"Package"`
	Test    string   `json:"Test"`
	Elapsed *float64 `json:"Elapsed"`
	Output  string   `json:"Output"`
}

const maxTestOutput = 64 * 1024

// GoTestCollector turns `go test -json` events into TestResults: one per finished test, with its
// output, plus an error result for a package that failed without a failing test (build errors, panics
// in TestMain, timeouts).
type GoTestCollector struct {
	output      map[string]*strings.Builder // "pkg\x00test" -> output
	pkgFailures map[string]bool             // package had a failing test
}

// NewGoTestCollector returns an empty collector.
func NewGoTestCollector() *GoTestCollector {
	return &GoTestCollector{output: map[string]*strings.Builder{}, pkgFailures: map[string]bool{}}
}

func (g *GoTestCollector) buf(key string) *strings.Builder {
	b := g.output[key]
	if b == nil {
		b = &strings.Builder{}
		g.output[key] = b
	}
	return b
}

// Add consumes one event; it returns a result when the event finishes a test (or fails a package).
func (g *GoTestCollector) Add(ev GoTestEvent) *TestResult {
	key := ev.Package + "\x00" + ev.Test
	switch ev.Action {
	case "output":
		if b := g.buf(key); b.Len() < maxTestOutput {
			b.WriteString(ev.Output)
		}
		return nil
	case "pass", "fail", "skip":
	default:
		return nil
	}
	out := ""
	if b := g.output[key]; b != nil {
		out = b.String()
		delete(g.output, key)
	}
	if ev.Test == "" {
		// the package's own outcome: only a result when no test explains the failure
		if ev.Action != "fail" || g.pkgFailures[ev.Package] {
			return nil
		}
		return &TestResult{Name: "(package)", Suite: ev.Package, Classname: ev.Package, Status: "error",
			Message: "package " + ev.Package + " failed", Details: out, Duration: ev.Elapsed}
	}
	r := &TestResult{Name: ev.Test, Suite: ev.Package, Classname: ev.Package, Duration: ev.Elapsed, Stdout: out}
	switch ev.Action {
	case "pass":
		r.Status = "passed"
	case "skip":
		r.Status = "skipped"
		r.Message = lastLine(out, "--- SKIP")
	case "fail":
		r.Status = "failed"
		g.pkgFailures[ev.Package] = true
		r.Message = failureMessage(out)
	}
	return r
}

// failureMessage is the test's first log line that is not runner chatter (=== RUN, --- FAIL).
func failureMessage(out string) string {
	for _, line := range strings.Split(out, "\n") {
		t := strings.TrimSpace(line)
		if t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- ") {
			continue
		}
		return t
	}
	return "test failed"
}

func lastLine(out, skipPrefix string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		t := strings.TrimSpace(lines[i])
		if t != "" && !strings.HasPrefix(t, skipPrefix) && !strings.HasPrefix(t, "=== ") {
			return t
		}
	}
	return ""
}

// ParseGoTestLine decodes one line of `go test -json`; ok is false for non-JSON lines (build output).
func ParseGoTestLine(line []byte) (ev GoTestEvent, ok bool) {
	if len(line) == 0 || line[0] != '{' {
		return ev, false
	}
	return ev, json.Unmarshal(line, &ev) == nil && ev.Action != ""
}
