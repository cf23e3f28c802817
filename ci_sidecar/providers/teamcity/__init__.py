"""The TeamCity provider: service messages in the build log as results arrive (through ``ci-sidecar exec``),
artifacts staged for ``publishArtifacts``; PR feedback goes through the code host.

Modules: :mod:`.provider` (the class and its tiers), :mod:`.job_log` (the run as a service-message stream for
``exec``), :mod:`.settings`. The messages themselves are rendered by :mod:`ci_sidecar.reports.teamcity`.
docs/teamcity.md is the user's guide.
"""

from __future__ import annotations

from .provider import TeamCityProvider

__all__ = ["TeamCityProvider"]
