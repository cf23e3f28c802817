"""``rpc.discover``: an OpenRPC 1.x document generated from the method table's Structs."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import msgspec

from ci_sidecar import PROTOCOL_VERSION, __version__

from .methods import METHODS

__all__ = ["openrpc_document"]

_REF = "#/components/schemas/{name}"


def _params_list(params_type: type, schema: dict[str, Any], components: dict[str, Any]) -> list[dict[str, Any]]:
    """OpenRPC lists params one by one (by-name); expand the params Struct's properties."""
    ref = schema.get("$ref")
    obj = components[ref.rsplit("/", 1)[1]] if ref else schema
    required = set(obj.get("required", []))
    return [
        {"name": name, "required": name in required, "schema": prop}
        for name, prop in obj.get("properties", {}).items()
    ]


@lru_cache(maxsize=8)
def _document(names: tuple[str, ...]) -> dict[str, Any]:
    specs = [METHODS[n] for n in names]
    types: list[Any] = []
    for spec in specs:
        types.append(spec.params)
        types.append(spec.result if spec.result is not None else type(None))
    schemas, components = msgspec.json.schema_components(types, ref_template=_REF)
    methods = []
    for i, spec in enumerate(specs):
        p_schema, r_schema = schemas[2 * i], schemas[2 * i + 1]
        method: dict[str, Any] = {
            "name": spec.name,
            "summary": spec.summary,
            "paramStructure": "by-name",
            "params": _params_list(spec.params, p_schema, components),
        }
        if spec.notification:
            method["x-notification"] = True
        else:
            method["result"] = {"name": "result", "schema": r_schema}
        if spec.errors:
            method["x-errors"] = list(spec.errors)
        methods.append(method)
    return {
        "openrpc": "1.2.6",
        "info": {
            "title": "ci-sidecar",
            "version": __version__,
            "x-protocolVersion": PROTOCOL_VERSION,
            "description": "JSON-RPC 2.0 over LSP framing (stdio or a Unix socket).",
        },
        "methods": methods,
        "components": {"schemas": components},
    }


def openrpc_document(method_names: list[str]) -> dict[str, Any]:
    """The OpenRPC document describing ``method_names`` (cached; the table is static)."""
    return _document(tuple(method_names))
