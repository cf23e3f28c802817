"""The group's sticky comment: totals, one row per shard (duration, counts, machine), the slowest shard, missing
shards, and a balance hint."""

from __future__ import annotations

from ci_sidecar.protocol.records import Counts

from ..runs.core import RunState
from .model import GroupDoc, ShardDoc

__all__ = ["comment_body", "shard_rows", "balance_hint"]


def _duration(s: ShardDoc) -> float | None:
    return round(s.end_wall - s.start_wall, 1) if s.end_wall is not None else None


def shard_rows(doc: GroupDoc, shards: dict[int, ShardDoc]) -> list[dict[str, object]]:
    """One row per expected shard (missing ones too), in shard order."""
    expected = sorted(set(range(doc.total)) | set(shards)) if doc.total else sorted(shards)
    rows: list[dict[str, object]] = []
    for n in expected:
        s = shards.get(n)
        if s is None:
            rows.append({"shard": n, "status": "missing"})
            continue
        status = s.status if s.status == "finished" else "missing (running)"
        rows.append({"shard": n, "status": status, "duration": _duration(s), "total": s.counts.total,
                     "passed": s.counts.passed, "failed": s.counts.failed + s.counts.errors,
                     "skipped": s.counts.skipped, "machine": s.machine})
    return rows


def balance_hint(shards: dict[int, ShardDoc]) -> str | None:
    """How far the shards are from equal: the slowest shard's time against the mean, and the share of tests
    each shard should take next time for equal times (tests per second measured in this run)."""
    timed = {n: (_duration(s), s.counts.total) for n, s in shards.items() if _duration(s) and s.counts.total}
    if len(timed) < 2:
        return None
    durations = [d for d, _ in timed.values() if d]
    mean = sum(durations) / len(durations)
    slowest = max(timed, key=lambda n: timed[n][0] or 0)
    if mean <= 0 or (timed[slowest][0] or 0) <= mean * 1.2:
        return None
    tests = sum(t for _, t in timed.values())
    rate = {n: t / (d or 1) for n, (d, t) in timed.items()}  # tests per second on that machine
    speed = sum(rate.values())
    split = ", ".join(f"{n}: {round(tests * rate[n] / speed)}" for n in sorted(rate))
    return (f"shard {slowest} took {timed[slowest][0]:.0f} s against a mean of {mean:.0f} s; "
            f"tests per shard for equal times next run: {split}")


def comment_body(state: RunState, doc: GroupDoc, shards: dict[int, ShardDoc], counts: Counts) -> str:
    """Markdown for the group's sticky PR comment."""
    meta = state.meta
    icon = {"success": "✅", "failure": "❌"}.get(meta.conclusion or "", "ℹ️")
    lines = [f"### {icon} {meta.name}: {meta.conclusion or meta.status}", "",
             f"**{counts.total}** tests across {len(shards)} shard(s): {counts.passed} passed, "
             f"{counts.failed} failed, {counts.errors} errors, {counts.skipped} skipped, {counts.flaky} flaky", ""]
    rows = shard_rows(doc, shards)
    missing = [r["shard"] for r in rows if str(r["status"]).startswith("missing")]
    if missing:
        lines += [f"**Missing shard(s):** {', '.join(str(m) for m in missing)} (not counted as passed)", ""]
    lines += ["| shard | status | duration | tests | passed | failed | skipped | machine |",
              "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        duration = f"{r['duration']} s" if r.get("duration") is not None else ""
        lines.append(f"| {r['shard']} | {r['status']} | {duration} | {r.get('total', '')} | {r.get('passed', '')} "
                     f"| {r.get('failed', '')} | {r.get('skipped', '')} | {r.get('machine', '')} |")
    timed = [(r["duration"], r["shard"]) for r in rows if r.get("duration") is not None]
    if timed:
        longest = max(timed)
        lines += ["", f"Slowest shard: {longest[1]} ({longest[0]} s)"]
    hint = balance_hint(shards)
    if hint:
        lines += ["", f"Balance: {hint}"]
    return "\n".join(lines) + "\n"
