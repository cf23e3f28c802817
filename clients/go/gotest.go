package cisidecar

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// GoTestEvent is one line of `go test -json` (cmd/test2json). ImportPath and FailedBuild come from
// Go 1.24 and later, which report build output as JSON too.
type GoTestEvent struct {
	Time        string   `json:"Time"`
	Action      string   `json:"Action"` // start run pause cont pass bench fail output skip build-output build-fail
	Package     string   `json:"Package"`
	Test        string   `json:"Test"`
	Elapsed     *float64 `json:"Elapsed"`
	Output      string   `json:"Output"`
	ImportPath  string   `json:"ImportPath"`
	FailedBuild string   `json:"FailedBuild"`
}

const maxTestOutput = 64 * 1024

// GoTestCollector turns the output of `go test -json` into TestResults: one per finished leaf test,
// and a failing entry for everything that broke without a failing test to say so — a package that
// does not compile (`(build)`) or cannot be set up (`(setup)`), a package that failed outside its tests
// (`(package)`: a panic in TestMain or init), tests a crash or timeout left unfinished, and a `go test`
// that exited non-zero or printed no events (`(go test)`, see Finish). A test with subtests is a
// container: it is reported only when it failed on its own, not because a subtest failed.
//
// Feed it every stdout line with AddLine and every stderr line with AddStderr (in pipe mode stderr is
// not seen; build errors then come as plain lines on stdin when `2>&1` is used), then call Finish.
// Not safe for concurrent use.
type GoTestCollector struct {
	// Resolve maps a file name a test printed (`x_test.go`) in package pkg to the path to report
	// (e.g. relative to the working directory); nil keeps the name as printed. Absolute paths from
	// panic traces are passed too.
	Resolve func(pkg, file string) string

	output   map[string]*strings.Builder // "pkg\x00test" -> output
	running  map[string]bool             // tests started and not finished
	parents  map[string]bool             // tests that ran a subtest
	childBad map[string]bool             // tests with a failed subtest
	pkgBad   map[string]bool             // packages with a failing result
	broken   map[string]string           // package -> "(build)" | "(setup)", awaiting Finish
	buildOut map[string]*strings.Builder // package -> compiler/vet output
	header   string                      // package of the current "# pkg" block of build output
	stderr   strings.Builder             // stderr outside build blocks (tail kept)
	events   int
}

// NewGoTestCollector returns an empty collector.
func NewGoTestCollector() *GoTestCollector {
	return &GoTestCollector{output: map[string]*strings.Builder{}, running: map[string]bool{},
		parents: map[string]bool{}, childBad: map[string]bool{}, pkgBad: map[string]bool{},
		broken: map[string]string{}, buildOut: map[string]*strings.Builder{}}
}

func appendClipped(m map[string]*strings.Builder, key, text string) {
	b := m[key]
	if b == nil {
		b = &strings.Builder{}
		m[key] = b
	}
	if b.Len() < maxTestOutput {
		b.WriteString(text)
	}
}

func take(m map[string]*strings.Builder, key string) string {
	b := m[key]
	if b == nil {
		return ""
	}
	delete(m, key)
	return b.String()
}

// AddLine consumes one line of `go test -json` output: an event, or plain text (Go before 1.24
// prints `FAIL <pkg> [build failed]` as text; with `2>&1` compiler errors arrive here too).
func (g *GoTestCollector) AddLine(line []byte) []TestResult {
	if ev, ok := ParseGoTestLine(line); ok {
		return g.Add(ev)
	}
	g.AddStderr(string(line))
	return nil
}

// AddStderr consumes one line of text that is not an event: `go test`'s stderr, where the compiler
// and vet report under a `# <package>` header, and the `FAIL <pkg> [build failed]` lines.
func (g *GoTestCollector) AddStderr(line string) {
	line = strings.TrimRight(line, "\r\n")
	if strings.HasPrefix(line, "# ") {
		g.header = firstWord(line[2:])
		return
	}
	if pkg, kind, ok := brokenPackage(line); ok {
		g.broken[pkg] = kind
		g.header = ""
		return
	}
	if g.header != "" && line != "" && !strings.HasPrefix(line, "FAIL") && !strings.HasPrefix(line, "ok ") {
		appendClipped(g.buildOut, g.header, line+"\n")
		return
	}
	g.header = ""
	if line != "" && g.stderr.Len() < maxTestOutput {
		g.stderr.WriteString(line + "\n")
	}
}

