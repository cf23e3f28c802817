// Package gentypes renders methods_gen.go (Go types and typed methods) from the daemon's OpenRPC
// document (rpc.discover). cmd/gen-types writes the file; the package's tests check it is current.
package gentypes

import (
	"encoding/json"
	"fmt"
	"go/format"
	"sort"
	"strings"
)

// Lifecycle methods are the session's own messages: the Client sends them itself.
var Lifecycle = map[string]bool{"initialize": true, "initialized": true, "shutdown": true, "exit": true,
	"$/cancelRequest": true}

// HandWritten wire types are declared in runs.go and client.go (with Raw and the names callers use);
// the generator refers to them and the drift test checks their fields like the generated ones.
var HandWritten = map[string]bool{"TestRun": true, "Counts": true, "TestResult": true, "Artifact": true,
	"DeliverySummary": true}

// Doc is the part of an OpenRPC document the generator reads.
type Doc struct {
	Info struct {
		ProtocolVersion int `json:"x-protocolVersion"`
	} `json:"info"`
	Methods []struct {
		Name         string  `json:"name"`
		Summary      string  `json:"summary"`
		Params       []Param `json:"params"`
		Notification bool    `json:"x-notification"`
		Result       *struct {
			Schema Schema `json:"schema"`
		} `json:"result"`
	} `json:"methods"`
	Components struct {
		Schemas map[string]Schema `json:"schemas"`
	} `json:"components"`
}

// Param is one by-name parameter of a method.
type Param struct {
	Name     string `json:"name"`
	Required bool   `json:"required"`
	Schema   Schema `json:"schema"`
}

// Schema is the JSON Schema subset msgspec emits.
type Schema struct {
	Ref         string            `json:"$ref"`
	Type        json.RawMessage   `json:"type"`
	AnyOf       []Schema          `json:"anyOf"`
	Enum        []any             `json:"enum"`
	Const       any               `json:"const"`
	Items       *Schema           `json:"items"`
	Properties  map[string]Schema `json:"-"`
	Order       []string          `json:"-"`
	Required    []string          `json:"required"`
	Additional  json.RawMessage   `json:"additionalProperties"`
	Description string            `json:"description"`
}

// UnmarshalJSON keeps the properties in document order (the struct fields follow it).
func (s *Schema) UnmarshalJSON(b []byte) error {
	type plain Schema
	if err := json.Unmarshal(b, (*plain)(s)); err != nil {
		return err
	}
	var raw struct {
		Properties json.RawMessage `json:"properties"`
	}
	if err := json.Unmarshal(b, &raw); err != nil || len(raw.Properties) == 0 {
		return err
	}
	s.Properties = map[string]Schema{}
	if err := json.Unmarshal(raw.Properties, &s.Properties); err != nil {
		return err
	}
	dec := json.NewDecoder(strings.NewReader(string(raw.Properties)))
	_, _ = dec.Token()
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		s.Order = append(s.Order, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return err
		}
	}
	return nil
}

var initialisms = map[string]string{"id": "ID", "url": "URL", "pr": "PR", "rpc": "RPC", "sha": "SHA", "ci": "CI",
	"svg": "SVG", "scm": "SCM", "html": "HTML", "json": "JSON", "api": "API"}

// GoName turns a protocol name (snake_case, camelCase, a/b.c) into an exported Go name.
func GoName(name string) string {
	var words []string
	cur := ""
	for _, r := range name {
		switch {
		case r == '_' || r == '/' || r == '.' || r == '$' || r == '-':
			words, cur = append(words, cur), ""
		case r >= 'A' && r <= 'Z' && cur != "":
			words, cur = append(words, cur), string(r)
		default:
			cur += string(r)
		}
	}
	words = append(words, cur)
	out := ""
	for _, w := range words {
		if w == "" {
			continue
		}
		if up, ok := initialisms[strings.ToLower(w)]; ok {
			out += up
		} else {
			out += strings.ToUpper(w[:1]) + w[1:]
		}
	}
	return out
}

func (s Schema) types() []string {
	var ts []string
	if len(s.Type) == 0 {
		return nil
	}
	if s.Type[0] == '[' {
		_ = json.Unmarshal(s.Type, &ts)
		return ts
	}
	var t string
	_ = json.Unmarshal(s.Type, &t)
	return []string{t}
}

