"""The S3 fixtures of the artifact tests (moto's server and its fault proxy) serve the group tests too."""

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "artifacts"))

from fakes.spec import OpenApiSpec, require_spec  # noqa: E402
from s3_fixtures import FaultProxy, Moto, moto  # noqa: E402,F401


@pytest.fixture(scope="module")
def gh_spec() -> OpenApiSpec:
    return require_spec("github/api.github.com.ci-subset.json")


@pytest.fixture
def store(moto: Moto) -> Iterator[tuple[FaultProxy, str]]:  # noqa: F811
    """A fresh bucket behind the fault proxy (which makes moto's conditional PUTs atomic, as S3's are)."""
    with FaultProxy(moto.url) as proxy:
        yield proxy, moto.bucket()
