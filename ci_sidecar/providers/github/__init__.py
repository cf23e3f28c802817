"""The GitHub provider (github.com and GitHub Enterprise Server): check runs, commit statuses, sticky PR comments,
Actions artifacts.

Tiers for a test run, tried in order and remembered in ``remote["tier"]`` so later attempts go straight to the
one that works (:mod:`.checks`):

1. **check run** on the head SHA (App installation or Actions token): ``in_progress`` with a live summary,
   ``completed`` with a conclusion at the end; ``external_id`` is the run id, so a create whose response was
   lost is found by listing the ref's check runs instead of being duplicated. Failures become annotations,
   50 per request, appended by later PATCHes, capped (with a note) at ``max_annotations``.
2. **commit status** when the Checks API answers 403 "Resource not accessible…"/"must authenticate via a
   GitHub App" (classic and fine-grained PATs); description ≤ 140 characters (:mod:`.statuses`).
3. **job summary**: inside GitHub Actions with ``GITHUB_STEP_SUMMARY`` (``config["step_summary_path"]``) the
   Markdown report is appended there on the final publish — always, and as the only tier when the token is
   read-only (fork PRs, Dependabot) or absent.

Summaries go through the shared degrade ladder (:func:`ci_sidecar.reports.fit_markdown`) to 65,535 UTF-8 bytes;
characters above U+FFFF are escaped in check-run text (the Checks API rejects them, per EM's reporter).

Modules, by API surface: :mod:`.provider` (the class), :mod:`.checks`, :mod:`.statuses`, :mod:`.comments`
(sticky PR comments), :mod:`.runtime` (the Actions runtime token, artifact names), :mod:`.artifacts` (the
results service's twirp calls), :mod:`._zip` and :mod:`._blob` (the archive and its blob upload),
:mod:`.artifact_lookup` (the REST artifact list); :mod:`._api` holds what they share.
"""

from __future__ import annotations

from .._render import comment_marker
from ._api import API_VERSION, DEFAULT_API_URL, bmp_safe, token_kind
from .provider import GitHubProvider

__all__ = ["GitHubProvider", "comment_marker", "bmp_safe", "DEFAULT_API_URL", "API_VERSION", "token_kind"]
