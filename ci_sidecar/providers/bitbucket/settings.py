"""The Bitbucket provider's settings (its catalog line names this type)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from ..settings import ProviderSettings

__all__ = ["BitbucketSettings", "PIPELINES_PROXY"]

#: the auth proxy every Bitbucket Pipelines step has (it authenticates Code Insights requests by itself)
PIPELINES_PROXY = "http://localhost:29418"


class BitbucketSettings(ProviderSettings, kw_only=True):
    """What a Bitbucket write may use besides its credential: the step's variables and two knobs."""

    #: ``BITBUCKET_WORKSPACE`` / ``BITBUCKET_REPO_SLUG`` (else the session's ``workspace/slug`` repository)
    workspace: str | None = None
    repo_slug: str | None = None
    #: Data Center: ``BITBUCKET_PROJECT_KEY`` (with ``repo_slug``; else the clone URL's ``…/scm/<key>/<slug>.git``)
    project_key: str | None = None
    #: ``BITBUCKET_BUILD_NUMBER``: inside Pipelines (the auth proxy is there), the Downloads name prefix
    build_number: str | None = None
    #: ``BITBUCKET_STEP_UUID``: the steps of one build (parallel ones too) name their downloads apart
    step_uuid: str | None = None
    #: ``BITBUCKET_PARALLEL_STEP``: parallel steps of one build name their reports apart
    parallel_step: str | None = None
    #: ``BITBUCKET_GIT_HTTP_ORIGIN`` (``https://bitbucket.org/ws/slug``): web links to the commit and pipeline
    http_origin: str | None = None
    #: the Pipelines auth proxy (used without a token, inside Pipelines)
    proxy_url: str = PIPELINES_PROXY

    CONFIG_KEYS: ClassVar[frozenset[str]] = frozenset({"http_timeout", "full_report_url", "proxy_url"})
    ENV_KEYS: ClassVar[Mapping[str, str]] = {
        "workspace": "BITBUCKET_WORKSPACE",
        "repo_slug": "BITBUCKET_REPO_SLUG",
        "project_key": "BITBUCKET_PROJECT_KEY",
        "build_number": "BITBUCKET_BUILD_NUMBER",
        "step_uuid": "BITBUCKET_STEP_UUID",
        "parallel_step": "BITBUCKET_PARALLEL_STEP",
        "http_origin": "BITBUCKET_GIT_HTTP_ORIGIN",
    }
