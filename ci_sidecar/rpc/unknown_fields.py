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
from collections.abc import Callable
from typing import Any

import msgspec
import msgspec.inspect as mi

__all__ = ["UnknownFieldFinder", "finder_for", "with_warnings"]

_decode_any = msgspec.json.Decoder().decode


Walker = Callable[[Any, str, dict[str, "str | None"]], None]


class UnknownFieldFinder:
    """Per params type: ``find(raw_params) -> [(path, hint)]`` for keys the type does not define.

    The type is compiled once into walkers that visit only what can hold objects (nested structs and
    lists of them); a plain object costs one set difference, so checking stays cheap next to decoding.
    """

    def __init__(self, params_type: type) -> None:
        self._cache: dict[type, Walker] = {}
        self._walk = self._compile(mi.type_info(params_type)) or (lambda value, path, found: None)

    def find(self, raw: bytes) -> list[tuple[str, str | None]]:
        try:
            value = _decode_any(raw)
        except msgspec.DecodeError:
            return []
        found: dict[str, str | None] = {}
        self._walk(value, "", found)
        return list(found.items())

    def _compile(self, t: mi.Type) -> Walker | None:
        """A walker for values of type ``t``, or None when nothing inside can carry an unknown field."""
        if isinstance(t, mi.StructType):
            return self._struct(t)
        if isinstance(t, (mi.ListType, mi.VarTupleType, mi.SetType, mi.FrozenSetType)):
            return self._list(t.item_type)
        if isinstance(t, mi.UnionType):
            return self._union(t)
        return None

    def _list(self, item_type: mi.Type) -> Walker | None:
        item = self._compile(item_type)
        if item is None:
            return None

        def walk_list(value: Any, path: str, found: dict[str, str | None]) -> None:
            if isinstance(value, list):
                for element in value:
                    item(element, path + "[]", found)
        return walk_list

    def _union(self, t: mi.UnionType) -> Walker | None:
        structs = [s for s in t.types if isinstance(s, mi.StructType)]
        lists = [w for w in (self._compile(s) for s in t.types if not isinstance(s, mi.StructType)) if w]
        if not structs and not lists:
            return None
        tag_field = next((s.tag_field for s in structs if s.tag_field), None)
        by_tag = {s.tag: self._struct(s) for s in structs if s.tag_field}
        first = self._struct(structs[0]) if structs else None

        def walk_union(value: Any, path: str, found: dict[str, str | None]) -> None:
            if isinstance(value, dict) and first is not None:
                chosen = by_tag.get(value.get(tag_field)) if tag_field else None
                (chosen or first)(value, path, found)
            elif isinstance(value, list):
                for w in lists:
                    w(value, path, found)
        return walk_union

    def _struct(self, t: mi.StructType) -> Walker:
        cached = self._cache.get(t.cls)
        if cached is not None:
            return cached
        known = {f.encode_name for f in t.fields} | ({t.tag_field} if t.tag_field else set())
        children: list[tuple[str, Walker]] = []

        def walk_struct(value: Any, path: str, found: dict[str, str | None]) -> None:
            if not isinstance(value, dict):
                return
            extra = value.keys() - known
            if extra:
                for key in value:  # in the client's order
                    if key in extra:
                        close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.75)
                        found.setdefault(f"{path}.{key}" if path else key, close[0] if close else None)
            for key, child in children:
                if key in value:
                    child(value[key], f"{path}.{key}" if path else key, found)

        self._cache[t.cls] = walk_struct  # before the fields: a struct may contain itself
        children.extend((f.encode_name, w) for f in t.fields if (w := self._compile(f.type)) is not None)
        return walk_struct


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
