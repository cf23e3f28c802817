"""Reports, badges and JUnit ingestion for runs: the glue between the run state and ``ci_sidecar.reports``.

Rendering streams a run's per-test records from disk (one pass for failures, slowest tests and the
duration histogram, one per renderer), so a run of a million tests renders in flat memory. Blocking
file work runs in worker threads.
"""

from __future__ import annotations

import io
import logging
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import trio

from ci_sidecar.protocol import errors as E
from ci_sidecar.protocol.records import Artifact, TestResult
from ci_sidecar.reports import (
    FILE_NAMES,
    DurationHistogram,
    ParseIssue,
    ReportArtifact,
    ReportData,
    SlowestTests,
    badge_svg,
    iter_junit,
    run_badge_message,
    sha256_file,
    shields_endpoint_json,
    write_report,
)
from ci_sidecar.atomic import atomic_write_bytes
from ci_sidecar.providers.local import output_partial

from .casstore import NotRegularFile, TooLarge, open_regular_file
from .runs import RunService, RunState
from .session_context import SessionContext
from .tally import test_key

__all__ = ["Reporting"]

log = logging.getLogger("ci_sidecar.reports")

_OUTPUT_MODE = 0o644
_INGEST_BATCH = 1000
#: largest JUnit file ingest_junit reads (a bigger one is refused with -31006 or listed in errors)
JUNIT_MAX_BYTES = 512 * 1024 * 1024
ALL_FORMATS = ("markdown", "html", "json", "junit", "github-annotations")


def _why(exc: BaseException) -> str:
    if isinstance(exc, TooLarge):
        return f"larger than the {exc.limit}-byte limit for a JUnit file ({exc.actual} bytes)"
    if isinstance(exc, OSError):
        return f"cannot read: {exc.strerror or exc}"
    return str(exc)


def _not_readable(path: str, exc: BaseException) -> E.BadInput:
    if isinstance(exc, TooLarge):
        return E.LimitExceeded(exc.limit, exc.actual, f"JUnit file {path!r} is larger than {exc.limit} bytes")
    return E.PathNotAllowed(path, _why(exc))


def _partial(run_output: Path) -> Path | None:
    """Temporary files of report writes stay out of the output folder a pipeline may archive."""
    return output_partial(run_output, run_output.name)


