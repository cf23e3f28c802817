"""Adoption: a daemon takes over the instances other daemons left under its state root and finishes
their work.

An orphan (its daemon died: ``kill -9``, OOM, a power cut) is recovered like a restart would recover it:
its runs and pending writes come back, and writes that need a credential wait for a matching token (the
daemon's own, or one a session of this daemon brings: the adopted outboxes share the adopter's pool).
Runs still open there are completed as ``cancelled``: the daemon their clients talked to is gone, so
nobody can write to them again. Once nothing is pending and no run is open, the instance is removed. If
the adopter stops first, the instance simply becomes an orphan again for the next daemon.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import trio

from ci_sidecar.delivery.outbox import Outbox
from ci_sidecar.state.instances import Instance, InstanceInfo, adopt_orphans, survey


class KeepsInstance(Protocol):
    """What adoption needs of a service keeping one instance (:class:`~.app.CoreService`)."""

    instance: Instance
    outbox: Outbox
    runs: Any
    options_role: str
    keep_instance: bool

    async def run(self, task_status: trio.TaskStatus[None] = ...) -> None: ...
    async def close(self) -> None: ...
    def drained(self) -> bool: ...

__all__ = ["Adoptions", "SCAN_INTERVAL_S"]

log = logging.getLogger("ci_sidecar.instances")

SCAN_INTERVAL_S = 30.0
_DRAIN_POLL_S = 0.2
#: an adopted instance whose writes all wait this long for a credential none of our sessions brings is let
#: go, and left alone for RELEASED_FOR_S, so that a daemon whose jobs have the token can take it
RELEASE_AFTER_S = 600.0
RELEASED_FOR_S = 3600.0
_SURVEY_TTL_S = 1.0


class Adoptions:
    """The instances this daemon adopted, and the task that looks for more."""

    def __init__(self, owner: KeepsInstance, make: Callable[[Instance], KeepsInstance]) -> None:
        self.owner = owner
        self._make = make
        self.adopted: dict[Path, KeepsInstance] = {}
        self.finished = 0  # adopted instances delivered and removed
        self._released: dict[Path, float] = {}  # let go (waiting for credentials) → when, monotonic
        #: (when, [(path, info)], the instance paths it was taken for)
        self._survey: tuple[float, list[tuple[Path, dict[str, Any]]], set[Path]] | None = None

    async def run(self, interval_s: float = SCAN_INTERVAL_S) -> None:
        """Adopt the orphans found now and every ``interval_s`` (until cancelled)."""
        async with trio.open_nursery() as nursery:
            while True:
                for inst in await trio.to_thread.run_sync(self._find):
                    nursery.start_soon(self._drain, inst)
                await trio.sleep(interval_s)

    def _find(self) -> list[Instance]:
        own = self.owner.instance
        now = time.monotonic()
        self._released = {p: t for p, t in self._released.items() if now - t < RELEASED_FOR_S}
        return adopt_orphans(own.root, skip={own.path, *self.adopted, *self._released})

    async def _drain(self, inst: Instance) -> None:
        try:
            service = self._make(inst)
        except Exception:
            # unreadable or from a newer version: leave it for a daemon that can read it
            log.exception("could not open the orphaned instance %s; leaving it", inst.path)
            inst.release()
            return
        self.adopted[inst.path] = service
        pool = self.owner.outbox.credentials
        service.outbox.credentials = pool
        pool.listeners.append(service.outbox.wake)
        inst.write_owner(self.owner.options_role, adopted_from=inst.previous)
        was = inst.previous.get("pid")
        log.info("adopted instance %s (left by pid %s)", inst.path, was or "?")
        delivered = False
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(service.run)
                closed = await service.runs.cancel_running(
                    f"cancelled: the daemon serving this run (pid {was or '?'}) stopped before it was finished; "
                    f"its writes were delivered by pid {os.getpid()}")
                if closed:
                    log.info("instance %s: %d open run(s) completed as cancelled", inst.path, closed)
                delivered = await self._wait_drained(service, inst.path)
                nursery.cancel_scope.cancel()
            if delivered:
                self.finished += 1
                log.info("instance %s delivered everything it held: removed", inst.path)
        except Exception:
            # e.g. a journal this version cannot read: the instance stays as it is, for a daemon that can
            log.exception("adopting instance %s failed; leaving it as it is", inst.path)
            self._released[inst.path] = time.monotonic()
        finally:
            pool.listeners.remove(service.outbox.wake)
            self.adopted.pop(inst.path, None)
            service.keep_instance = not delivered  # only an instance with nothing left in it is removed
            with trio.CancelScope(shield=True):
                await service.close()

    async def _wait_drained(self, service: KeepsInstance, path: Path) -> bool:
        """True once nothing is left; False when every write waits for a credential none of our sessions
        has brought for RELEASE_AFTER_S (then another daemon may take it)."""
        blocked_since: float | None = None
        while not service.drained():
            await trio.sleep(_DRAIN_POLL_S)
            if not service.outbox.only_waiting_for_credentials():
                blocked_since = None
            elif blocked_since is None:
                blocked_since = time.monotonic()
            elif time.monotonic() - blocked_since > RELEASE_AFTER_S:
                log.info("instance %s: its writes wait for a credential no session here has; leaving it to "
                         "another daemon", path)
                self._released[path] = time.monotonic()
                return False
        return True

    async def aclose(self) -> None:
        """Close every adopted instance (what is left in them stays for the next daemon)."""
        for service in list(self.adopted.values()):
            with trio.CancelScope(shield=True):
                await service.close()

    def infos(self) -> list[dict[str, Any]]:
        """Every instance under the root, this daemon's own and adopted ones with their pending writes."""
        own = self.owner.instance
        pending = {own.path: self.owner.outbox.depth()["pending"]}
        pending.update({path: service.outbox.depth()["pending"] for path, service in list(self.adopted.items())})
        now = time.monotonic()
        if self._survey is None or now - self._survey[0] > _SURVEY_TTL_S or pending.keys() != self._survey[2]:
            # a walk of the root's files: cached briefly, sidecar/status may be polled many times a second
            self._survey = (now, [(Path(d["path"]), d) for d in self._walk()], set(pending))
        out = []
        for path, d in self._survey[1]:
            d = dict(d)
            if path in pending:
                d["pending"] = pending[path]
            out.append(d)
        return out

    def _walk(self) -> list[dict[str, Any]]:
        own = self.owner.instance
        known = {own.path: InstanceInfo(name=own.name, path=str(own.path), state="live", pid=os.getpid(),
                                        mode=self.owner.options_role)}
        for path, service in list(self.adopted.items()):
            prev = service.instance.previous
            known[path] = InstanceInfo(name=path.name, path=str(path), state="adopted", pid=prev.get("pid"),
                                       mode=prev.get("mode"), adopted_by=os.getpid())
        return [info.as_dict() for info in survey(own.root, known=known)]