// goType is the Go type of a schema; nullable says whether JSON null is allowed.
func goType(s Schema) (t string, nullable bool) {
	if s.Ref != "" {
		return s.Ref[strings.LastIndex(s.Ref, "/")+1:], false
	}
	if len(s.AnyOf) > 0 {
		var rest []Schema
		for _, a := range s.AnyOf {
			if ts := a.types(); len(ts) == 1 && ts[0] == "null" {
				nullable = true
			} else {
				rest = append(rest, a)
			}
		}
		if len(rest) == 1 {
			t, _ = goType(rest[0])
			return t, nullable
		}
		return "json.RawMessage", nullable
	}
	if len(s.Enum) > 0 || s.Const != nil {
		return "string", false
	}
	ts := s.types()
	if len(ts) != 1 {
		return "json.RawMessage", false
	}
	switch ts[0] {
	case "string":
		return "string", false
	case "integer":
		return "int", false
	case "number":
		return "float64", false
	case "boolean":
		return "bool", false
	case "array":
		if s.Items == nil {
			return "[]json.RawMessage", false
		}
		it, _ := goType(*s.Items)
		return "[]" + it, false
	case "object":
		if len(s.Additional) > 0 && s.Additional[0] == '{' {
			var extra Schema
			_ = json.Unmarshal(s.Additional, &extra)
			et, _ := goType(extra)
			return "map[string]" + et, false
		}
		return "map[string]any", false
	}
	return "json.RawMessage", false
}

// field renders one struct field: optional or nullable scalars and structs become pointers (absent stays
// absent when sent, and is told from a zero value when read).
func field(name string, s Schema, required bool) string {
	t, nullable := goType(s)
	byRef := !strings.HasPrefix(t, "[]") && !strings.HasPrefix(t, "map[") && t != "json.RawMessage"
	if (nullable || !required) && byRef {
		t = "*" + t
	}
	tag := name
	if !required || nullable {
		tag += ",omitempty"
	}
	return fmt.Sprintf("\t%s %s `json:%q`\n", GoName(name), t, tag)
}

func comment(text, indent string) string {
	if text == "" {
		return ""
	}
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		line = strings.ReplaceAll(strings.TrimSpace(line), "``", "`")
		b.WriteString(strings.TrimRight(indent+"// "+line, " ") + "\n")
	}
	return b.String()
}

func structBody(order []string, props map[string]Schema, required map[string]bool) string {
	var b strings.Builder
	b.WriteString("struct {\n")
	for _, name := range order {
		b.WriteString(comment(props[name].Description, "\t"))
		b.WriteString(field(name, props[name], required[name]))
	}
	b.WriteString("}")
	return b.String()
}

// IsParamsType says whether a component schema is a method's whole request (OpenRPC expands it into the
// method's by-name params, so nothing refers to it): the per-method Params struct takes its place.
func IsParamsType(doc Doc, name string) bool {
	return strings.HasSuffix(name, "Params") && !referenced(doc)[name]
}

// referenced are the component names some $ref in the document points at.
func referenced(doc Doc) map[string]bool {
	out := map[string]bool{}
	var walk func(s Schema)
	walk = func(s Schema) {
		if s.Ref != "" {
			out[s.Ref[strings.LastIndex(s.Ref, "/")+1:]] = true
		}
		for _, a := range s.AnyOf {
			walk(a)
		}
		if s.Items != nil {
			walk(*s.Items)
		}
		for _, p := range s.Properties {
			walk(p)
		}
		if len(s.Additional) > 0 && s.Additional[0] == '{' {
			var extra Schema
			if json.Unmarshal(s.Additional, &extra) == nil {
				walk(extra)
			}
		}
	}
	for _, m := range doc.Methods {
		for _, p := range m.Params {
			walk(p.Schema)
		}
		if m.Result != nil {
			walk(m.Result.Schema)
		}
	}
	for _, s := range doc.Components.Schemas {
		walk(s)
	}
	return out
}

