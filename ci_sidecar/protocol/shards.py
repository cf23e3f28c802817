"""The shards of a logical run split across machines: one row per shard, the slowest shard, and a balance hint.

A run merged from shards (a sharded group's published run, or a ``ci-sidecar merge`` fan-in) carries a
:class:`ShardReport` in ``TestRun.shards``; every report of the run (check run summary, job summary, sticky
comment, ``render_report``'s Markdown, HTML and JSON) shows it. The balance hint is the split of the run's tests
that would make the shards take equal times next run: a longest-first greedy split over each test's duration,
from the history's recent runs of the same name when it has them (``source: history``), else from this run.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

__all__ = ["ShardBalance", "ShardReport", "ShardRow", "MAX_SHARDS"]

#: shards a run may list (a fan-in of more outputs than this is refused)
MAX_SHARDS = 10_000

NonNegative = Annotated[int, msgspec.Meta(ge=0)]


class Wire(msgspec.Struct, omit_defaults=True):
    """As :class:`ci_sidecar.protocol.records.Wire` (defined here too: records imports this module)."""


class ShardRow(Wire):
    """One shard: its state (``missing``: never reported, or not finished when the group concluded), where it ran,
    how long it took (seconds), and its tests (``failed`` counts errors too)."""

    shard: Annotated[int, msgspec.Meta(ge=0)]
    status: Literal["finished", "running", "missing"]
    machine: Annotated[str, msgspec.Meta(max_length=256)] | None = None
    duration: Annotated[float, msgspec.Meta(ge=0)] | None = None
    total: NonNegative = 0
    passed: NonNegative = 0
    failed: NonNegative = 0
    skipped: NonNegative = 0


class ShardBalance(Wire):
    """The split that would equalise the shard times next run: tests per shard (``sizes``) and the time each shard
    would take (``predicted``, seconds), both in shard order, against the slowest shard's time now (``slowest_s``).

    ``source``: ``history`` (``known`` of the ``tests`` took their duration from the last ``runs`` recorded runs of
    the same name; the others from this run) or ``this_run`` (the history had none of them)."""

    source: Literal["history", "this_run"]
    tests: int
    sizes: list[int]
    predicted: list[float]
    slowest_s: float | None = None
    known: int = 0
    runs: int = 0


class ShardReport(Wire):
    """A merged run's shards: ``rows`` in shard order, the ``slowest`` finished shard's number, ``missing`` shard
    numbers (never counted as passed), and the ``balance`` hint once the run is finished."""

    rows: list[ShardRow]
    slowest: int | None = None
    missing: list[int] = []
    balance: ShardBalance | None = None
