"""What a session and the lifecycle methods need from the daemon that hosts them.

:class:`~ci_sidecar.rpc.server.Daemon` implements :class:`SessionHost`; sessions see the daemon only
through it, so the session module never imports the server that creates sessions.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ci_sidecar.config import Config

    from .ordering import KeyedGate

__all__ = ["SessionHost"]


class SessionHost(Protocol):
    """The daemon as its sessions see it: configuration, the method table, shared counters, the stop sequence."""

    config: Config
    debug_methods: bool
    request_drain_s: float
    handlers: dict[str, Any]
    decoders: dict[str, Callable[[bytes], Any]]
    run_gate: KeyedGate
    sessions: set[Any]
    services: list[Any]
    counters: Counter[str]
    started: float
    transport: str
    stopping: bool

    def count(self, name: str) -> None: ...

    def touch(self) -> None: ...

    def served_methods(self) -> list[str]: ...

    def request_stop(self, exit_code: int | None = None) -> None: ...

    def status(self) -> dict[str, Any]: ...
