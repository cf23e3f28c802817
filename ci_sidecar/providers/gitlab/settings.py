"""The GitLab provider's settings (its catalog line names this type)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from ..settings import ProviderSettings

__all__ = ["GitLabSettings"]


class GitLabSettings(ProviderSettings, kw_only=True):
    """What a GitLab write may use besides its token: the job's predefined variables and two knobs."""

    #: ``CI_API_V4_URL`` (self-managed instances need no configuration)
    api_url: str | None = None
    #: ``CI_PROJECT_ID``, else the URL-encoded ``CI_PROJECT_PATH``
    project_id: str | None = None
    project_path: str | None = None
    #: ``CI_PROJECT_URL``, ``CI_PROJECT_DIR``, ``CI_JOB_ID``, ``CI_JOB_NAME``, ``CI_PIPELINE_ID``: the staged tier's
    #: folder and URLs, the package of a pipeline
    project_url: str | None = None
    project_dir: str | None = None
    job_id: str | None = None
    job_name: str | None = None
    pipeline_id: str | None = None
    #: ``CI_COMMIT_REF_NAME``: the ref a commit status is set for
    commit_ref: str | None = None
    #: the staging folder (relative to ``CI_PROJECT_DIR``) the job's ``artifacts:paths`` collects
    staged_dir: str = "ci-sidecar-staged"  # the shared staging area's default (providers._staging.DEFAULT_FOLDER)
    #: the generic package artifacts are uploaded to (one version per pipeline)
    package_name: str = "ci-sidecar"

    CONFIG_KEYS: ClassVar[frozenset[str]] = frozenset({"http_timeout", "full_report_url", "staged_dir", "package_name"})
    ENV_KEYS: ClassVar[Mapping[str, str]] = {
        "api_url": "CI_API_V4_URL",
        "project_id": "CI_PROJECT_ID",
        "project_path": "CI_PROJECT_PATH",
        "project_url": "CI_PROJECT_URL",
        "project_dir": "CI_PROJECT_DIR",
        "job_id": "CI_JOB_ID",
        "job_name": "CI_JOB_NAME",
        "pipeline_id": "CI_PIPELINE_ID",
        "commit_ref": "CI_COMMIT_REF_NAME",
    }
