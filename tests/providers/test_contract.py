"""Every provider of the catalog keeps the provider contract (tests/providers/contract.py)."""

from __future__ import annotations

import pytest
import trio

from ci_sidecar.providers.catalog import CATALOG

from .contract import check_credentials, check_provider, check_settings


@pytest.mark.parametrize("spec", CATALOG, ids=lambda s: s.name)
def test_credential_spec_is_consistent(spec) -> None:
    """Each line's credential spec names variables, plain file names and http(s) URLs, and a user name fully."""
    check_credentials(spec)


@pytest.mark.parametrize("spec", CATALOG, ids=lambda s: s.name)
def test_settings_decode(spec) -> None:
    """Each line's settings type declares only its own fields, and what a session builds for it decodes typed."""
    check_settings(spec)


@pytest.mark.parametrize("spec", [s for s in CATALOG if s.impl], ids=lambda s: s.name)
def test_provider_loads_with_the_capabilities_it_declares(spec) -> None:
    """Each implemented line loads under its own name, with exactly the capabilities its methods declare."""
    provider = check_provider(spec)
    trio.run(provider.aclose)
