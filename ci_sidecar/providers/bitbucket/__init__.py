"""The Bitbucket provider (Bitbucket Cloud, or a compatible ``base_url``): Code Insights reports and annotations,
build statuses, sticky pull request comments and artifacts in the repository's Downloads.

Modules: :mod:`.provider` (the class and its tiers), :mod:`.insights` (report, annotations, build statuses),
:mod:`.comments` (sticky comments), :mod:`.downloads` (artifacts); :mod:`._api` holds what they share.
docs/bitbucket.md is the user's guide.
"""

from __future__ import annotations

from .provider import BitbucketProvider

__all__ = ["BitbucketProvider"]