// brokenPackage recognises `FAIL\t<pkg> [build failed]` and `FAIL\t<pkg> [setup failed]`.
func brokenPackage(line string) (pkg, kind string, ok bool) {
	f := strings.Fields(line)
	if len(f) != 4 || f[0] != "FAIL" || f[3] != "failed]" {
		return "", "", false
	}
	switch f[2] {
	case "[build":
		return f[1], "(build)", true
	case "[setup":
		return f[1], "(setup)", true
	}
	return "", "", false
}

// Add consumes one event; it returns the results the event completes.
func (g *GoTestCollector) Add(ev GoTestEvent) []TestResult {
	g.events++
	key := ev.Package + "\x00" + ev.Test
	switch ev.Action {
	case "output":
		appendClipped(g.output, key, ev.Output)
		return nil
	case "build-output":
		appendClipped(g.buildOut, firstWord(ev.ImportPath), ev.Output)
		return nil
	case "build-fail":
		g.broken[firstWord(ev.ImportPath)] = "(build)"
		return nil
	case "run":
		g.running[key] = true
		if pk := parentKey(ev); pk != "" {
			g.parents[pk] = true
		}
		return nil
	case "pass", "fail", "skip":
	default:
		return nil
	}
	out := take(g.output, key)
	if ev.Test == "" {
		return g.packageDone(ev, out)
	}
	delete(g.running, key)
	r := g.testResult(ev, out)
	if r == nil {
		return nil
	}
	if r.Status == "failed" || r.Status == "error" {
		g.pkgBad[ev.Package] = true
		if pk := parentKey(ev); pk != "" {
			g.childBad[pk] = true
		}
	}
	return []TestResult{*r}
}

func (g *GoTestCollector) testResult(ev GoTestEvent, out string) *TestResult {
	key := ev.Package + "\x00" + ev.Test
	r := &TestResult{Name: ev.Test, Suite: ev.Package, Classname: ev.Package, Duration: ev.Elapsed, Stdout: out}
	container := g.parents[key]
	switch ev.Action {
	case "pass":
		if container {
			return nil // its subtests are the tests
		}
		r.Status = "passed"
	case "skip":
		if container {
			return nil
		}
		r.Status = "skipped"
		r.Message = lastLine(out, "--- SKIP")
	case "fail":
		f := parseFailure(ev.Package, out)
		if container && g.childBad[key] && !f.panicked {
			// failed because a subtest failed: the subtest is the failure, not this (nor its parents)
			if pk := parentKey(ev); pk != "" {
				g.childBad[pk] = true
			}
			return nil
		}
		r.Status = "failed"
		if f.panicked {
			r.Status = "error"
		}
		g.fill(r, ev.Package, f)
	}
	return r
}

// firstWord is `example.com/p` of `example.com/p [example.com/p.test]`.
func firstWord(s string) string {
	if f := strings.Fields(s); len(f) > 0 {
		return f[0]
	}
	return ""
}

// parentKey is the key of the test that ran ev's test as a subtest ("" for a top-level test).
func parentKey(ev GoTestEvent) string {
	if i := strings.LastIndexByte(ev.Test, '/'); i > 0 {
		return ev.Package + "\x00" + ev.Test[:i]
	}
	return ""
}

func (g *GoTestCollector) fill(r *TestResult, pkg string, f failure) {
	r.Message, r.Details, r.Line = f.message, f.details, f.line
	if f.file != "" {
		r.File = f.file
		if g.Resolve != nil {
			r.File = g.Resolve(pkg, f.file)
		}
	}
}

