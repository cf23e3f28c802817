"""Load an official OpenAPI 3.0 (or Swagger 2.0) description and validate requests against it (for provider fakes).

The specs live outside the repository (``$CI_SIDECAR_SPECS``, default ``<repo>/../shared/specs``). OpenAPI 3.0
schemas are JSON Schema draft 4 plus ``nullable``; ``nullable`` is rewritten into a ``null`` type once at load
time, then ``jsonschema``'s Draft4 validator checks bodies and parameters, resolving ``$ref`` into the document.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from jsonschema import Draft4Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

__all__ = ["OpenApiSpec", "Route", "spec_path", "require_spec"]

_DOC_URI = "urn:openapi-spec"
_METHODS = ("get", "put", "post", "patch", "delete", "head", "options")


def spec_root() -> Path:
    """Where the shared specs are: ``$CI_SIDECAR_SPECS``, else ``../shared/specs`` next to the repository."""
    env = os.environ.get("CI_SIDECAR_SPECS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2].parent / "shared" / "specs"


def spec_path(relative: str) -> Path | None:
    """The spec file, or ``None`` when it is not there."""
    path = spec_root() / relative
    return path if path.is_file() else None


#: where each official description comes from (they may not be copied into this repository)
SPEC_SOURCES = {
    "github/api.github.com.json": "GitHub's REST API description: descriptions/api.github.com/api.github.com.json "
                                  "in github/rest-api-description (also generated/api.github.com.json in the npm "
                                  "package @octokit/openapi)",
}


def require_spec(relative: str) -> OpenApiSpec:
    """Load a spec, or skip the test (fail it when ``CI_SIDECAR_REQUIRE_ALL=1``) when it is absent.

    A ``*.ci-subset.json`` (the paths the fakes use, components copied verbatim) may be replaced by the
    full official file it was cut from: validation is the same, loading slower.
    """
    path = spec_path(relative)
    full = relative.replace(".ci-subset.json", ".json")
    if path is None and full != relative:
        path = spec_path(full)
    if path is None:
        from helpers import missing

        source = SPEC_SOURCES.get(full, "the provider's official OpenAPI description")
        missing(f"needs the official spec {full} (or its {relative.rsplit('/', 1)[-1]} subset), not found under "
                f"{spec_root()}",
                f"the provider specs are not part of this repository (they may not be copied into it): save "
                f"{source} as <dir>/{full} and set CI_SIDECAR_SPECS=<dir> (default: ../shared/specs beside the "
                f"checkout)")
    return load_spec(str(path))


@functools.lru_cache(maxsize=4)
def load_spec(path: str) -> OpenApiSpec:
    """Parse once per process (the GitHub subset is 1 MB)."""
    return OpenApiSpec(json.loads(Path(path).read_text(encoding="utf-8-sig")))


def _nullable_to_jsonschema(node: Any) -> Any:
    """Rewrite OpenAPI's ``nullable: true`` into draft-4 terms, recursively."""
    if isinstance(node, list):
        return [_nullable_to_jsonschema(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: _nullable_to_jsonschema(v) for k, v in node.items()}
    if out.pop("nullable", False) is True:
        if "type" in out and isinstance(out["type"], str):
            out["type"] = [out["type"], "null"]
            if "enum" in out and None not in out["enum"]:
                out["enum"] = [*out["enum"], None]
        else:
            return {"anyOf": [out, {"type": "null"}]}
    return out


_GLOB = re.compile(r"\*(\w+)")
_OPTIONAL = re.compile(r"\(([^()]*)\)")
_SCHEMA_KEYS = ("type", "format", "enum", "default", "items", "minimum", "maximum", "pattern")


def _grape_variants(template: str) -> list[str]:
    """A grape-swagger path with its optional groups both taken and left out (``a/(*path/){f}`` → two paths)."""
    found = _OPTIONAL.search(template)
    if found is None:
        return [template]
    return [*_grape_variants(template[:found.start()] + found.group(1) + template[found.end():]),
            *_grape_variants(template[:found.start()] + template[found.end():])]


def _swagger2_operation(op: dict[str, Any], template: str, globs: set[str], doc: dict[str, Any]) -> dict[str, Any]:
    """One Swagger 2.0 operation in OpenAPI 3.0 terms: types into ``schema``, ``in: body`` into a request body
    (a body with a ``type: file`` property is the raw upload, its other properties query parameters), grape's
    path globs into multi-segment path parameters."""
    in_path = set(re.findall(r"\{(\w+)\}", template))
    params: list[dict[str, Any]] = []
    out = {k: v for k, v in op.items() if k != "parameters"}
    for param in op.get("parameters", []):
        if "$ref" in param:  # a shared parameter (Azure DevOps' required ``api-version``)
            param = doc.get("parameters", {}).get(param["$ref"].rsplit("/", 1)[1], param)
        name, where = param.get("name"), param.get("in")
        if where == "body":
            schema = param.get("schema", {})
            target = schema
            if "$ref" in schema:
                target = doc["definitions"][schema["$ref"].rsplit("/", 1)[1]]
            props = target.get("properties", {})
            if any(p.get("type") == "file" for p in props.values()):
                out["requestBody"] = {"required": True, "content": {"application/octet-stream": {}}}
                params += [{"name": k, "in": "query", "required": False,
                            "schema": {s: v[s] for s in _SCHEMA_KEYS if s in v}}
                           for k, v in props.items() if v.get("type") != "file" and k not in in_path]
            else:
                out["requestBody"] = {"required": bool(param.get("required")),
                                      "content": {"application/json": {"schema": schema}}}
            continue
        if name in globs:
            where = "path"
        elif where == "path" and name not in in_path:
            continue  # the parameter of an optional group this variant leaves out
        new = {"name": name, "in": where, "required": bool(param.get("required")) or where == "path",
               "schema": {k: param[k] for k in _SCHEMA_KEYS if k in param}}
        if name in globs:
            new["x-multi-segment"] = True
        params.append(new)
    declared = {p["name"] for p in params if p["in"] == "path"}
    params += [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}, "x-multi-segment": True}
               for n in sorted(globs - declared)]
    out["parameters"] = params
    return out


