"""The Bitbucket provider (Bitbucket Cloud, or a compatible ``base_url``): Code Insights reports and annotations,
build statuses, sticky pull request comments and artifacts in the repository's Downloads; Bitbucket Data
Center/Server when the ``base_url`` is a ``…/rest`` one (no Downloads there).

Modules: :mod:`.provider` (the class and its tiers), :mod:`.insights` (report, annotations, build statuses),
:mod:`.comments` (sticky comments), :mod:`.downloads` (artifacts); :mod:`._api` holds what they share. The Data
Center flavour: :mod:`.dc_api`, :mod:`.dc_insights`, :mod:`.dc_comments`, :mod:`.dc_doctor`.
docs/bitbucket.md is the user's guide.
"""

from __future__ import annotations

from .provider import BitbucketProvider

__all__ = ["BitbucketProvider"]