// Render is the whole methods_gen.go for an OpenRPC document.
func Render(doc Doc) ([]byte, error) {
	var b strings.Builder
	b.WriteString("// Code generated by cmd/gen-types from the daemon's rpc.discover document. DO NOT EDIT.\n")
	b.WriteString("// Regenerate: go run ./cmd/gen-types (in clients/go).\n\n")
	b.WriteString("package cisidecar\n\nimport (\n\t\"context\"\n\t\"encoding/json\"\n\t\"reflect\"\n)\n\n")
	fmt.Fprintf(&b, "// The wire types and methods of protocol version %d.\n\n", doc.Info.ProtocolVersion)
	names := make([]string, 0, len(doc.Components.Schemas))
	for name := range doc.Components.Schemas {
		names = append(names, name)
	}
	sort.Strings(names)
	registry := []string{}
	for _, name := range names {
		if IsParamsType(doc, name) {
			continue
		}
		registry = append(registry, name)
		if HandWritten[name] {
			continue
		}
		s := doc.Components.Schemas[name]
		req := map[string]bool{}
		for _, r := range s.Required {
			req[r] = true
		}
		desc := "is a wire type of the protocol."
		if s.Description != "" {
			desc = "is " + lowerFirst(s.Description)
		}
		b.WriteString(comment(name+" "+desc, ""))
		fmt.Fprintf(&b, "type %s %s\n\n", name, structBody(s.Order, s.Properties, req))
	}
	b.WriteString("// API has one typed method per daemon method (from Client.API); each waits for the answer.\n")
	b.WriteString("type API struct{ c *Client }\n\n")
	b.WriteString("// API is the typed view of every daemon method; Call reaches any method by name.\n")
	b.WriteString("func (c *Client) API() API { return API{c} }\n\n")
	var methods []string
	for _, m := range doc.Methods {
		if Lifecycle[m.Name] {
			continue
		}
		name := GoName(m.Name)
		methods = append(methods, fmt.Sprintf("%q: %q", m.Name, name))
		req := map[string]bool{}
		props := map[string]Schema{}
		var order []string
		for _, p := range m.Params {
			req[p.Name] = p.Required
			props[p.Name] = p.Schema
			order = append(order, p.Name)
		}
		summary := strings.TrimSpace(m.Summary)
		args, send := "ctx context.Context", "nil"
		if len(m.Params) > 0 {
			fmt.Fprintf(&b, "// %sParams are %s's params; nil and empty fields are not sent.\n", name, m.Name)
			fmt.Fprintf(&b, "type %sParams %s\n\n", name, structBody(order, props, req))
			args, send = fmt.Sprintf("ctx context.Context, p %sParams", name), "p"
		}
		b.WriteString(comment(fmt.Sprintf("%s calls %s: %s", name, m.Name, summary), ""))
		if m.Notification {
			fmt.Fprintf(&b, "func (m API) %s(%s) error {\n\treturn m.c.Notify(%q, %s)\n}\n\n", name, args, m.Name, send)
			continue
		}
		rt, nullable := goType(m.Result.Schema)
		if rt == "map[string]any" {
			rt = "json.RawMessage"
		}
		if strings.HasPrefix(rt, "[]") || strings.HasPrefix(rt, "map[") || rt == "json.RawMessage" {
			fmt.Fprintf(&b, "func (m API) %s(%s) (%s, error) {\n\tvar out %s\n\terr := m.c.Call(ctx, %q, %s, &out)\n\treturn out, err\n}\n\n",
				name, args, rt, rt, m.Name, send)
			continue
		}
		// a nullable result (e.g. get_artifact_by_name) is nil when the daemon answers null
		_ = nullable
		fmt.Fprintf(&b, "func (m API) %s(%s) (*%s, error) {\n\tvar out *%s\n\tif err := m.c.Call(ctx, %q, %s, &out); err != nil {\n\t\treturn nil, err\n\t}\n\treturn out, nil\n}\n\n",
			name, args, rt, rt, m.Name, send)
	}
	b.WriteString("// wireTypes maps each wire type the protocol names to its Go type (checked against rpc.discover).\n")
	b.WriteString("var wireTypes = map[string]reflect.Type{\n")
	for _, n := range registry {
		fmt.Fprintf(&b, "\t%q: reflect.TypeOf(%s{}),\n", n, n)
	}
	b.WriteString("}\n\n// methodNames maps each daemon method to its name on API.\nvar methodNames = map[string]string{\n")
	for _, m := range methods {
		b.WriteString("\t" + m + ",\n")
	}
	b.WriteString("}\n")
	return format.Source([]byte(b.String()))
}

func lowerFirst(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}