def _from_swagger2(doc: dict[str, Any]) -> dict[str, Any]:
    """A Swagger 2.0 document (GitLab's grape-swagger one) as the OpenAPI 3.0 this module validates; its
    ``definitions`` stay where its ``$ref``s point."""
    paths: dict[str, Any] = {}
    for template, item in doc.get("paths", {}).items():
        for variant in _grape_variants(template):
            globs = set(_GLOB.findall(variant))
            path = _GLOB.sub(r"{\1}", variant)
            paths[path] = {m: _swagger2_operation(op, path, globs, doc) if m in _METHODS else op
                           for m, op in item.items()}
    return {"openapi": "3.0.0", "paths": paths, "definitions": doc.get("definitions", {})}


def _pointer(*parts: str) -> str:
    escaped = "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)
    return "#/" + quote(escaped, safe="/~")


class Route:
    """One operation: method, path template, compiled regex, its parameters and body schema pointer."""

    def __init__(self, spec: OpenApiSpec, method: str, template: str, op: dict[str, Any]) -> None:
        self.method = method.upper()
        self.template = template
        self.operation_id = op.get("operationId", f"{method} {template}")
        self.op = op
        pattern = ""
        #: regex group -> path parameter (names like ``enterprise-team`` are no valid group names)
        self.groups: dict[str, str] = {}
        for piece in re.split(r"(\{[^}]+\})", template):
            if piece.startswith("{"):
                name = piece[1:-1]
                param = spec.param(op, name, "path")
                multi = bool(param and param.get("x-multi-segment"))
                group = f"p{len(self.groups)}"
                self.groups[group] = name
                pattern += f"(?P<{group}>{'.+' if multi else '[^/]+'})"
            else:
                pattern += re.escape(piece)
        self.regex = re.compile(f"^{pattern}$")
        self.params = [spec.resolve(p) for p in op.get("parameters", [])]
        self.body_pointer: str | None = None
        self.body_required = False
        #: the body is an upload of any bytes (no JSON schema to check)
        self.raw_body = False
        body = op.get("requestBody")
        if body:
            body = spec.resolve(body)
            self.body_required = bool(body.get("required"))
            self.raw_body = "application/json" not in body.get("content", {})
            if "application/json" in body.get("content", {}):
                self.body_pointer = _pointer("paths", template, method, "requestBody", "content",
                                             "application/json", "schema")
        self.specificity = (template.count("{"), -len(template))


