"""The CircleCI provider's settings (its catalog line names this type)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from .._staging import DEFAULT_FOLDER
from ..settings import ProviderSettings

__all__ = ["CircleCISettings"]


class CircleCISettings(ProviderSettings, kw_only=True):
    """What a CircleCI write may use besides its token: the job's variables and two knobs."""

    #: ``CIRCLE_WORKING_DIRECTORY`` (``~/project`` by default: ``~`` is the job's ``HOME``): the folder the
    #: job's ``store_test_results``/``store_artifacts`` paths are relative to
    working_directory: str | None = None
    home: str | None = None
    #: ``CIRCLE_NODE_INDEX``/``CIRCLE_NODE_TOTAL``: which of a job's parallel nodes this is (each stores its own
    #: artifacts; the API lists them with their ``node_index``)
    node_index: str | None = None
    node_total: str | None = None
    #: the project slug of API v2 (``gh/<org>/<repo>``, ``bb/<org>/<repo>``, ``circleci/<org-id>/<project-id>``);
    #: unset: derived (see :func:`.staging.project_slug`)
    project_slug: str | None = None
    #: ``CIRCLE_ORGANIZATION_ID``/``CIRCLE_PROJECT_ID``: the slug of GitLab, GitHub App and Bitbucket Data Center
    #: projects (``circleci/<org-id>/<project-id>``)
    organization_id: str | None = None
    project_id: str | None = None
    #: the staging folder (relative to the working directory) the job's collect steps name
    staged_dir: str = DEFAULT_FOLDER

    CONFIG_KEYS: ClassVar[frozenset[str]] = frozenset({"http_timeout", "full_report_url", "staged_dir",
                                                       "project_slug"})
    ENV_KEYS: ClassVar[Mapping[str, str]] = {
        "working_directory": "CIRCLE_WORKING_DIRECTORY",
        "home": "HOME",
        "node_index": "CIRCLE_NODE_INDEX",
        "node_total": "CIRCLE_NODE_TOTAL",
        "organization_id": "CIRCLE_ORGANIZATION_ID",
        "project_id": "CIRCLE_PROJECT_ID",
    }
