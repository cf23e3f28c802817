"""The Travis CI provider: Travis keeps no test results, statuses or comments of a job's own (it posts its own
build status to the code host), so statuses and PR comments go to the code host (the session's scm provider) and
artifacts to the configured ``[artifact_store]``; API v3 is read for the build's state and web links.

Modules: :mod:`.provider` (the class, its tiers and ``doctor --check``), :mod:`.settings`. docs/travis.md is the
user's guide.
"""

from __future__ import annotations

from .provider import TravisProvider

__all__ = ["TravisProvider"]
