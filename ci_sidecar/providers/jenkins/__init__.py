"""The Jenkins provider (any server, folders, multibranch): each run's line in the build description, the JUnit
report and artifacts staged for the pipeline's ``junit`` and ``archiveArtifacts`` steps and found again through
the build's API; statuses and PR comments go to the code host (the session's scm provider).

Modules: :mod:`.provider` (the class and its tiers), :mod:`.description` (the shared build description),
:mod:`.artifacts` (staging and archived URLs), :mod:`.doctor` (``doctor --check``); :mod:`._api` holds what they
share. docs/jenkins.md is the user's guide.
"""

from __future__ import annotations

from .provider import JenkinsProvider

__all__ = ["JenkinsProvider"]