class Reporting:
    """render_report, render_badge, ingest_junit, and the report files written at completion."""

    def __init__(self, runs: RunService, artifacts_of: Callable[[str], list[Artifact]] | None = None) -> None:
        self.runs = runs
        self._artifacts_of = artifacts_of  # the run's artifacts, listed (and linked) in its reports
        # badge.svg is written by render_badge and by the run's publication, both in worker threads: one at a
        # time, so a badge computed before a render_badge call never lands after it
        self._badge_lock = threading.Lock()

    # --- reading a run back -------------------------------------------------------------------

    def iter_results(self, state: RunState) -> Iterator[TestResult]:
        """Every stored result in order, each (test, attempt) once (blocking; see ``RunReads.iter_stored``)."""
        return self.runs.iter_stored(state)

    def report_data(self, state: RunState) -> ReportData:
        """Everything the renderers need (blocking: one pass over the records)."""
        hist = DurationHistogram()
        slowest = SlowestTests(10)
        latest_failures: dict[int, TestResult] = {}
        failed_before: set[int] = set()
        flaky: dict[int, TestResult] = {}
        for r in self.iter_results(state):
            hist.add(r.duration)
            slowest.add(r)
            key = test_key(r)
            packed = state.tally.index.get(key)
            is_latest = packed is None or (r.attempt or 1) >= ((packed >> 2) & 63)
            if r.status in ("failed", "error"):
                failed_before.add(key)  # an earlier attempt failed: a later pass makes the test flaky
            if not is_latest:
                continue
            if r.status in ("failed", "error"):
                latest_failures[key] = r
            else:
                latest_failures.pop(key, None)
                if r.status == "passed" and key in failed_before:
                    flaky[key] = r
        return ReportData(run=self.runs.view(state), ci=state.meta.ci, failures=list(latest_failures.values()),
                          slowest=slowest.results(), histogram=hist.buckets(),
                          results=lambda: self.iter_results(state), flaky=list(flaky.values()),
                          artifacts=self._report_artifacts(state.meta.id))

    def _report_artifacts(self, run_id: str) -> list[ReportArtifact]:
        if self._artifacts_of is None:
            return []
        return [ReportArtifact(name=a.name, size=a.size, url=a.url) for a in self._artifacts_of(run_id)]

    def write_all(self, state: RunState) -> dict[str, Path]:
        """Every report format plus the badge into the run's output dir (blocking). Used at completion."""
        data = self.report_data(state)
        out = Path(state.meta.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        written = {}
        for fmt in ALL_FORMATS:
            written[fmt] = self._write_one(data, fmt, out / FILE_NAMES[fmt], None)[0]
        self._write_badge(state, out, "tests", "flat", explicit=False)
        return written

    @staticmethod
    def _write_one(data: ReportData, fmt: str, path: Path, max_bytes: int | None,
                   junit_path: str | None = None) -> tuple[Path, int, bool]:
        buf = io.StringIO()
        shortened = write_report(data, fmt, buf, max_bytes=max_bytes, junit_path=junit_path)  # type: ignore[arg-type]
        payload = buf.getvalue().encode("utf-8")
        atomic_write_bytes(path, payload, mode=_OUTPUT_MODE, tmp_dir=_partial(path.parent))
        return path, len(payload), shortened

    def _write_badge(self, state: RunState | None, out: Path | None, label: str, style: str,
                     status: str | None = None, *, explicit: bool = True) -> tuple[str, Path | None]:
        """Write ``badge.svg`` and ``badge.json`` into ``out`` (none without). A run's automatic badge
        (``explicit=False``) takes the label, style and status of the run's latest render_badge call, if any."""
        if out is None:
            return self._badge(state, label, style, status), None
        with self._badge_lock:
            if state is not None and explicit:
                state.badge = (label, style, status)
            elif state is not None and state.badge is not None:
                label, style, status = state.badge
            svg = self._badge(state, label, style, status)
            out.mkdir(parents=True, exist_ok=True)
            path = out / "badge.svg"
            atomic_write_bytes(path, svg.encode(), mode=_OUTPUT_MODE, tmp_dir=_partial(out))
            message, color = self._message(state, status)
            atomic_write_bytes(out / "badge.json", shields_endpoint_json(label, message, color).encode(),
                               mode=_OUTPUT_MODE, tmp_dir=_partial(out))
        return svg, path

    def _message(self, state: RunState | None, status: str | None) -> tuple[str, str]:
        if status is not None:
            return status, status
        return run_badge_message(self.runs.view(state) if state else None)

    def _badge(self, state: RunState | None, label: str, style: str, status: str | None) -> str:
        message, color = self._message(state, status)
        return badge_svg(label, message, color, style)  # type: ignore[arg-type]

    # --- methods --------------------------------------------------------------------------------

    async def render_report(self, run_id: str, fmt: str, max_bytes: int | None) -> dict[str, Any]:
        state = self.runs._require(run_id)
        out = Path(state.meta.output_dir)

        def render() -> tuple[Path, int, bool]:
            out.mkdir(parents=True, exist_ok=True)
            data = self.report_data(state)
            junit = None
            if fmt == "azure-vso":  # the agent publishes the run's JUnit file: write it as the run is now
                junit = str(self._write_one(data, "junit", out / FILE_NAMES["junit"], None)[0])
            return self._write_one(data, fmt, out / FILE_NAMES[fmt], max_bytes, junit)

        # every results write answered before this request is in the file before it is read
        await self.runs.store.records(run_id).commit(fsync=False)
        path, size, shortened = await trio.to_thread.run_sync(render)
        return {"path": str(path), "bytes": size, "truncated": shortened}

    async def render_badge(self, ctx: SessionContext, run_id: str | None, label: str, status: str | None,
                           style: str) -> dict[str, Any]:
        state = self.runs._require(run_id) if run_id else None
        out = Path(state.meta.output_dir) if state else None
        svg, path = await trio.to_thread.run_sync(self._write_badge, state, out, label, style, status)
        return {"svg": svg, "path": str(path) if path else None}

    async def ingest_junit(self, call: Any, ctx: SessionContext, run_id: str, pattern: str) -> dict[str, Any]:
        """Parse JUnit files (a path or a glob) into the run; files already ingested are skipped."""
        state = self.runs._require_open(run_id)
        assert ctx.sources is not None
        has_magic = any(ch in pattern for ch in "*?[")
        files = ctx.sources.glob(pattern) if has_magic else [ctx.sources.resolve(pattern)]
        accepted = skipped = unread = 0
        errors: list[dict[str, Any]] = []
        await call.progress("begin", title="ingest_junit", message=f"{len(files)} file(s)", percentage=0)
        for n, path in enumerate(files, 1):
            try:
                fd = await trio.to_thread.run_sync(open_regular_file, path, JUNIT_MAX_BYTES)
            except (NotRegularFile, TooLarge, OSError) as exc:
                if not has_magic:
                    raise _not_readable(pattern, exc) from None
                unread += 1
                errors.append({"file": str(path), "message": f"not ingested: {_why(exc)}"})
                continue
            ingested = await self._ingest_fd(ctx, state, fd, path)
            if ingested is None:
                skipped += 1
                continue
            count, issues, digest = ingested
            accepted += count
            errors += [{"file": str(path), **({"line": i.line} if i.line else {}), "message": i.message}
                       for i in issues]
            state.meta.junit_hashes.append(digest)
            self.runs._save(state)
            await self.runs.store.commit()
            await call.progress("report", message=f"{path.name}: {count} result(s)",
                                percentage=int(100 * n / max(1, len(files))))
        await call.progress("end", message=f"{accepted} result(s)")
        return {"accepted": accepted, "files": len(files) - skipped - unread, "skipped_files": skipped,
                "errors": errors}

    async def _ingest_fd(self, ctx: SessionContext, state: RunState, fd: int,
                         path: Path) -> tuple[int, list[ParseIssue], str] | None:
        """Ingest one opened file unless the run already has it (``None``): (results, issues, sha256)."""
        # Reads run in worker threads the request may abandon (a stalled disk must not keep the
        # daemon from stopping); such a thread then owns the file object, closed when it lets go.
        fp = os.fdopen(fd, "rb")
        abandoned = False
        try:
            digest = await trio.to_thread.run_sync(sha256_file, fp, abandon_on_cancel=True)
            if digest in state.meta.junit_hashes:
                return None
            fp.seek(0)
            count, issues = await self._ingest_file(ctx, state, fp, path)
            return count, issues, digest
        except trio.Cancelled:
            abandoned = True
            raise
        finally:
            if not abandoned:
                fp.close()

    async def _ingest_file(self, ctx: SessionContext, state: RunState, fp: IO[bytes],
                           path: Path) -> tuple[int, list[ParseIssue]]:
        parser = iter_junit(fp, name=str(path))
        issues: list[ParseIssue] = []

        def next_batch() -> list[TestResult]:
            batch: list[TestResult] = []
            for item in parser:
                if isinstance(item, ParseIssue):
                    issues.append(item)
                    continue
                batch.append(item)
                if len(batch) >= _INGEST_BATCH:
                    break
            return batch

        total = 0
        try:
            while True:
                batch = await trio.to_thread.run_sync(next_batch, abandon_on_cancel=True)
                if not batch:
                    break
                total += await self.runs.add_results(ctx, state, batch)
        except OSError as exc:
            issues.append(ParseIssue(file=str(path), message=f"cannot read: {exc.strerror or exc}"))
        return total, issues

