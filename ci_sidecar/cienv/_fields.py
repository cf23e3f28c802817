"""Collects CIContext values together with where each came from (its ``Source``).

Every detector fills one ``Fields`` in priority order: the first value offered for a field wins, so a
detector lists the most trustworthy variable first and the fallbacks after it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import Any, Literal

from ci_sidecar.protocol.records import CIContext, ScmContext, Source

__all__ = ["Fields", "parse_int", "strip_ref", "truthy"]

log = logging.getLogger(__name__)

SourceKind = Literal["env", "file", "git", "config", "derived"]

_INT = re.compile(r"^\s*\d+\s*$")


def parse_int(value: str | None) -> int | None:
    """Return *value* as a non-negative int, or None when it is not a plain decimal number."""
    if value is None or not _INT.match(value):
        return None
    return int(value)


def truthy(value: str | None) -> bool | None:
    """Interpret a CI flag ("true"/"True"/"1" vs "false"/"0"); None when absent or unrecognised."""
    if value is None:
        return None
    lowered = value.strip().lower()
    if lowered in {"true", "1", "yes", "on"}:
        return True
    if lowered in {"false", "0", "no", "off"}:
        return False
    return None


def strip_ref(ref: str | None, prefix: str = "refs/heads/") -> str | None:
    """Drop *prefix* from a git ref name (``refs/heads/main`` -> ``main``); other refs are returned as is."""
    if not ref:
        return None
    return ref[len(prefix) :] if ref.startswith(prefix) else ref


class Fields:
    """CIContext values under construction, with one Source per filled field."""

    def __init__(self, provider: str, env: Mapping[str, str]) -> None:
        self.provider = provider
        self.env = env
        self.values: dict[str, Any] = {}
        self.sources: dict[str, Source] = {}
        self.scm: ScmContext | None = None
        # Clone URLs the CI announces (Jenkins GIT_URL, CircleCI CIRCLE_REPOSITORY_URL...), for scm detection.
        self.remote_urls: list[tuple[str, Source]] = []

    def var(self, name: str) -> str | None:
        """The env var *name*, stripped, or None when unset or empty (CIs often export empty strings)."""
        value = self.env.get(name)
        if value is None:
            return None
        value = value.strip()
        return value or None

    def first(self, *names: str) -> tuple[str, str] | None:
        """The first set variable among *names* as ``(name, value)``."""
        for name in names:
            value = self.var(name)
            if value is not None:
                return name, value
        return None

    def has(self, field: str) -> bool:
        """Whether *field* already has a value."""
        return field in self.values

    def put(self, field: str, value: Any, kind: SourceKind, name: str, *, replace: bool = False) -> bool:
        """Set *field* unless it is already set (or *replace*); empty values are ignored. Returns whether it was set."""
        if value is None or value == "":
            return False
        if field in self.values and not replace:
            return False
        self.values[field] = value
        self.sources[field] = Source(kind=kind, name=name)
        return True

    def from_env(self, field: str, *names: str, convert: Callable[[str], Any] | None = None) -> bool:
        """Fill *field* from the first of *names* whose (converted) value is usable."""
        if field in self.values:
            return False
        for name in names:
            raw = self.var(name)
            if raw is None:
                continue
            value = convert(raw) if convert is not None else raw
            if value is None:
                log.debug("ignoring %s: %r is not a usable %s", name, raw, field)
                continue
            return self.put(field, value, "env", name)
        return False

    def add_remote(self, url: str | None, kind: SourceKind, name: str) -> None:
        """Remember a clone URL announced by the CI (never stored in the context itself: it may hold a token)."""
        if url:
            self.remote_urls.append((url, Source(kind=kind, name=name)))

    def set_scm(self, scm: ScmContext, kind: SourceKind, name: str) -> None:
        """Name the code host when the CI's own variables tell it (recorded under ``sources["scm"]``)."""
        if self.scm is None:
            self.scm = scm
            self.sources["scm"] = Source(kind=kind, name=name)

    def build(self) -> CIContext:
        """The finished CIContext."""
        return CIContext(provider=self.provider, scm=self.scm, sources=dict(self.sources), **self.values)
