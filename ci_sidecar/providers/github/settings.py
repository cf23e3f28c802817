"""The GitHub provider's settings (its catalog line names this type)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, ClassVar

import msgspec

from ..settings import ProviderSettings

__all__ = ["GitHubSettings"]


class GitHubSettings(ProviderSettings, kw_only=True):
    """What a GitHub write may use besides its token."""

    #: ``GITHUB_API_URL`` of the job: the API when neither configuration nor the token's binding names one
    api_url: str | None = None
    #: ``GITHUB_STEP_SUMMARY``: the job summary file (the tier that needs no token)
    step_summary_path: str | None = None
    #: failure annotations per check run (the summary and the full report list every failure)
    max_annotations: Annotated[int, msgspec.Meta(ge=0)] | None = None
    #: a path prefix stripped from annotation paths (GitHub wants them relative to the repository)
    workspace: str | None = None
    #: ``GITHUB_WORKSPACE``: the checkout, stripped from absolute annotation paths too
    github_workspace: str | None = None
    #: the exact check-run name and status context of every run (default: run name, job and matrix values)
    check_name: str | None = None
    #: the origin of ``ACTIONS_RESULTS_URL`` when the job's Actions runtime token was found
    actions_results_url: str | None = None
    actions_runtime_token_present: bool = False
    #: artifact names are ``<artifact_prefix>-<name>``; default ``<GITHUB_JOB>[-<matrix values>]``
    artifact_prefix: str | None = None
    github_job: str | None = None
    artifact_matrix: str | None = None
    #: force ZIP64 records in artifact archives; the block size of blob uploads
    artifact_zip64: bool | None = None
    artifact_block_bytes: Annotated[int, msgspec.Meta(gt=0)] | None = None

    CONFIG_KEYS: ClassVar[frozenset[str]] = frozenset({
        "http_timeout", "full_report_url", "max_annotations", "workspace", "artifact_prefix", "artifact_zip64",
        "artifact_block_bytes", "check_name",
    })
    ENV_KEYS: ClassVar[Mapping[str, str]] = {
        "step_summary_path": "GITHUB_STEP_SUMMARY",
        "api_url": "GITHUB_API_URL",
        "github_job": "GITHUB_JOB",
        "github_workspace": "GITHUB_WORKSPACE",
        "artifact_matrix": "CI_SIDECAR_MATRIX",
        "artifact_prefix": "CI_SIDECAR_ARTIFACT_PREFIX",
    }
    CREDENTIAL_URLS: ClassVar[Mapping[str, str]] = {"actions_results_url": "github-actions-runtime"}
