"""The TeamCity provider's settings (its catalog line names this type)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from .._staging import DEFAULT_FOLDER
from ..settings import ProviderSettings

__all__ = ["TeamCitySettings", "ARTIFACT_DIR"]

#: where a run's artifacts land among the build's artifacts: ``ci-sidecar/<run id>/<artifact name>``
ARTIFACT_DIR = "ci-sidecar"


class TeamCitySettings(ProviderSettings, kw_only=True):
    """What a TeamCity write may use besides its token (the build id and server come from the CI context)."""

    #: the staging folder (relative to the checkout) artifacts are copied to before they are published
    staged_dir: str = DEFAULT_FOLDER

    #: ``CI_SIDECAR_RUN_ID``: the session is a command ``ci-sidecar exec`` runs, and exec prints this run
    exec_run_id: str | None = None

    CONFIG_KEYS: ClassVar[frozenset[str]] = ProviderSettings.CONFIG_KEYS
    ENV_KEYS: ClassVar[Mapping[str, str]] = {"exec_run_id": "CI_SIDECAR_RUN_ID"}
