"""What a finished run's history says: the delta against its base run and the tests that flip.

A run's ``delta`` (in ``TestRun``, every report and ``get_test_run_status``) compares it with its **base**:
the last finished run of the same name on the pull request's target branch, else the previous run of the
same name on its own branch. Lists are capped at :data:`DELTA_LIST_CAP` names; the counts are exact.
"""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = ["DELTA_LIST_CAP", "BaseRun", "DeltaCounts", "FlakyTest", "RunDelta"]

#: names listed per category at most (the counts stay exact)
DELTA_LIST_CAP = 100


class Wire(msgspec.Struct, omit_defaults=True):
    """As :class:`ci_sidecar.protocol.records.Wire` (defined here too: records imports this module)."""


class BaseRun(Wire):
    """The run a delta compares with."""

    test_run_id: str
    name: str
    branch: str | None = None
    commit_sha: str | None = None
    conclusion: str | None = None
    finished_at: str | None = None
    build_id: str | None = None


class DeltaCounts(msgspec.Struct, kw_only=True):
    """How many tests changed, by category (exact, even when the lists are capped; always all sent)."""

    new_failures: int = 0
    fixed: int = 0
    still_failing: int = 0
    new_tests: int = 0
    removed_tests: int = 0


class FlakyTest(Wire):
    """A test whose outcome flipped within the window: ``score`` is flips per outcome (0..1)."""

    test: str
    score: float
    flips: int
    runs: int


class RunDelta(Wire):
    """A finished run compared with its base.

    ``base_kind``: ``target_branch`` (the PR's target branch), ``previous_run`` (this branch's previous run),
    or ``none`` (nothing to compare with: every test is new). ``new_failures`` are tests failing now that did
    not fail in the base (a new test that fails is one); ``fixed`` failed in the base and pass now.
    ``flaky`` lists the run's tests whose outcomes flipped over the last ``window`` runs of the base's series.
    """

    base_kind: Literal["target_branch", "previous_run", "none"]
    counts: DeltaCounts
    base: BaseRun | None = None
    new_failures: list[str] = []
    fixed: list[str] = []
    still_failing: list[str] = []
    new_tests: list[str] = []
    removed_tests: list[str] = []
    flaky: list[FlakyTest] = []
    window: int = 0
    #: the conclusion of the previous run of the same name on this run's branch (what ``on_change`` and
    #: ``on_fixed`` notification rules compare with)
    previous_conclusion: str | None = None
