"""Unknown fields in request params (``mesage``, ``duraton``): found, so the client can be warned.

The params Structs ignore fields they do not define (new clients must work with old daemons), which
silently drops a typo's data. :class:`UnknownFieldFinder` walks the decoded JSON alongside the
method's params type and names every object key the type does not define, as a path without list
indices (``results[].mesage``), with the closest known name as a hint. Free-form objects
(``properties``, ``env``, ``config``) are not looked into.
"""

from __future__ import annotations

import difflib
import functools
from typing import Any

import msgspec
import msgspec.inspect as mi

__all__ = ["UnknownFieldFinder", "finder_for", "with_warnings"]

_decode_any = msgspec.json.Decoder().decode


class UnknownFieldFinder:
    """Per params type: ``find(raw_params) -> [(path, hint)]`` for keys the type does not define."""

    def __init__(self, params_type: type) -> None:
        self._info = mi.type_info(params_type)
        self._fields: dict[type, dict[str, mi.Type]] = {}

    def find(self, raw: bytes) -> list[tuple[str, str | None]]:
        try:
            value = _decode_any(raw)
        except msgspec.DecodeError:
            return []
        found: dict[str, str | None] = {}
        self._walk(self._info, value, "", found)
        return list(found.items())

    def _struct_fields(self, t: mi.StructType) -> dict[str, mi.Type]:
        fields = self._fields.get(t.cls)
        if fields is None:
            fields = self._fields[t.cls] = {f.encode_name: f.type for f in t.fields}
            if t.tag_field:
                fields[t.tag_field] = mi.AnyType()
        return fields

    def _walk(self, t: mi.Type, value: Any, path: str, found: dict[str, str | None]) -> None:
        if isinstance(t, mi.StructType) and isinstance(value, dict):
            fields = self._struct_fields(t)
            for key, item in value.items():
                sub = fields.get(key)
                if sub is None:
                    close = difflib.get_close_matches(key, list(fields), n=1, cutoff=0.75)
                    found.setdefault(f"{path}.{key}" if path else key, close[0] if close else None)
                elif not isinstance(sub, _LEAF_TYPES):
                    self._walk(sub, item, f"{path}.{key}" if path else key, found)
        elif isinstance(t, (mi.ListType, mi.VarTupleType, mi.SetType, mi.FrozenSetType)) and isinstance(value, list):
            if isinstance(t.item_type, (mi.StructType, mi.UnionType)):
                for item in value:
                    self._walk(t.item_type, item, path + "[]", found)
        elif isinstance(t, mi.UnionType):
            structs = [s for s in t.types if isinstance(s, mi.StructType)]
            if isinstance(value, dict) and structs:
                self._walk(_pick(structs, value), value, path, found)
            elif isinstance(value, list):
                for s in t.types:
                    if isinstance(s, (mi.ListType, mi.VarTupleType)):
                        self._walk(s, value, path, found)
                        break


_LEAF_TYPES = (mi.StrType, mi.IntType, mi.FloatType, mi.BoolType, mi.NoneType, mi.LiteralType, mi.AnyType,
               mi.DictType, mi.EnumType, mi.BytesType, mi.DateTimeType, mi.RawType)


def _pick(structs: list[mi.StructType], value: dict) -> mi.StructType:
    """The union member a JSON object decodes as: by its tag, else the only (or first) struct."""
    for s in structs:
        if s.tag_field and value.get(s.tag_field) == s.tag:
            return s
    return structs[0]


@functools.cache
def finder_for(params_type: type) -> UnknownFieldFinder:
    """One finder per params type, built on first use."""
    return UnknownFieldFinder(params_type)


def with_warnings(result: bytes, warnings: list[str]) -> bytes:
    """An encoded result object with ``"warnings": [...]`` added (results that are not objects: as is)."""
    if not warnings or not result.startswith(b"{"):
        return result
    head = b'{"warnings":' + msgspec.json.encode(warnings)
    return head + (b"}" if result == b"{}" else b"," + result[1:])
