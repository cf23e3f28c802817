package cisidecar

import (
	"strconv"
	"strings"
)

// failure is what a failed test's output says about why: the failing assertion (or panic), where,
// and the test's log for context.
type failure struct {
	message, details, file string
	line                   int
	panicked               bool
}

const maxMessage = 4096

// parseFailure reads a test's (or package's) output. A panic wins: its first line is the message and
// the first stack frame in the package gives file and line. Otherwise the failing assertion is the
// last `file.go:N:` entry the test printed (t.Error and t.Fatal print like t.Log; an assertion usually
// comes after the logs that set it up, and t.Fatal ends the test), except that a testify entry
// (`Error Trace:`) wins over plain logs. The whole log goes into details.
func parseFailure(pkg, out string) failure {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if f, ok := parsePanic(pkg, lines); ok {
		return f
	}
	type entry struct {
		file string
		line int
		text []string
	}
	var entries []entry
	var log []string
	indent := -1
	for _, raw := range lines {
		t := strings.TrimSpace(raw)
		if t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- ") {
			indent = -1
			continue
		}
		ind := len(raw) - len(strings.TrimLeft(raw, " \t"))
		if file, line, text, ok := splitLocation(t); ok && !strings.Contains(file, " ") {
			entries = append(entries, entry{file: file, line: line, text: []string{text}})
			indent = ind
			log = append(log, t)
			continue
		}
		if indent >= 0 && ind > indent && len(entries) > 0 {
			e := &entries[len(entries)-1]
			e.text = append(e.text, t)
		}
		log = append(log, t)
	}
	f := failure{message: "test failed (it printed no message)"}
	if len(entries) == 0 {
		return f
	}
	pick := entries[len(entries)-1]
	for _, e := range entries {
		if strings.Contains(strings.Join(e.text, "\n"), "Error Trace:") {
			pick = e
			break
		}
	}
	f.message = clipText(strings.TrimSpace(strings.Join(pick.text, "\n")), maxMessage)
	f.file, f.line = pick.file, pick.line
	if len(log) > 1 {
		f.details = strings.Join(log, "\n")
	}
	return f
}

// parsePanic finds `panic: …` and the first stack frame of a function in pkg (`pkg.TestX(…)` followed
// by `\t/abs/dir/x_test.go:12 +0x2e`).
func parsePanic(pkg string, lines []string) (failure, bool) {
	start := -1
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "panic: ") {
			start = i
			break
		}
	}
	if start < 0 {
		return failure{}, false
	}
	msg := strings.TrimSuffix(strings.TrimSpace(lines[start]), " [recovered]")
	f := failure{message: msg, panicked: true,
		details: clipText(strings.Join(lines[start:], "\n"), maxTestOutput)}
	for i := start; i+1 < len(lines); i++ {
		fn := lines[i]
		if !strings.HasPrefix(fn, pkg+".") && !strings.HasPrefix(fn, pkg+"_test.") {
			continue
		}
		loc := strings.TrimSpace(lines[i+1])
		if j := strings.LastIndex(loc, " +0x"); j > 0 {
			loc = loc[:j]
		}
		if k := strings.LastIndexByte(loc, ':'); k > 0 {
			if n, err := strconv.Atoi(loc[k+1:]); err == nil {
				f.file, f.line = loc[:k], n
				break
			}
		}
	}
	return f, true
}

// splitLocation parses `file.go:12: text` and `dir/file.go:12:5: text`.
func splitLocation(s string) (file string, line int, text string, ok bool) {
	i := strings.Index(s, ".go:")
	if i <= 0 {
		return "", 0, "", false
	}
	file, rest := s[:i+3], s[i+4:]
	j := 0
	for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
		j++
	}
	if j == 0 {
		return "", 0, "", false
	}
	line, _ = strconv.Atoi(rest[:j])
	rest = rest[j:]
	if strings.HasPrefix(rest, ":") { // a column
		k := 1
		for k < len(rest) && rest[k] >= '0' && rest[k] <= '9' {
			k++
		}
		if k > 1 {
			rest = rest[k:]
		}
	}
	if !strings.HasPrefix(rest, ":") {
		return "", 0, "", false
	}
	return file, line, strings.TrimSpace(rest[1:]), true
}

func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "\n… (clipped)"
}
