"""What a request handler gets and gives: :class:`Call` (its session, id, progress token, run ticket),
the ``Handler`` signature, :func:`runs_inline`, and the mapping of anything a handler raises to an error
object that never leaks internals.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ci_sidecar.protocol import errors as E
from ci_sidecar.protocol.methods import LogMessageParams, ProgressParams, ProgressValue

from .ordering import Ticket

if TYPE_CHECKING:
    from .host import SessionHost

__all__ = ["Call", "Handler", "runs_inline"]

log = logging.getLogger("ci_sidecar.rpc")

Handler = Callable[["Call", Any], Awaitable[Any]]


def runs_inline(handler: Handler) -> Handler:
    """Mark a handler that answers without awaiting anything (no I/O, nothing to cancel, no run to order):
    the session runs it to its end in the reader, in arrival order, without a task, a cancel scope or an
    in-flight slot. A marked handler that does await answers -32603 (an incident), never half-runs."""
    handler.runs_inline = True  # type: ignore[attr-defined]
    return handler


class Call:
    """What a handler knows about the request it serves: its session, id and progress token."""

    __slots__ = ("session", "id", "token", "ticket")  # session: the rpc.session.Session (not imported: a cycle)

    def __init__(self, session: Any, rid: Any, token: Any, ticket: Ticket | None = None) -> None:
        self.session = session
        self.id = rid
        self.token = token
        self.ticket = ticket

    def ordered_part_done(self) -> None:
        """The request's effect on its run is applied in memory: later requests for the same run may
        proceed while this one waits for durability (its answer still waits for the commit)."""
        if self.ticket is not None:
            self.ticket.release()

    @property
    def daemon(self) -> SessionHost:
        return self.session.daemon

    async def progress(self, kind: str, message: str | None = None, percentage: int | None = None,
                       title: str | None = None) -> None:
        """Send ``$/progress`` on the request's ``workDoneToken`` (nothing when it has none)."""
        if self.token is None:
            return
        value = ProgressValue(kind=kind, message=message, percentage=percentage, title=title)  # type: ignore[arg-type]
        await self.session.notify("$/progress", ProgressParams(token=self.token, value=value))

    async def log(self, type_: int, message: str) -> None:
        """Send ``window/logMessage`` to this session (1 error, 2 warning, 3 info, 4 log)."""
        await self.session.notify("window/logMessage", LogMessageParams(type=type_, message=message))  # type: ignore[arg-type]


def _incident(exc: BaseException, method: str) -> E.InternalError:
    incident = uuid.uuid4().hex[:12]
    log.error("incident %s in %s", incident, method, exc_info=(type(exc), exc, exc.__traceback__))
    return E.InternalError(incident)


def _as_protocol_error(exc: BaseException, method: str) -> E.WireError:
    """Map any exception from a handler to an error object, never leaking internals."""
    if isinstance(exc, E.WireError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        leaves = [e for e in _leaves(exc)]
        if len(leaves) == 1 and isinstance(leaves[0], E.WireError):
            return leaves[0]
    return _incident(exc, method)


def _leaves(group: BaseExceptionGroup) -> list[BaseException]:
    out: list[BaseException] = []
    for e in group.exceptions:
        out.extend(_leaves(e) if isinstance(e, BaseExceptionGroup) else [e])
    return out