class OpenApiSpec:
    """Routes and validators of one OpenAPI 3.0 document."""

    def __init__(self, doc: dict[str, Any]) -> None:
        if doc.get("swagger") == "2.0":
            doc = _from_swagger2(doc)
        self.doc = _nullable_to_jsonschema(copy.deepcopy(doc))
        resource = Resource.from_contents(self.doc, default_specification=DRAFT4)
        self._registry = Registry().with_resource(_DOC_URI, resource)
        self.routes: list[Route] = []
        for template, item in self.doc.get("paths", {}).items():
            for method, op in item.items():
                if method in _METHODS:
                    self.routes.append(Route(self, method, template, op))
        self.routes.sort(key=lambda r: r.specificity)
        self._validators: dict[str, Draft4Validator] = {}

    def resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        """Follow a local ``$ref`` (parameters, request bodies)."""
        seen = 0
        while "$ref" in node and seen < 20:
            ref = node["$ref"]
            assert ref.startswith("#/"), ref
            target: Any = self.doc
            for part in ref[2:].split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            node = target
            seen += 1
        return node

    def param(self, op: dict[str, Any], name: str, where: str) -> dict[str, Any] | None:
        for p in op.get("parameters", []):
            p = self.resolve(p)
            if p.get("name") == name and p.get("in") == where:
                return p
        return None

    def validator(self, pointer: str) -> Draft4Validator:
        v = self._validators.get(pointer)
        if v is None:
            v = self._validators[pointer] = Draft4Validator({"$ref": _DOC_URI + pointer}, registry=self._registry)
        return v

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        """The operation for a request path (already stripped of any base prefix)."""
        for route in self.routes:
            if route.method != method.upper():
                continue
            m = route.regex.match(path)
            if m:
                return route, {route.groups[g]: v for g, v in m.groupdict().items()}
        return None

    @staticmethod
    def _coerce(value: str, schema: dict[str, Any]) -> Any:
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), None)
        try:
            if kind == "integer":
                return int(value)
            if kind == "number":
                return float(value)
        except ValueError:
            return value
        if kind == "boolean":
            return {"true": True, "false": False}.get(value, value)
        return value

    def validate(
        self, route: Route, path_params: dict[str, str], query: dict[str, list[str]], body: bytes | None
    ) -> list[str]:
        """Every way this request breaks the spec (an empty list when it is valid)."""
        errors: list[str] = []
        known_query: set[str] = set()
        for param in route.params:
            name, where = param.get("name"), param.get("in")
            schema = param.get("schema", {})
            if where == "path":
                raw = path_params.get(name)
                if raw is None:
                    errors.append(f"path parameter {name} missing")
                    continue
                values = [raw]
            elif where == "query":
                known_query.add(name)
                values = query.get(name, [])
                if not values:
                    if param.get("required"):
                        errors.append(f"query parameter {name} is required")
                    continue
                if len(values) > 1 and schema.get("type") != "array":
                    errors.append(f"query parameter {name} given {len(values)} times")
            else:
                continue
            for raw in values:
                value = self._coerce(raw, schema)
                v = Draft4Validator(schema)
                for err in v.iter_errors(value):
                    errors.append(f"{where} parameter {name}={raw!r}: {err.message}")
        for name in query:
            if name not in known_query:
                errors.append(f"query parameter {name} is not defined for {route.operation_id}")
        if route.body_pointer is None:
            if route.raw_body:
                if not body and route.body_required:
                    errors.append("request body is required")
            elif body:
                errors.append(f"{route.operation_id} takes no request body")
            return errors
        if not body:
            if route.body_required:
                errors.append("request body is required")
            return errors
        try:
            data = json.loads(body)
        except ValueError as exc:
            return [*errors, f"request body is not JSON: {exc}"]
        for err in sorted(self.validator(route.body_pointer).iter_errors(data), key=lambda e: list(e.path)):
            where = "/".join(str(p) for p in err.absolute_path) or "(body)"
            errors.append(f"body {where}: {err.message[:300]}")
        return errors
