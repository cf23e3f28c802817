"""What the outbox keeps: one journaled entry per logical write, its journal records, and the secrets it
references by fingerprint (in memory only)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from ci_sidecar.protocol.records import CIContext, ErrorInfo, Undelivered
from ci_sidecar.providers.base import CredentialRef, Operation

__all__ = ["Entry", "OutboxPut", "OutboxDone", "OutboxFailed", "OutboxRemote", "OutboxImage", "CredentialPool",
           "undelivered"]


class Entry(msgspec.Struct, kw_only=True):
    """One logical write. ``id`` doubles as its idempotency key across retries and restarts."""

    id: str
    provider: str
    target: str
    op: Operation
    run_id: str | None = None
    session_id: str | None = None
    ci: CIContext | None = None
    credential: CredentialRef | None = None
    config: dict[str, Any] = {}
    created: float = 0.0
    not_before: float = 0.0
    attempts: int = 0
    error: ErrorInfo | None = None
    #: seconds spent held back by the write budget (not counted against the retry policy's budget)
    held_s: float = 0.0


class OutboxPut(msgspec.Struct, tag="outbox_put"):
    entry: Entry


class OutboxDone(msgspec.Struct, tag="outbox_done", kw_only=True):
    id: str
    provider: str
    target: str
    remote: dict[str, Any] | None = None


class OutboxRemote(msgspec.Struct, tag="outbox_remote", kw_only=True):
    """What a provider learned about a target during an attempt that is not finished (e.g. a PATCH
    in flight): kept so the next attempt does not redo what reached the provider."""

    provider: str
    target: str
    remote: dict[str, Any]


class OutboxFailed(msgspec.Struct, tag="outbox_failed", kw_only=True):
    id: str
    error: ErrorInfo


class OutboxImage(msgspec.Struct, kw_only=True):
    """The outbox in a snapshot."""

    pending: list[Entry] = []
    failed: list[Entry] = []
    remote: list[tuple[str, str, dict[str, Any]]] = []


class CredentialPool:
    """Secrets in memory only, by fingerprint; writes reference them, never contain them."""

    def __init__(self) -> None:
        self._secrets: dict[str, str] = {}
        #: called when a secret arrives (outboxes sharing the pool wake their dispatchers)
        self.listeners: list[Callable[[], None]] = []

    def add(self, fingerprint: str, secret: str) -> None:
        if self._secrets.get(fingerprint) != secret:
            self._secrets[fingerprint] = secret
            for listener in list(self.listeners):
                listener()

    def get(self, ref: CredentialRef) -> str | None:
        return self._secrets.get(ref.fingerprint)


def undelivered(e: Entry, state: str, now: float, *, blocked: bool, last_error: str | None) -> Undelivered:
    """A pending or failed write as a summary lists it (``blocked``: it waits for a credential)."""
    pending = state == "pending"
    return Undelivered(
        provider=e.provider, target=e.target, operation=type(e.op).__name__, state=state,  # type: ignore[arg-type]
        attempts=e.attempts, next_attempt_s=round(max(0.0, e.not_before - now), 1) if pending and not blocked else None,
        error=(e.error.message if e.error else None) if not pending else
        ("waiting for a matching credential" if blocked else last_error))
