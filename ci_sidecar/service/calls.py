"""What the service layer needs from the layer that calls it, as Protocols.

The rpc layer's ``Call`` and ``Session`` satisfy these structurally, so the service
layer never imports the rpc layer above it.
"""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["Call", "ClientSession"]


class ClientSession(Protocol):
    """A client's session: what it sent in ``initialize``, and the per-session context the service sets."""

    id: str
    env: dict[str, str] | None
    cwd: str | None
    config: dict[str, Any] | None
    #: the connecting user (SO_PEERCRED on a socket); None when unknown (stdio)
    peer_uid: int | None
    #: the service layer's per-session object (a ``SessionContext``), set at ``initialize``
    context: Any

    def log_nowait(self, type_: int, message: str) -> None:
        """Send ``window/logMessage`` outside a request; dropped when the client lags."""


class Call(Protocol):
    """The request a handler serves."""

    @property
    def session(self) -> ClientSession:
        """The session the request came on."""

    def ordered_part_done(self) -> None:
        """The request's effect on its run is in memory: later requests for the run may go ahead."""

    async def progress(self, kind: str, message: str | None = None, percentage: int | None = None,
                       title: str | None = None) -> None:
        """Send ``$/progress`` on the request's work-done token (nothing when it has none)."""
