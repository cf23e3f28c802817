"""Provider-neutral text helpers: sticky-comment markers, clipping to a vendor's limit, timestamps, links,
and the :class:`~ci_sidecar.reports.ReportData` a provider renders its summary from.

Every CI provider needs these the same way; vendor quirks (GitHub's BMP-only check-run text, a status
description's length) stay in the provider and call in here with their own limits.
"""

from __future__ import annotations

import datetime as dt
import time

from ci_sidecar.protocol.records import DeliverySummary, TestRun
from ci_sidecar.reports import ReportData

from ._results import Collected
from .base import ProviderEnv, RunSnapshot

__all__ = ["comment_marker", "clip_bytes", "clip_chars", "iso_utc", "utc_stamp", "http_url", "report_data",
           "CONCLUSIONS"]

#: the conclusions a run may carry into a report (anything else is left for the provider to derive)
CONCLUSIONS = ("success", "failure", "cancelled", "neutral", "timed_out")


def comment_marker(key: str) -> str:
    """The hidden HTML marker that makes a comment sticky (``--`` and ``>`` cannot end the comment early)."""
    safe = key.replace("--", "-\u2010").replace(">", "&gt;").replace("\n", " ")
    return f"<!-- ci-sidecar:key={safe} -->"


def clip_bytes(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes, ending in "…" when cut (never mid-character)."""
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return text
    return data[: limit - 3].decode("utf-8", "ignore") + "…"


def clip_chars(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, ending in "…" when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def iso_utc(timestamp: str | None) -> str | None:
    """``YYYY-MM-DDTHH:MM:SSZ`` in UTC (naive input is taken as UTC); ``None`` when empty or unparseable."""
    if not timestamp:
        return None
    try:
        value = dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_stamp(epoch: float | None = None) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ`` for ``epoch`` (default: now)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def http_url(url: str | None) -> str | None:
    """``url`` when it is an http(s) URL (vendors reject other schemes in links), else None."""
    return url if url and url.startswith(("https://", "http://")) else None


def report_data(run: RunSnapshot, env: ProviderEnv, collected: Collected, *, max_failures: int) -> ReportData:
    """The report of ``run`` as the renderers (:func:`ci_sidecar.reports.fit_markdown`) take it, from one pass
    over its results; at most ``max_failures`` failures are listed (the renderer's ladder shortens further)."""
    duration = None
    start, end = iso_utc(run.start_time), iso_utc(run.end_time)
    if start and end:
        duration = max(0.0, (dt.datetime.fromisoformat(end.replace("Z", "+00:00"))
                             - dt.datetime.fromisoformat(start.replace("Z", "+00:00"))).total_seconds())
    conclusion = run.conclusion if run.conclusion in CONCLUSIONS else None
    test_run = TestRun(
        id=run.id, name=run.name, status=run.status, start_time=run.start_time, counts=run.counts,
        delivery=DeliverySummary(pending=0, failed=0), targets=[], comments=[], conclusion=conclusion,
        end_time=run.end_time, duration=duration, external_id=run.external_id, coverage=run.coverage,
        delta=run.delta, shards=run.shards,
    )
    # every attempt when the pass kept them, else the latest result of each test
    latest = collected.all if collected.all is not None else list(collected.latest.values())
    return ReportData(
        run=test_run, ci=env.ci, failures=collected.failures[:max_failures],
        slowest=collected.slowest.results(), histogram=collected.histogram.buckets(),
        results=(lambda: latest) if latest else None,
        full_report_url=http_url(env.config.get("full_report_url")) or http_url(run.details_url),
    )
