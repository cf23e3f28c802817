"""A run as TeamCity service messages in the build log, for ``ci-sidecar exec`` (the ``StreamsJobLog`` stream).

``exec`` prints :meth:`TeamCityJobLog.begin` when the run starts, :meth:`~TeamCityJobLog.results` for each
page of results ``read_test_results`` returns (so each test appears once, while the tests still run), and
:meth:`~TeamCityJobLog.end` when the run's writes were waited for: the artifacts the provider staged are then
complete files, which ``publishArtifacts`` may upload (TeamCity uploads in the background).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ci_sidecar.protocol.records import TestResult
from ci_sidecar.reports.teamcity import ServiceMessages

from .._staging import DEFAULT_FOLDER, StagingArea, StagingError
from ..base import UploadArtifact
from .settings import ARTIFACT_DIR

__all__ = ["TeamCityJobLog", "workspace_of"]


def workspace_of(session_cwd: str | None, repository_root: str | None) -> str:
    """The folder staged files live under: the checkout holding the session's cwd, else the cwd itself."""
    return repository_root or session_cwd or os.getcwd()


class TeamCityJobLog:
    """The service messages of one run, on its own flow (the run's id)."""

    def __init__(self, run: Mapping[str, Any], workspace: str, staged_dir: str = DEFAULT_FOLDER) -> None:
        self.run_id = str(run["id"])
        self.messages = ServiceMessages(flow_id=self.run_id, suite=str(run.get("name") or self.run_id),
                                        artifact_root=f"{ARTIFACT_DIR}/{self.run_id}")
        self.area = StagingArea(workspace, staged_dir)

    def begin(self) -> str:
        """``testSuiteStarted`` of the run."""
        return self.messages.begin()

    def results(self, results: Sequence[TestResult]) -> str:
        """Each result as a started/finished test."""
        return self.messages.results(results)

    def end(self, run: Mapping[str, Any], artifacts: Sequence[Mapping[str, Any]]) -> str:
        """The suite's end, the staged artifacts published, the build problem, status text and tag."""
        return self.messages.end(run, artifacts, self._staged(artifacts))

    def _staged(self, artifacts: Sequence[Mapping[str, Any]]) -> dict[str, str]:
        found: dict[str, str] = {}
        for art in artifacts:
            # the provider staged it whole (written aside, then renamed), whichever copy the artifact reports
            # as its primary (an object store's, when one is configured)
            try:
                path = self.area.artifact_path(UploadArtifact(run_id=self.run_id, name=art["name"], stored_path="",
                                                              sha256="", size=0, mime_type=""))
            except StagingError:
                continue
            if Path(path).is_file() and Path(path).stat().st_size == art.get("size", -1):
                found[art["name"]] = str(path)
        return found
