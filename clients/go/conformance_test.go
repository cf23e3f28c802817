package cisidecar

// Replays clients/conformance/vectors.json through this client against a real daemon.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

type scenario struct {
	Name       string           `json:"name"`
	Initialize *bool            `json:"initialize"`
	Requires   []string         `json:"requires"`
	Steps      []map[string]any `json:"steps"`
}

func decodeAny(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	d := json.NewDecoder(strings.NewReader(string(b)))
	d.UseNumber()
	var v any
	_ = d.Decode(&v)
	return normalize(v)
}

// normalize turns json.Number into float64 so numbers compare numerically.
func normalize(v any) any {
	switch x := v.(type) {
	case json.Number:
		f, _ := x.Float64()
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = normalize(e)
		}
	case []any:
		for i, e := range x {
			x[i] = normalize(e)
		}
	}
	return v
}

func resolveRefs(v any, saved map[string]any) any {
	switch x := v.(type) {
	case map[string]any:
		if ref, ok := x["$ref"].(string); ok && len(x) == 1 {
			parts := strings.Split(ref, ".")
			out := saved[parts[0]]
			for _, p := range parts[1:] {
				out = out.(map[string]any)[p]
			}
			return out
		}
		m := map[string]any{}
		for k, e := range x {
			m[k] = resolveRefs(e, saved)
		}
		return m
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = resolveRefs(e, saved)
		}
		return out
	}
	return v
}

func show(v any) string { b, _ := json.Marshal(v); return string(b) }

func isType(kind string, v any) bool {
	switch kind {
	case "string":
		_, ok := v.(string)
		return ok
	case "number":
		_, ok := v.(float64)
		return ok
	case "integer":
		f, ok := v.(float64)
		return ok && f == math.Trunc(f)
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "object":
		_, ok := v.(map[string]any)
		return ok
	case "array":
		_, ok := v.([]any)
		return ok
	case "null":
		return v == nil
	}
	return false
}

func ok(shape, actual any) bool { return match(shape, actual, "$") == nil }

