"""A CI provider's own per-artifact limit (capability limit ``artifact_bytes``, Azure DevOps: 100 MB per test-run
attachment): a larger artifact is refused with -31006 naming the limit, unless an object store keeps it."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from ci_sidecar.protocol import errors as E
from ci_sidecar.protocol.records import ProviderCaps, Tier
from ci_sidecar.service.artifacts.uploads import ArtifactUploads

LIMIT = 100 * 1024 * 1024


def context(*, store: bool) -> Any:
    native = Tier(kind="native", via="test run attachment")
    caps = ProviderCaps(provider="azure", test_run=native, build_status=native, pr_comment=native, artifacts=native,
                        limits={"artifact_bytes": LIMIT})
    return SimpleNamespace(artifact_routes=lambda p: (["local", p] + (["s3"] if store else []), p),
                           caps=lambda p: caps, store="s3" if store else None, available=lambda p: True)


STATE = SimpleNamespace(meta=SimpleNamespace(ci_provider="azure"))


def test_an_artifact_past_the_providers_limit_is_refused_with_the_limit() -> None:
    """100 MB + 1 byte for Azure without an object store: -31006 with the limit and what to configure."""
    with pytest.raises(E.LimitExceeded) as caught:
        ArtifactUploads._check_provider_limit(context(store=False), STATE, "big.bin", LIMIT + 1)  # type: ignore[arg-type]
    assert caught.value.code == -31006 and str(LIMIT) in caught.value.message
    assert "artifact_store" in caught.value.message


def test_an_object_store_or_a_smaller_artifact_is_accepted() -> None:
    """With an object store the large artifact is kept there; at the limit it goes to Azure."""
    ArtifactUploads._check_provider_limit(context(store=True), STATE, "big.bin", LIMIT + 1)  # type: ignore[arg-type]
    ArtifactUploads._check_provider_limit(context(store=False), STATE, "ok.bin", LIMIT)  # type: ignore[arg-type]


def test_a_file_past_the_limit_goes_to_the_object_store_only() -> None:
    """Past Azure's limit the artifact is sent to the object store (its primary copy) and not to Azure; a file
    within it goes to both, Azure's copy primary."""
    big = SimpleNamespace(inside=None, size=LIMIT + 1)
    small = SimpleNamespace(inside=None, size=LIMIT)
    ctx = context(store=True)
    ctx.artifact_routes = lambda p: (["local", p, "s3"], p)
    assert (["local", "s3"], "s3") == ArtifactUploads._routes(ctx, "azure", big)  # type: ignore[arg-type]
    assert (["local", "azure", "s3"], "azure") == ArtifactUploads._routes(ctx, "azure", small)  # type: ignore[arg-type]
