"""Generate ``ci_sidecar_client/_methods.py`` (TypedDicts for the wire types and one typed method per RPC
method) from the daemon's OpenRPC document (``rpc.discover``). Usage, from clients/python:

    python3 scripts/gen_methods.py           write ci_sidecar_client/_methods.py
    python3 scripts/gen_methods.py --check   exit 1 when the committed file differs (drift check)

The daemon is spawned as ``$CI_SIDECAR_TEST_PYTHON -m ci_sidecar serve --stdio --debug-methods`` (this
interpreter by default), so the debug methods are typed too.
"""

import json
import keyword
import os
import re
import sys
import tempfile
from typing import Any, Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "ci_sidecar_client", "_methods.py")

#: the session's own messages: Client sends them itself (constructor, close, cancel)
LIFECYCLE = ("initialize", "initialized", "shutdown", "exit", "$/cancelRequest")

_SCALARS = {"string": "str", "integer": "int", "number": "float", "boolean": "bool", "null": "None"}


def py_type(schema: Any) -> str:
    """JSON Schema (as msgspec emits it) -> a typing expression."""
    if schema is True or not schema:
        return "Any"
    if "$ref" in schema:
        return repr(schema["$ref"].rsplit("/", 1)[1])
    if "anyOf" in schema or "oneOf" in schema:
        parts = []  # type: List[str]
        for sub in schema.get("anyOf") or schema["oneOf"]:
            t = py_type(sub)
            if t not in parts:
                parts.append(t)
        if "None" in parts and len(parts) == 2:
            return "Optional[%s]" % [p for p in parts if p != "None"][0]
        return "Union[%s]" % ", ".join(parts)
    if "const" in schema:
        return "Literal[%s]" % json.dumps(schema["const"])
    if "enum" in schema:
        return "Literal[%s]" % ", ".join(json.dumps(v) for v in schema["enum"])
    t = schema.get("type")
    if isinstance(t, list):
        return py_type({"anyOf": [dict(schema, type=x) for x in t]})
    if t in _SCALARS:
        return _SCALARS[t]
    if t == "array":
        if "prefixItems" in schema:
            return "Tuple[%s]" % ", ".join(py_type(s) for s in schema["prefixItems"])
        return "List[%s]" % py_type(schema.get("items", {}))
    if t == "object":
        extra = schema.get("additionalProperties")
        return "Dict[str, %s]" % (py_type(extra) if isinstance(extra, dict) else "Any")
    return "Any"


def _doc(text: str, indent: str) -> List[str]:
    if not text:
        return []
    lines = text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"').strip().split("\n")
    body = [lines[0]] + [(indent + ln.strip()) if ln.strip() else "" for ln in lines[1:]]
    return [indent + '"""' + "\n".join(body) + '"""']


def method_name(name: str) -> str:
    """``sidecar/debug/sleep`` -> ``sidecar_debug_sleep``, ``rpc.discover`` -> ``rpc_discover``."""
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_")


def _arg(name: str) -> str:
    return name + "_" if keyword.iskeyword(name) else name


def _typed_dict(name: str, schema: Dict[str, Any]) -> List[str]:
    props = schema.get("properties", {})
    required = [k for k in props if k in set(schema.get("required", []))]
    optional = [k for k in props if k not in required]
    for key in props:
        assert key.isidentifier() and not keyword.iskeyword(key), "%s.%s is no identifier" % (name, key)
    out = []  # type: List[str]
    base = "TypedDict"
    if required and optional:
        base = "_%sRequired" % name
        out.append("class %s(TypedDict):" % base)
        out.extend("    %s: %s" % (k, py_type(props[k])) for k in required)
        out += ["", ""]
    out.append("class %s(%s%s):" % (name, base, ", total=False" if optional else ""))
    out.extend(_doc(schema.get("description", ""), "    "))
    keys = optional if base != "TypedDict" else list(props)
    out.extend("    %s: %s" % (k, py_type(props[k])) for k in keys)
    if not keys and not schema.get("description"):
        out.append("    pass")
    return out


