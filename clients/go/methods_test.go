package cisidecar

import (
	"context"
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/ci-sidecar/ci-sidecar/clients/go/internal/gentypes"
)

func discover(t *testing.T, c *Client) gentypes.Doc {
	t.Helper()
	raw, err := c.API().RPCDiscover(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var doc gentypes.Doc
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

// jsonFields are the wire names a struct type's fields carry.
func jsonFields(t reflect.Type) map[string]bool {
	out := map[string]bool{}
	for i := 0; i < t.NumField(); i++ {
		if name := strings.Split(t.Field(i).Tag.Get("json"), ",")[0]; name != "" && name != "-" {
			out[name] = true
		}
	}
	return out
}

// Each method rpc.discover lists is a typed method on API taking its params, and each wire type a Go type
// with every field: a method or field added to the daemon without regenerating (or extending runs.go) fails.
func TestEveryDiscoveredMethodAndFieldIsTyped(t *testing.T) {
	_, c := connectDaemon(t)
	doc := discover(t, c)
	var missing []string
	api := reflect.TypeOf(API{})
	for _, m := range doc.Methods {
		if gentypes.Lifecycle[m.Name] {
			continue
		}
		fn, ok := api.MethodByName(gentypes.GoName(m.Name))
		if !ok || methodNames[m.Name] != fn.Name {
			missing = append(missing, "method "+m.Name)
			continue
		}
		if len(m.Params) == 0 {
			continue
		}
		have := jsonFields(fn.Type.In(2)) // receiver, ctx, params
		for _, p := range m.Params {
			if !have[p.Name] {
				missing = append(missing, m.Name+"("+p.Name+")")
			}
		}
	}
	for name, s := range doc.Components.Schemas {
		if gentypes.IsParamsType(doc, name) {
			continue
		}
		typ, ok := wireTypes[name]
		if !ok {
			missing = append(missing, "type "+name)
			continue
		}
		have := jsonFields(typ)
		for prop := range s.Properties {
			if !have[prop] {
				missing = append(missing, name+"."+prop)
			}
		}
	}
	if len(missing) > 0 {
		t.Fatalf("the Go client lacks %v: run go run ./cmd/gen-types (hand-written types are in runs.go, client.go)", missing)
	}
}

// methods_gen.go is exactly what cmd/gen-types generates from the daemon's rpc.discover today.
func TestGeneratedFileIsCurrent(t *testing.T) {
	_, c := connectDaemon(t)
	want, err := gentypes.Render(discover(t, c))
	if err != nil {
		t.Fatal(err)
	}
	have, err := os.ReadFile("methods_gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if string(have) != string(want) {
		t.Fatal("methods_gen.go differs from rpc.discover: run go run ./cmd/gen-types")
	}
}

// A run created, fed, streamed back by cursor and completed with coverage through the typed methods.
func TestTypedMethodsDriveARun(t *testing.T) {
	_, c := connectDaemon(t)
	ctx := context.Background()
	api := c.API()
	branch := "main"
	run, err := api.CreateTestRun(ctx, CreateTestRunParams{Name: "typed", Branch: &branch})
	if err != nil {
		t.Fatal(err)
	}
	results := []TestResult{{Name: "t0", Status: "failed"}, {Name: "t1", Status: "passed"}, {Name: "t2", Status: "passed"}}
	if rep, err := api.ReportResults(ctx, ReportResultsParams{TestRunID: run.ID, Results: results}); err != nil || rep.Accepted != 3 {
		t.Fatalf("report_results: %+v %v", rep, err)
	}
	limit := 2
	first, err := api.ReadTestResults(ctx, ReadTestResultsParams{TestRunID: run.ID, Limit: &limit})
	if err != nil {
		t.Fatal(err)
	}
	rest, err := api.ReadTestResults(ctx, ReadTestResultsParams{TestRunID: run.ID, Cursor: &first.Cursor})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range append(first.Results, rest.Results...) {
		names = append(names, r.Name)
	}
	if strings.Join(names, ",") != "t0,t1,t2" {
		t.Fatalf("read back %v", names)
	}
	coverage, wait := 81.5, true
	done, err := api.CompleteTestRun(ctx, CompleteTestRunParams{TestRunID: run.ID, Coverage: &coverage, Wait: &wait})
	if err != nil {
		t.Fatal(err)
	}
	if done.Status != "finished" || done.Conclusion != "failure" || done.Coverage == nil || *done.Coverage != 81.5 {
		t.Fatalf("completed run: %+v", done)
	}
	status, err := api.GetTestRunStatus(ctx, GetTestRunStatusParams{TestRunID: run.ID})
	if err != nil {
		t.Fatal(err)
	}
	if status.Delta == nil || strings.Join(status.Delta.NewFailures, ",") != "t0" {
		t.Fatalf("delta: %+v", status.Delta)
	}
}