// match implements the shape language of clients/conformance/README.md.
func match(shape, actual any, path string) error {
	fail := func(f string, a ...any) error { return fmt.Errorf("%s: %s", path, fmt.Sprintf(f, a...)) }
	if m, isMap := shape.(map[string]any); isMap && len(m) == 1 {
		for op, arg := range m {
			if !strings.HasPrefix(op, "$") {
				break
			}
			switch op {
			case "$type":
				kinds := []any{arg}
				if list, isList := arg.([]any); isList {
					kinds = list
				}
				for _, k := range kinds {
					if isType(k.(string), actual) {
						return nil
					}
				}
				return fail("expected type %s, got %s", show(arg), show(actual))
			case "$absent":
				if actual != nil {
					return fail("expected absent, got %s", show(actual))
				}
				return nil
			case "$regex":
				s, isStr := actual.(string)
				if !isStr || !regexp.MustCompile(arg.(string)).MatchString(s) {
					return fail("%s does not match /%s/", show(actual), arg)
				}
				return nil
			case "$gte":
				f, isNum := actual.(float64)
				if !isNum || f < arg.(float64) {
					return fail("expected >= %v, got %s", arg, show(actual))
				}
				return nil
			case "$oneOf":
				for _, s := range arg.([]any) {
					if ok(s, actual) {
						return nil
					}
				}
				return fail("%s matches none of %s", show(actual), show(arg))
			case "$contains":
				list, isList := actual.([]any)
				if !isList {
					return fail("expected an array, got %s", show(actual))
				}
				for _, s := range arg.([]any) {
					found := false
					for _, a := range list {
						found = found || ok(s, a)
					}
					if !found {
						return fail("no element matches %s", show(s))
					}
				}
				return nil
			case "$subsequence":
				list, isList := actual.([]any)
				if !isList {
					return fail("expected an array, got %s", show(actual))
				}
				i := 0
				for _, s := range arg.([]any) {
					for i < len(list) && !ok(s, list[i]) {
						i++
					}
					if i == len(list) {
						return fail("%s not found in order in %s", show(s), show(actual))
					}
					i++
				}
				return nil
			case "$unordered":
				list, isList := actual.([]any)
				want := arg.([]any)
				if !isList || len(list) != len(want) {
					return fail("expected %d elements in any order, got %s", len(want), show(actual))
				}
				left := append([]any{}, list...)
				for _, s := range want {
					at := -1
					for j, a := range left {
						if ok(s, a) {
							at = j
							break
						}
					}
					if at < 0 {
						return fail("no remaining element matches %s", show(s))
					}
					left = append(left[:at], left[at+1:]...)
				}
				return nil
			default:
				return fail("unknown shape operator %s", op)
			}
		}
	}
	switch s := shape.(type) {
	case map[string]any:
		a, isMap := actual.(map[string]any)
		if !isMap {
			return fail("expected an object, got %s", show(actual))
		}
		for k, sub := range s {
			if subMap, isSub := sub.(map[string]any); isSub && len(subMap) == 1 && subMap["$absent"] != nil {
				if a[k] != nil {
					return fail(".%s expected absent, got %s", k, show(a[k]))
				}
				continue
			}
			v, has := a[k]
			if !has {
				return fail("missing key %q in %s", k, show(actual))
			}
			if err := match(sub, v, path+"."+k); err != nil {
				return err
			}
		}
		return nil
	case []any:
		a, isList := actual.([]any)
		if !isList || len(a) != len(s) {
			return fail("expected %d elements, got %s", len(s), show(actual))
		}
		for i := range s {
			if err := match(s[i], a[i], fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		return nil
	}
	if shape != actual {
		return fail("expected %s, got %s", show(shape), show(actual))
	}
	return nil
}

type outcome struct {
	kind  string
	value any
}

func outcomeOf(raw json.RawMessage, err error) (outcome, error) {
	if err == nil {
		return outcome{"result", decodeAny(raw)}, nil
	}
	var rpcErr *RPCError
	if !errors.As(err, &rpcErr) {
		return outcome{}, err
	}
	e := map[string]any{"code": float64(rpcErr.Code), "message": rpcErr.Message, "data": decodeAny(rpcErr.Data)}
	return outcome{"error", e}, nil
}

func check(expect any, got outcome, where string) error {
	exp := expect.(map[string]any)
	want := "error"
	if _, has := exp["result"]; has {
		want = "result"
	}
	if got.kind != want {
		return fmt.Errorf("%s: expected %s %s, got %s %s", where, want, show(exp[want]), got.kind, show(got.value))
	}
	if err := match(exp[want], got.value, "$"); err != nil {
		return fmt.Errorf("%s: %v", where, err)
	}
	return nil
}

func runCall(c *Client, step map[string]any, saved map[string]any, savedMu *sync.Mutex, where string) error {
	var mu sync.Mutex
	var notes []any
	off := c.OnNotification(func(method string, params json.RawMessage) {
		mu.Lock()
		notes = append(notes, map[string]any{"method": method, "params": decodeAny(params)})
		mu.Unlock()
	})
	defer off()
	savedMu.Lock()
	var params any
	if p, has := step["params"]; has {
		params = resolveRefs(p, saved)
	}
	expect := resolveRefs(step["expect"], saved)
	savedMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if ms, has := step["cancel_after_ms"]; has {
		var cancelSoon context.CancelFunc
		ctx, cancelSoon = context.WithCancel(ctx)
		time.AfterFunc(time.Duration(ms.(float64))*time.Millisecond, cancelSoon)
	}
	start := time.Now()
	var raw json.RawMessage
	got, err := outcomeOf(raw, c.Call(ctx, step["call"].(string), params, &raw))
	if err != nil {
		return fmt.Errorf("%s: %v", where, err)
	}
	if got.kind == "result" {
		got.value = decodeAny(raw)
	}
	elapsed := time.Since(start)
	if err := check(expect, got, where); err != nil {
		return err
	}
	if en, has := step["expect_notifications"]; has {
		mu.Lock()
		defer mu.Unlock()
		if notes == nil {
			notes = []any{}
		}
		if err := match(resolveRefs(en, saved), notes, "$"); err != nil {
			return fmt.Errorf("%s: notifications: %v", where, err)
		}
	}
	if ms, has := step["max_ms"]; has && elapsed > time.Duration(ms.(float64))*time.Millisecond {
		return fmt.Errorf("%s: took %v, bound %v ms", where, elapsed, ms)
	}
	if name, has := step["save"]; has {
		savedMu.Lock()
		saved[name.(string)] = got.value
		savedMu.Unlock()
	}
	return nil
}

// rawConn is a bare framed socket for the raw steps.
type rawConn struct {
	conn net.Conn
	r    *bufio.Reader
}

func openRaw(path string, initialize bool) (*rawConn, error) {
	conn, err := net.Dial("unix", path)
	if err != nil {
		return nil, err
	}
	rc := &rawConn{conn, bufio.NewReader(conn)}
	if initialize {
		rc.send(map[string]any{"jsonrpc": "2.0", "id": "init", "method": "initialize", "params": map[string]any{"protocolVersion": 1}})
		if _, err := rc.receive(); err != nil {
			return nil, err
		}
		rc.send(map[string]any{"jsonrpc": "2.0", "method": "initialized", "params": map[string]any{}})
	}
	return rc, nil
}

func (r *rawConn) send(v any) { b, _ := json.Marshal(v); _ = WriteFrame(r.conn, b) }

func (r *rawConn) receive() (any, error) {
	_ = r.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := ReadFrame(r.r)
	if err != nil {
		return nil, err
	}
	return decodeAny(b), nil
}

func replay(t *testing.T, sc scenario, path string) {
	init := sc.Initialize == nil || *sc.Initialize
	ctx := context.Background()
	c, err := Connect(ctx, path, &Options{NoInitialize: !init, ClientName: "conformance-go"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	saved := map[string]any{}
	var savedMu sync.Mutex
	var raw *rawConn
	defer func() {
		if raw != nil {
			raw.conn.Close()
		}
	}()
	for i, step := range sc.Steps {
		where := fmt.Sprintf("%s step %d", sc.Name, i)
		switch {
		case step["check_initialize"] != nil:
			if err := match(step["check_initialize"], decodeAny(c.InitializeResult), "$"); err != nil {
				t.Fatalf("%s: %v", where, err)
			}
		case step["call"] != nil:
			if err := runCall(c, step, saved, &savedMu, where); err != nil {
				t.Fatal(err)
			}
		case step["notify"] != nil:
			if err := c.Notify(step["notify"].(string), step["params"]); err != nil {
				t.Fatal(err)
			}
		case step["parallel"] != nil:
			start := time.Now()
			subs := step["parallel"].([]any)
			errs := make(chan error, len(subs))
			for j, s := range subs {
				go func(j int, s map[string]any) {
					errs <- runCall(c, s, saved, &savedMu, fmt.Sprintf("%s.%d", where, j))
				}(j, s.(map[string]any))
			}
			for range subs {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
			if ms, has := step["max_ms"]; has && time.Since(start) > time.Duration(ms.(float64))*time.Millisecond {
				t.Fatalf("%s: parallel calls took %v, bound %v ms", where, time.Since(start), ms)
			}
		case step["batch"] != nil:
			var calls []BatchCall
			for _, e := range step["batch"].([]any) {
				el := e.(map[string]any)
				bc := BatchCall{Method: el["method"].(string), Notification: el["notification"] == true}
				if p, has := el["params"]; has {
					bc.Params = resolveRefs(p, saved)
				}
				calls = append(calls, bc)
			}
			answers, err := c.Batch(ctx, calls)
			if err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			expect := step["expect"].([]any)
			if len(answers) != len(expect) {
				t.Fatalf("%s: %d answers, expected %d", where, len(answers), len(expect))
			}
			for j, a := range answers {
				got, err := outcomeOf(a.Result, a.Err)
				if err != nil {
					t.Fatal(err)
				}
				if err := check(resolveRefs(expect[j], saved), got, fmt.Sprintf("%s [%d]", where, j)); err != nil {
					t.Fatal(err)
				}
			}
			if len(answers) == 0 {
				if err := c.Call(ctx, "sidecar/status", nil, nil); err != nil {
					t.Fatalf("%s: follow-up request: %v", where, err)
				}
			}
		case step["raw"] != nil:
			if raw == nil {
				if raw, err = openRaw(path, init); err != nil {
					t.Fatal(err)
				}
			}
			raw.send(step["raw"])
			got, err := raw.receive()
			if err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			if err := match(resolveRefs(step["expect_raw"], saved), got, "$"); err != nil {
				t.Fatalf("%s raw: %v", where, err)
			}
		default:
			t.Fatalf("%s: unknown step %s", where, show(step))
		}
	}
}

func TestConformanceVectors(t *testing.T) {
	b, err := os.ReadFile("../conformance/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var file struct{ Scenarios []json.RawMessage }
	if err := json.Unmarshal(b, &file); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t)
	probe, err := Connect(context.Background(), d.path, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = probe.Close(context.Background())
	for _, rawSc := range file.Scenarios {
		var sc scenario
		dec := json.NewDecoder(strings.NewReader(string(rawSc)))
		dec.UseNumber()
		if err := dec.Decode(&sc); err != nil {
			t.Fatal(err)
		}
		for _, st := range sc.Steps {
			normalize(map[string]any(st))
		}
		t.Run(sc.Name, func(t *testing.T) {
			for _, m := range sc.Requires {
				if !probe.Serves(m) {
					t.Skipf("daemon does not serve %s yet", m)
				}
			}
			replay(t, sc, d.path)
		})
	}
}