def _method(m: Dict[str, Any]) -> List[str]:
    params = m["params"]
    ordered = [p for p in params if p["required"]] + [p for p in params if not p["required"]]
    sig = ["self"]
    if ordered:
        sig.append("*")
    for p in ordered:
        t = py_type(p["schema"])
        if p["required"]:
            sig.append("%s: %s" % (_arg(p["name"]), t))
        else:
            sig.append("%s: %s = None" % (_arg(p["name"]), t if t.startswith("Optional[") or t == "Any"
                                          else "Optional[%s]" % t))
    notification = m.get("x-notification", False)
    result = "None" if notification else py_type(m["result"]["schema"])
    out = ["    def %s(%s) -> %s:" % (method_name(m["name"]), ", ".join(sig), result)]
    doc = "``%s``: %s" % (m["name"], m.get("summary") or "")
    if any(not p["required"] for p in params):
        doc += "\n\nArguments left as None are not sent (the daemon's default applies)."
    out.extend(_doc(doc, "        "))
    call = "self.notify" if notification else "return self.request"
    if params:
        args = ", ".join("%r: %s" % (p["name"], _arg(p["name"])) for p in params)
        out.append("        %s(%r, _present({%s}))" % (call, m["name"], args))
    else:
        out.append("        %s(%r)" % (call, m["name"]))
    return out


def render(openrpc: Dict[str, Any]) -> str:
    """The whole ``_methods.py`` text for an OpenRPC document."""
    out = [
        "# GENERATED by scripts/gen_methods.py from the daemon's rpc.discover document. Do not edit by hand:",
        "# run `python3 scripts/gen_methods.py` in clients/python. Protocol version %s."
        % openrpc["info"]["x-protocolVersion"],
        '"""Typed wire messages (TypedDicts) and one method per daemon method, mixed into :class:`Client`."""',
        "",
        "from typing import {typing}",
        "",
    ]
    schemas = openrpc.get("components", {}).get("schemas", {})
    names = sorted(schemas)
    out.append("__all__ = [%s]" % ", ".join(repr(n) for n in ["Methods"] + names))
    out += ["", ""]
    out += ["def _present(params: Dict[str, Any]) -> Dict[str, Any]:",
            '    """The arguments given (None means: not sent)."""',
            "    return {k: v for k, v in params.items() if v is not None}", "", ""]
    for name in names:
        out += _typed_dict(name, schemas[name]) + ["", ""]
    out += ["class Methods:",
            '    """One method per daemon method (keyword arguments as the protocol names them); each waits for the',
            '    answer and returns its result, or raises RpcError. ``request`` reaches any method by name."""',
            "",
            "    def request(self, method: str, params: Any = None, timeout: Optional[float] = None) -> Any:",
            "        raise NotImplementedError",
            "",
            "    def notify(self, method: str, params: Any = None) -> None:",
            "        raise NotImplementedError"]
    for m in openrpc["methods"]:
        if m["name"] not in LIFECYCLE:
            out += [""] + _method(m)
    text = "\n".join(out) + "\n"
    used = [n for n in ("Any", "Dict", "List", "Literal", "Optional", "Tuple", "TypedDict", "Union")
            if re.search(r"\b%s\[|\b%s\b[^\[]" % (n, n), text.split("__all__", 1)[1])]
    return text.replace("{typing}", ", ".join(used), 1)


def discover() -> Dict[str, Any]:
    """``rpc.discover`` of a freshly spawned daemon (private state dir, debug methods on)."""
    sys.path.insert(0, os.path.join(HERE, ".."))
    from ci_sidecar_client import Client

    python = os.environ.get("CI_SIDECAR_TEST_PYTHON") or sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, CI_SIDECAR_STATE_DIR=os.path.join(tmp, "state"))
        with Client.spawn([python, "-m", "ci_sidecar", "serve", "--stdio", "--debug-methods"], env=env) as c:
            return c.request("rpc.discover", timeout=60)


def main(argv: List[str]) -> int:
    text = render(discover())
    if "--check" in argv:
        with open(OUT, encoding="utf-8") as f:
            if f.read() != text:
                print("ci_sidecar_client/_methods.py differs from rpc.discover: run python3 scripts/gen_methods.py",
                      file=sys.stderr)
                return 1
        return 0
    with open(OUT, "w", encoding="utf-8") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
