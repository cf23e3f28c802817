"""Handing a target over between daemons: a sharded group's merged run is published by whichever shard's
daemon holds the group's lease, so the outbox adopts what another daemon learnt about the provider object, and
forgets a publication whose turn passed to another daemon."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from ci_sidecar.protocol.records import DeliveryState, ErrorInfo
from ci_sidecar.providers.base import Provider, ResumesUnrecorded

from .entries import Entry, OutboxDone, OutboxRemote

__all__ = ["Handover"]


class Handover:
    """The outbox's hand-over methods (mixed into :class:`~ci_sidecar.delivery.outbox.Outbox`)."""

    providers: Mapping[str, Provider]
    _remote: dict[tuple[str, str], dict[str, Any]]
    _pending: OrderedDict[str, Entry]
    _retrying: dict[str, str]
    _unsent: set[str]
    _append: Callable[[Any], None]
    _finish: Callable[[str, DeliveryState], None]

    def adopt_remote(self, provider: str, target: str, remote: dict[str, Any], *, unsure: bool = False) -> None:
        """Take what another daemon learnt about a target (a sharded group's provider object) as ours.
        ``unsure``: that daemon died between a write to the provider and its record, so ``remote`` may be behind:
        the provider is asked to find its object again before creating or appending (when it can:
        :class:`~ci_sidecar.providers.base.ResumesUnrecorded`)."""
        impl = self.providers.get(provider) if unsure else None
        if isinstance(impl, ResumesUnrecorded):
            remote = impl.unrecorded(dict(remote))
        if self._remote.get((provider, target)) != remote:
            self._remote[(provider, target)] = dict(remote)
            self._append(OutboxRemote(provider=provider, target=target, remote=dict(remote)))

    def drop_pending(self, run_id: str, reason: str) -> None:
        """Forget a run's pending writes that another daemon took over (a sharded group's merged run): they
        are not delivered and never will be; waiters hear ``reason``."""
        for e in [e for e in self._pending.values() if e.run_id == run_id]:
            del self._pending[e.id]
            self._retrying.pop(e.id, None)
            self._unsent.discard(e.id)
            self._append(OutboxDone(id=e.id, provider=e.provider, target=e.target, remote=None))
            self._finish(e.id, DeliveryState(state="failed", error=ErrorInfo(code=-31004, message=reason)))
