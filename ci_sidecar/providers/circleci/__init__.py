"""The CircleCI provider: the JUnit report staged for the job's ``store_test_results``, artifacts staged for its
``store_artifacts`` and their URLs read back through API v2 once the job has uploaded them; statuses and PR
comments go to the code host (the session's scm provider).

Modules: :mod:`.provider` (the class and its tiers), :mod:`.staging` (the job's staging folder and the
artifact lookup), :mod:`.settings`. docs/circleci.md is the user's guide.
"""

from __future__ import annotations

from .provider import CircleCIProvider

__all__ = ["CircleCIProvider"]
