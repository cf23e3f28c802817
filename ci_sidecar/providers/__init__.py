"""Providers: one module each behind :class:`ci_sidecar.providers.base.Provider`.

``REGISTRY`` maps a provider name to its class as ``"module:Class"``, derived from the catalog
(:mod:`ci_sidecar.providers.catalog`), so a provider's module (and its HTTP stack) is imported only when a
session first needs it: a daemon that only ever serves ``local`` starts without importing httpx.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from .catalog import ci_names, implemented

if TYPE_CHECKING:  # the catalog is read by the configuration: importing it must not import the interface
    from .base import Provider

__all__ = ["REGISTRY", "KNOWN_PROVIDERS", "Providers", "make_provider"]

#: every provider this version has (the ``s3`` object store among them: it holds artifacts, it is not a CI)
REGISTRY: dict[str, str] = implemented()

#: every provider a session can name (PROTOCOL.md §CIContext); those not in REGISTRY answer -31007
KNOWN_PROVIDERS = ci_names()


def make_provider(name: str) -> Provider | None:
    """A new instance of the named provider, or None when this build has none by that name."""
    target = REGISTRY.get(name)
    if target is None:
        return None
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)()


class Providers(Mapping[str, "Provider"]):
    """The daemon's provider instances, created on first use (one per name, shared by all sessions)."""

    def __init__(self, names: Mapping[str, str] = REGISTRY) -> None:
        self._names = names
        self._instances: dict[str, Provider] = {}

    def __getitem__(self, name: str) -> Provider:
        instance = self._instances.get(name)
        if instance is None:
            made = make_provider(name) if name in self._names else None
            if made is None:
                raise KeyError(name)
            instance = self._instances[name] = made
        return instance

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def loaded(self) -> dict[str, Provider]:
        """Only the providers already in use (for status and shutdown: nothing gets imported for them)."""
        return dict(self._instances)
