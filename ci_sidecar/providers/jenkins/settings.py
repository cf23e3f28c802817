"""The Jenkins provider's settings (its catalog line names this type)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from ..settings import ProviderSettings

__all__ = ["JenkinsSettings", "DEFAULT_STAGED_DIR"]

#: the folder (relative to ``WORKSPACE``) the documented Jenkinsfile's ``junit`` and ``archiveArtifacts`` collect:
#: ``ci-sidecar-out/junit/*.xml`` and ``ci-sidecar-out/artifacts/**``
DEFAULT_STAGED_DIR = "ci-sidecar-out"


class JenkinsSettings(ProviderSettings, kw_only=True):
    """What a Jenkins write may use besides its credential: the build's variables and one knob."""

    #: ``JENKINS_URL`` (the API's base when the token is not bound elsewhere)
    jenkins_url: str | None = None
    #: ``BUILD_URL``: the build's web address (artifact and report links)
    build_url: str | None = None
    #: ``JOB_NAME`` (``folder/sub/PR-7``, each part already encoded the way Jenkins encodes branch names) and
    #: ``BUILD_NUMBER``: the build's path under the API
    job_name: str | None = None
    build_number: str | None = None
    #: ``WORKSPACE``: where the staged JUnit report and artifacts go for the pipeline's ``junit`` and
    #: ``archiveArtifacts`` steps
    workspace: str | None = None
    #: the staging folder, relative to ``WORKSPACE``
    staged_dir: str = DEFAULT_STAGED_DIR

    CONFIG_KEYS: ClassVar[frozenset[str]] = frozenset({"http_timeout", "full_report_url", "staged_dir"})
    ENV_KEYS: ClassVar[Mapping[str, str]] = {
        "jenkins_url": "JENKINS_URL",
        "build_url": "BUILD_URL",
        "job_name": "JOB_NAME",
        "build_number": "BUILD_NUMBER",
        "workspace": "WORKSPACE",
    }
