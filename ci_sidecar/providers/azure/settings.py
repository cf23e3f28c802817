"""The Azure DevOps provider's settings (its catalog line names this type)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from ..settings import ProviderSettings

__all__ = ["AzureSettings"]


class AzureSettings(ProviderSettings, kw_only=True):
    """What an Azure DevOps write may use besides its token: the pipeline's predefined variables and a knob.

    Docs: https://learn.microsoft.com/en-us/azure/devops/pipelines/build/variables
    """

    #: ``SYSTEM_COLLECTIONURI`` (``https://dev.azure.com/<org>/`` or an Azure DevOps Server collection)
    collection_uri: str | None = None
    #: ``SYSTEM_TEAMPROJECT``: the project every API path starts with
    project: str | None = None
    #: ``BUILD_BUILDID`` / ``BUILD_BUILDURI``: the build a test run belongs to (the Tests tab of that build)
    build_id: str | None = None
    build_uri: str | None = None
    #: ``BUILD_REPOSITORY_ID`` / ``BUILD_REPOSITORY_NAME`` / ``BUILD_REPOSITORY_PROVIDER`` (``TfsGit`` = Azure
    #: Repos: statuses and pull request threads go there; GitHub-hosted repositories have the GitHub provider)
    repository_id: str | None = None
    repository_name: str | None = None
    repository_provider: str | None = None
    #: ``SYSTEM_PULLREQUEST_PULLREQUESTID``: the pull request of a PR build (Azure Repos: the id is the number)
    pull_request_id: str | None = None
    #: ``TF_BUILD``: inside Azure Pipelines (the logging-command tier needs no token)
    tf_build: str | None = None
    #: ``context.genre`` of the statuses written (the UI shows ``genre/name``)
    status_genre: str = "ci-sidecar"

    CONFIG_KEYS: ClassVar[frozenset[str]] = frozenset({"http_timeout", "full_report_url", "status_genre"})
    ENV_KEYS: ClassVar[Mapping[str, str]] = {
        "collection_uri": "SYSTEM_COLLECTIONURI",
        "project": "SYSTEM_TEAMPROJECT",
        "build_id": "BUILD_BUILDID",
        "build_uri": "BUILD_BUILDURI",
        "repository_id": "BUILD_REPOSITORY_ID",
        "repository_name": "BUILD_REPOSITORY_NAME",
        "repository_provider": "BUILD_REPOSITORY_PROVIDER",
        "pull_request_id": "SYSTEM_PULLREQUEST_PULLREQUESTID",
        "tf_build": "TF_BUILD",
    }
