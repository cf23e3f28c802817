"""The Travis CI provider's settings (its catalog line names this type)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from ..settings import ProviderSettings

__all__ = ["TravisSettings"]


class TravisSettings(ProviderSettings, kw_only=True):
    """What a Travis CI call may use besides its token: the job's variables."""

    #: ``TRAVIS_BUILD_ID``/``TRAVIS_JOB_ID``: the build and job API v3 reads (``GET /build/{id}``, ``/job/{id}``)
    build_id: str | None = None
    job_id: str | None = None

    ENV_KEYS: ClassVar[Mapping[str, str]] = {"build_id": "TRAVIS_BUILD_ID", "job_id": "TRAVIS_JOB_ID"}
