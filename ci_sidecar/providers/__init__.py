"""Providers: one module each behind :class:`ci_sidecar.providers.base.Provider`.

``REGISTRY`` maps a provider name to its factory, one line per provider.
"""

from __future__ import annotations

from collections.abc import Callable

from .base import Provider
from .github import GitHubProvider
from .local import LocalProvider

__all__ = ["REGISTRY", "make_provider", "KNOWN_PROVIDERS"]

REGISTRY: dict[str, Callable[[], Provider]] = {
    "local": LocalProvider,
    "github": GitHubProvider,
}

#: every provider the protocol names (PROTOCOL.md §CIContext); those not in REGISTRY yet answer -31007
KNOWN_PROVIDERS = ("github", "gitlab", "jenkins", "azure", "circleci", "teamcity", "travis", "bitbucket", "local")


def make_provider(name: str) -> Provider | None:
    factory = REGISTRY.get(name)
    return factory() if factory else None
