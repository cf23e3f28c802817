"""Providers: one module each behind :class:`ci_sidecar.providers.base.Provider`.

``REGISTRY`` maps a provider name to its class as ``"module:Class"``, derived from the catalog
(:mod:`ci_sidecar.providers.catalog`), so a provider's module (and its HTTP stack) is imported only when a
session first needs it: a daemon that only ever serves ``local`` starts without importing httpx.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, TypeVar

from .catalog import ci_names, implemented

if TYPE_CHECKING:  # the catalog is read by the configuration: importing it must not import the interface
    from .base import Provider

__all__ = ["REGISTRY", "KNOWN_PROVIDERS", "Providers", "make_provider", "provider_class"]


def __getattr__(name: str) -> object:
    # read from the catalog when asked, so what a process adds to it before using providers counts
    if name == "REGISTRY":  # every provider this version has (the s3 object store too: it is not a CI)
        return implemented()
    if name == "KNOWN_PROVIDERS":  # every provider a session can name; those not in REGISTRY answer -31007
        return ci_names()
    raise AttributeError(name)


_C = TypeVar("_C")


def provider_class(name: str, registry: Mapping[str, str] | None = None) -> type | None:
    """The named provider's class (its module imported now), or None when this build has none by that name."""
    target = (implemented() if registry is None else registry).get(name)
    if target is None:
        return None
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)


def make_provider(name: str, registry: Mapping[str, str] | None = None) -> Provider | None:
    """A new instance of the named provider, or None when this build has none by that name.

    Raises:
        TypeError: the class is not a provider named *name*, or defines a capability's method with the
            wrong shape (:func:`~ci_sidecar.providers.base.capabilities_of`): found when it loads, not
            when a session first needs that capability.
    """
    loaded = _load(name, registry)
    return loaded[0] if loaded is not None else None


def _load(name: str, registry: Mapping[str, str] | None) -> tuple[Provider, frozenset[type]] | None:
    from .base import capabilities_of

    cls = provider_class(name, registry)
    if cls is None:
        return None
    instance = cls()
    found = capabilities_of(instance)
    if cls.name != name:
        raise TypeError(f"{cls.__name__}.name is {cls.name!r}, but the catalog names it {name!r}")
    return instance, found


class Providers(Mapping[str, "Provider"]):
    """The daemon's provider instances, created on first use (one per name, shared by all sessions)."""

    def __init__(self, names: Mapping[str, str] | None = None) -> None:
        self._names = implemented() if names is None else names
        self._instances: dict[str, Provider] = {}
        self._capabilities: dict[str, frozenset[type]] = {}

    def __getitem__(self, name: str) -> Provider:
        instance = self._instances.get(name)
        if instance is None:
            loaded = _load(name, self._names) if name in self._names else None
            if loaded is None:
                raise KeyError(name)
            instance, self._capabilities[name] = loaded
            self._instances[name] = instance
        return instance

    def capable(self, name: str | None, capability: type[_C]) -> _C | None:
        """The named provider when it has *capability* (one of :data:`~ci_sidecar.providers.base.CAPABILITIES`),
        else None (also when this build has no such provider)."""
        if name is None or name not in self._names:
            return None
        instance = self[name]
        return instance if capability in self._capabilities[name] else None  # type: ignore[return-value]

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def loaded(self) -> dict[str, Provider]:
        """Only the providers already in use (for status and shutdown: nothing gets imported for them)."""
        return dict(self._instances)