// packageDone handles a package's own outcome: unfinished tests and an unexplained failure.
func (g *GoTestCollector) packageDone(ev GoTestEvent, out string) []TestResult {
	pkg := ev.Package
	var results []TestResult
	if ev.FailedBuild != "" {
		g.broken[pkg] = "(build)"
	}
	if kind := g.broken[pkg]; kind != "" && ev.Action == "fail" {
		delete(g.broken, pkg)
		return []TestResult{g.brokenResult(pkg, kind, ev.Elapsed)}
	}
	f := parseFailure(pkg, out)
	for _, name := range g.unfinished(pkg) {
		r := TestResult{Name: name, Suite: pkg, Classname: pkg, Status: "error", Stdout: take(g.output, pkg+"\x00"+name)}
		tf := parseFailure(pkg, r.Stdout)
		if !tf.panicked {
			tf = f
		}
		if !tf.panicked {
			tf.message = "the test did not finish: the test binary exited while it ran"
		}
		g.fill(&r, pkg, tf)
		results = append(results, r)
		g.pkgBad[pkg] = true
	}
	if ev.Action == "fail" && !g.pkgBad[pkg] {
		r := TestResult{Name: "(package)", Suite: pkg, Classname: pkg, Status: "error", Duration: ev.Elapsed}
		if !f.panicked {
			f.message = "package " + pkg + " failed outside its tests"
			f.details = strings.TrimSpace(out)
		}
		g.fill(&r, pkg, f)
		results = append(results, r)
		g.pkgBad[pkg] = true
	}
	return results
}

// unfinished lists the package's tests that started and never ended, leaves only, and forgets them.
func (g *GoTestCollector) unfinished(pkg string) []string {
	var names []string
	for key := range g.running {
		if strings.HasPrefix(key, pkg+"\x00") {
			delete(g.running, key)
			names = append(names, key[len(pkg)+1:])
		}
	}
	sort.Strings(names)
	var leaves []string
	for i, n := range names {
		if i+1 < len(names) && strings.HasPrefix(names[i+1], n+"/") {
			continue // a parent of another unfinished test
		}
		leaves = append(leaves, n)
	}
	return leaves
}

func (g *GoTestCollector) brokenResult(pkg, kind string, elapsed *float64) TestResult {
	out := strings.TrimSpace(take(g.buildOut, pkg))
	what := "does not compile"
	if kind == "(setup)" {
		what = "could not be set up (missing or cyclic imports)"
	}
	r := TestResult{Name: kind, Suite: pkg, Classname: pkg, Status: "error", Duration: elapsed,
		Message: "package " + pkg + " " + what, Details: out}
	g.pkgBad[pkg] = true
	first := ""
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			first = l
			break
		}
	}
	if first != "" {
		// `dir/x_test.go:3:28: undefined: y` → file, line and the compiler's words
		if file, line, text, ok := splitLocation(first); ok {
			r.Message = r.Message + ": " + text
			r.File, r.Line = file, line
		} else {
			r.Message = r.Message + ": " + first
		}
	}
	return r
}

// Finish reports what only the end can tell: packages whose `FAIL … [build failed]` line had no
// event after it (Go before 1.24), and `go test` itself failing. exitCode is `go test`'s exit
// status, or -1 when unknown (pipe mode).
func (g *GoTestCollector) Finish(exitCode int) []TestResult {
	var results []TestResult
	pkgs := make([]string, 0, len(g.broken))
	for pkg := range g.broken {
		pkgs = append(pkgs, pkg)
	}
	sort.Strings(pkgs)
	for _, pkg := range pkgs {
		results = append(results, g.brokenResult(pkg, g.broken[pkg], nil))
	}
	g.broken = map[string]string{}
	explained := len(g.pkgBad) > 0
	stderr := strings.TrimSpace(g.stderr.String())
	switch {
	case g.events == 0 && !explained:
		msg := "no `go test -json` events were read"
		if exitCode > 0 {
			msg = fmt.Sprintf("go test exited %d without running any test", exitCode)
		}
		results = append(results, TestResult{Name: "(go test)", Suite: "go test", Status: "error", Message: msg, Details: stderr})
	case exitCode > 0 && !explained:
		results = append(results, TestResult{Name: "(go test)", Suite: "go test", Status: "error",
			Message: fmt.Sprintf("go test exited %d although no test failed", exitCode), Details: stderr})
	}
	return results
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
