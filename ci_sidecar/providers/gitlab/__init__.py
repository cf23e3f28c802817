"""The GitLab provider (gitlab.com and self-managed): commit statuses per run, sticky merge request notes,
artifacts in the generic package registry or staged for the job's ``artifacts:paths``.

Modules: :mod:`.provider` (the class and its tiers), :mod:`.statuses` (the status state machine),
:mod:`.notes` (sticky notes), :mod:`.artifacts` (package registry and staged tier), :mod:`.doctor`
(``doctor --check``); :mod:`._api` holds what they share. docs/gitlab.md is the user's guide.
"""

from __future__ import annotations

from .provider import GitLabProvider

__all__ = ["GitLabProvider"]
