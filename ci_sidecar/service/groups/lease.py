"""The group's publish lease while this daemon holds it: short, renewed by a heartbeat, written only conditionally.

A shard publishes the group's merged run only while ``group.json`` names it as ``lease_holder`` with
``lease_until`` in the future. The lease is short (:data:`LEASE_S`) so that a holder killed with ``kill -9``
blocks the other shards for seconds, not minutes; while its holder is alive a heartbeat renews it every
:data:`RENEW_S` with ``If-Match: <etag>``. Every write of the group object by the holder goes through
:meth:`Lease.write`, one at a time, each carrying the last ETag: a shard that took an expired lease over has
changed the object, so the old holder's next write (heartbeat or not) loses and it stops publishing.

A holder that cannot renew (the store does not answer) stops before its lease runs out rather than publish
under a lease another shard may already have taken.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import trio

from ci_sidecar.providers.s3 import S3Failed
from ci_sidecar.providers.s3objects import ConditionFailed, ObjectStore

from .model import GroupDoc, encode

__all__ = ["Lease", "LEASE_S", "RENEW_S"]

#: how long a lease holds without renewal: what a holder killed -9 costs the other shards at most
LEASE_S = 10.0
#: the heartbeat's period: three renewals may fail (the store throttling) before the lease runs out
RENEW_S = LEASE_S / 4
#: a holder that could not renew stops publishing this long before its lease runs out (clock skew, a slow PUT)
_MARGIN_S = 1.0
#: a failed renewal is tried again after this long
_RETRY_S = 0.5

T = TypeVar("T")


class Lease:
    """The lease this daemon took by writing ``doc`` (ETag ``etag``) to ``key``."""

    def __init__(self, store: ObjectStore, key: str, doc: GroupDoc, etag: str) -> None:
        self.store, self.key, self.doc, self.etag = store, key, doc, etag
        self.lost = False
        self.renewals = 0
        self._released = False
        self._lock = trio.Lock()

    async def write(self, *, release: bool = False) -> None:
        """Write ``self.doc`` (a new version, the lease renewed, or given up with ``release``) if the object is
        still the one this holder wrote last; :class:`ConditionFailed` when another shard changed it."""
        async with self._lock:
            if self._released:
                raise ConditionFailed(self.key)  # given up already: a late heartbeat writes nothing
            self.doc.version += 1
            if release:
                self.doc.lease_holder, self.doc.lease_until = None, 0.0
            else:
                self.doc.lease_until = time.time() + LEASE_S
            try:
                self.etag = await self.store.put(self.key, encode(self.doc), if_match=self.etag)
            except ConditionFailed:
                self.lost = True
                raise
            self._released = release

    async def hold(self, body: Callable[[], Awaitable[T]]) -> T | None:
        """Run ``body`` while a heartbeat renews the lease; None when the lease was lost meanwhile (``body`` is
        cancelled then). ``body``'s exceptions pass through."""
        result: T | None = None
        error: Exception | None = None
        async with trio.open_nursery() as nursery:
            async def run() -> None:
                nonlocal result, error
                try:
                    result = await body()
                except Exception as exc:  # re-raised below, outside the nursery (no exception group)
                    error = exc
                nursery.cancel_scope.cancel()

            nursery.start_soon(self._heartbeat, nursery.cancel_scope)
            nursery.start_soon(run)
        if error is not None:
            raise error
        return None if self.lost else result

    async def _heartbeat(self, scope: trio.CancelScope) -> None:
        wait = RENEW_S
        while True:
            await trio.sleep(wait)
            try:
                await self.write()
                self.renewals += 1
                wait = RENEW_S
            except ConditionFailed:
                scope.cancel()  # another shard took the group over: our publication is stale
                return
            except S3Failed:
                if time.time() >= self.doc.lease_until - _MARGIN_S - _RETRY_S:
                    self.lost = True  # the lease may lapse before the store answers again: stop in time
                    scope.cancel()
                    return
                wait = _RETRY_S
