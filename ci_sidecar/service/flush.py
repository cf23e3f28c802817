"""The end of a job: ``shutdown`` waits for the session's pending writes up to ``flush_timeout_s`` and says
what it is still waiting for while it waits (the client sees a notice every second, the daemon's log a
line every five), then answers with the exact list of what was not delivered and where it is kept."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import trio

from ci_sidecar.delivery.outbox import Outbox
from ci_sidecar.protocol.records import DeliverySummary, Undelivered

if TYPE_CHECKING:
    from .calls import ClientSession

__all__ = ["flush_session", "describe", "WAITING_PREFIX", "SHUTDOWN_NOTICE_PREFIX"]

log = logging.getLogger("ci_sidecar.delivery")

#: how the notices start (``ci-sidecar exec`` draws them as its live line)
WAITING_PREFIX = "waiting for "
#: how the one notice at the start of the wait begins (``exec`` says this in its own words)
SHUTDOWN_NOTICE_PREFIX = "waiting up to "
NOTICE_INTERVAL_S = 1.0
LOG_INTERVAL_S = 5.0


def describe(u: Undelivered) -> str:
    """One write in words: ``github run:1a2b (PublishRun, 3 attempts, next in 12 s: HTTP 503)``."""
    parts = [u.operation]
    if u.attempts:
        parts.append(f"{u.attempts} attempt{'s' if u.attempts != 1 else ''}")
    if u.state == "pending" and u.next_attempt_s:
        parts.append(f"next in {u.next_attempt_s:.0f} s")
    why = f": {u.error}" if u.error else ""
    return f"{u.provider} {u.target} ({', '.join(parts)}{why})"


def waiting_line(summary: DeliverySummary, left_s: float) -> str:
    pending = [u for u in summary.undelivered if u.state == "pending"]
    shown = "; ".join(describe(u) for u in pending[:3])
    more = f"; and {summary.pending - 3} more" if summary.pending > 3 else ""
    return f"{WAITING_PREFIX}{summary.pending} write(s), {left_s:.0f} s left: {shown}{more}"


async def flush_session(outbox: Outbox, session: ClientSession, timeout_s: float) -> DeliverySummary:
    """Wait (bounded) for the session's writes, telling the client and the log what is still pending."""
    deadline = time.monotonic() + timeout_s

    async def notices() -> None:
        last_logged = time.monotonic()
        while True:
            await trio.sleep(NOTICE_INTERVAL_S)
            summary = outbox.summary(session_id=session.id)
            if not summary.pending:
                continue
            line = waiting_line(summary, max(0.0, deadline - time.monotonic()))
            session.log_nowait(3, line)
            if time.monotonic() - last_logged >= LOG_INTERVAL_S:
                log.info("session %s: %s", session.id, line)
                last_logged = time.monotonic()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(notices)
        summary = await outbox.flush_session(session.id, timeout_s)
        nursery.cancel_scope.cancel()
    if summary.pending or summary.failed:
        log.warning("session %s ends with %d write(s) pending and %d failed%s: %s", session.id, summary.pending,
                    summary.failed, f" (kept in {summary.kept_in})" if summary.kept_in else "",
                    "; ".join(describe(u) for u in summary.undelivered))
    return summary
