"""One Summary object for runs without per-test results, accepting plain counts and the seed's shapes.

Counts that contradict each other (``passed`` and ``passed_tests`` differ, parts exceeding the total,
task statuses not adding up) are refused with the path of the offending field.
"""

from __future__ import annotations

from ci_sidecar.protocol.errors import ContentError
from ci_sidecar.protocol.records import Counts, Summary

__all__ = ["SummaryError", "counts_from_summary"]

_ALIASES = (("total", "total_tests"), ("passed", "passed_tests"), ("failed", "failed_tests"),
            ("skipped", "skipped_tests"), ("duration", "duration_seconds"))
_TASK_BUCKETS = {
    "passed": ("passed", "success", "succeeded", "completed", "ok"),
    "failed": ("failed", "failure"),
    "errors": ("error", "errored", "broken"),
    "skipped": ("skipped", "cancelled", "canceled", "ignored", "pending", "timeout", "timed_out"),
}


class SummaryError(ContentError):
    """A summary whose counts contradict each other; ``path`` is where, under ``$.summary``."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def _pick(s: Summary, plain: str, seed: str) -> float | int | None:
    a, b = getattr(s, plain), getattr(s, seed)
    if a is not None and b is not None and a != b:
        raise SummaryError(f".{seed}", f"contradicts {plain}={a} ({seed}={b})")
    return a if a is not None else b


def counts_from_summary(s: Summary) -> tuple[Counts, float | None]:
    """Counts and duration from a Summary, or SummaryError when its numbers disagree."""
    values = {plain: _pick(s, plain, seed) for plain, seed in _ALIASES}
    errors = s.errors
    if s.task_statuses is not None:
        by_bucket = {k: 0 for k in _TASK_BUCKETS}
        for name, n in s.task_statuses.items():
            bucket = next((b for b, names in _TASK_BUCKETS.items() if name.lower() in names), None)
            if bucket is None:
                continue  # running/queued tasks are not finished tests
            by_bucket[bucket] += n
        for key, n in by_bucket.items():
            current = errors if key == "errors" else values[key]
            if current is not None and n and current != n:
                raise SummaryError(f".task_statuses", f"{key} adds up to {n}, but {key}={current}")
            if current is None and n:
                if key == "errors":
                    errors = n
                else:
                    values[key] = n
        task_total = sum(s.task_statuses.values())
        if s.total_tasks is not None and s.total_tasks != task_total:
            raise SummaryError(".total_tasks", f"task_statuses add up to {task_total}, not {s.total_tasks}")
    if values["total"] is None and s.total_tasks is not None:
        values["total"] = s.total_tasks
    parts = sum(int(values[k] or 0) for k in ("passed", "failed", "skipped")) + int(errors or 0)
    total = values["total"]
    if total is None:
        total = parts
    elif parts > total:
        raise SummaryError(".total", f"passed+failed+errors+skipped = {parts} exceeds total {total}")
    counts = Counts(total=int(total), passed=int(values["passed"] or 0), failed=int(values["failed"] or 0),
                    errors=int(errors or 0), skipped=int(values["skipped"] or 0), flaky=0)
    duration = values["duration"]
    return counts, float(duration) if duration is not None else None
