"""The build description as ci-sidecar's status board: one line per test run and per build status.

Jenkins keeps one description per build (``POST …/submitDescription``, a form field). Several runs and
status contexts of one build share it, and the pipeline may have written its own text there, so every write
reads the description first (``api/json?tree=description``), replaces only its own line (lines begin with
``ci-sidecar | <label> |``), keeps everybody else's text as it was, and sends nothing when the result is
unchanged. Our lines are kept sorted by label: however deliveries interleave, the same writes give the same
text. Writes to one build are serialised within the daemon, so two lines never race.

Live updates are debounced by the delivery layer (results coalesce into one update every couple of seconds,
further apart as a run ages); an unchanged line costs one read and no write.
"""

from __future__ import annotations

from typing import Any

import trio

from .._http import ApiSession, Form
from .._render import clip_chars
from ..base import RunSnapshot
from ._api import build_path

__all__ = ["PREFIX", "run_line", "status_line", "merge", "write_line", "BuildLocks"]

PREFIX = "ci-sidecar | "
LINE_CHARS = 1000


def _clean(text: str) -> str:
    return " ".join(str(text).split())


def _counts(run: RunSnapshot) -> str:
    c = run.counts
    parts = [f"{c.passed} passed", f"{c.failed + c.errors} failed", f"{c.skipped} skipped"]
    if c.flaky:
        parts.append(f"{c.flaky} flaky")
    return ", ".join(parts)


def run_state(run: RunSnapshot, final: bool) -> str:
    """``running`` until the run ends, then its conclusion (from its counts when it gave none)."""
    if run.status == "running" and not final:
        return "running"
    if run.conclusion:
        return run.conclusion
    c = run.counts
    return "failure" if c.failed or c.errors else "success"


def label_of(line: str) -> str | None:
    """The label of one of our lines (``unit tests``, ``status lint``), None for anybody else's."""
    if not line.startswith(PREFIX):
        return None
    return line[len(PREFIX):].split(" | ", 1)[0] or None


def run_line(run: RunSnapshot, final: bool, report: str | None) -> tuple[str, str]:
    """(label, line) of a test run: its state, counts and coverage, and where its report is."""
    label = _clean(run.name) or "tests"
    line = f"{PREFIX}{label} | {run_state(run, final)}: {_counts(run)} of {run.counts.total}"
    if run.coverage is not None:
        line += f", coverage {run.coverage:.1f}%"
    if report:
        line += f" | report: {report}"
    return label, clip_chars(line, LINE_CHARS)


def status_line(context: str, state: str, description: str | None, target_url: str | None) -> tuple[str, str]:
    """(label, line) of a build status set without a code host."""
    label = f"status {_clean(context)}"
    line = f"{PREFIX}{label} | {state}"
    if description:
        line += f": {_clean(description)}"
    if target_url:
        line += f" | {target_url}"
    return label, clip_chars(line, LINE_CHARS)


def merge(current: str | None, label: str, line: str | None) -> str:
    """``current`` with our line for ``label`` set to ``line`` (None removes it): other text first, as it was,
    then our lines sorted by label."""
    others: list[str] = []
    ours: dict[str, str] = {}
    for raw in (current or "").replace("\r\n", "\n").split("\n"):
        mine = label_of(raw)
        if mine is None:
            others.append(raw)
        else:
            ours[mine] = raw
    while others and not others[-1].strip():
        others.pop()
    if line is None:
        ours.pop(label, None)
    else:
        ours[label] = line
    return "\n".join(others + [ours[k] for k in sorted(ours)])


class BuildLocks:
    """One lock per build, so the read-modify-write of two lines of one description never interleave."""

    def __init__(self) -> None:
        self._locks: dict[str, trio.Lock] = {}

    def of(self, key: str) -> trio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = trio.Lock()
        return lock


async def read_description(api: ApiSession, path: str) -> str | None:
    """The build's description now (None: it has none)."""
    body: Any = (await api.request("GET", f"{path}/api/json", params={"tree": "description"})).json() or {}
    value = body.get("description") if isinstance(body, dict) else None
    return value if isinstance(value, str) else None


async def write_line(api: ApiSession, env: Any, locks: BuildLocks, label: str, line: str | None) -> str:
    """Put our ``line`` for ``label`` into the build's description; ``"updated"`` or ``"unchanged"``.

    Raises the session's :class:`~ci_sidecar.providers._http.HttpError` (classified) when Jenkins refuses.
    """
    path = build_path(env)
    assert path is not None
    async with locks.of(api.config.base_url + path):
        current = await read_description(api, path)
        wanted = merge(current, label, line)
        if wanted == (current or "").replace("\r\n", "\n"):
            return "unchanged"
        await api.request("POST", f"{path}/submitDescription", body=Form({"description": wanted,
                                                                          "Submit": "Submit"}),
                          expect_json=False, redirects="return")
        return "updated"
