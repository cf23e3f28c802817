"""Durable state of the daemon: one journal, snapshots, and one record file per run.

Acknowledged means committed: a handler answers only after :meth:`StateStore.commit` returned, so
``kill -9`` never loses an acknowledged write. Per-test records are appended to the run's record file
without fsync; the journal carries them too until a checkpoint has fsynced the record files and
written a snapshot saying how much of each file is valid.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ci_sidecar.protocol.errors import StateError
from ci_sidecar.state import Journal, RecordStore, SnapshotStore, checkpoint, ensure_private_dir, recover

from .model import StateImage, decode_image, decode_record, encode_image, encode_record

__all__ = ["StateStore", "StateLocked"]

log = logging.getLogger("ci_sidecar.state")

CHECKPOINT_BYTES = 64 * 1024 * 1024
#: record files kept open at once; older ones are parked (descriptor closed, reopened on the next write)
MAX_OPEN_RECORD_FILES = 64
CHECKPOINT_INTERVAL_S = 300.0


class StateLocked(StateError):
    """Another daemon uses this state directory."""


class StateStore:
    """The journal, the snapshots and the per-run record files under one state directory."""

    def __init__(self, directory: str | os.PathLike[str], *, lock_fd: int | None = None) -> None:
        """``lock_fd``: the directory's lock, already held by the caller (an instance under a state
        root, :mod:`ci_sidecar.state.instances`), who also releases it; else the store takes it."""
        # The state dir itself keeps the mode it was given (systemd's StateDirectoryMode=0750 lets
        # the CI group reach <state>/output in system mode); everything private lives in a 0700
        # subdirectory: the journal, snapshots, record files and the artifact blobs.
        root = Path(directory)
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.root = root
        self.dir = ensure_private_dir(root / "private")
        self._own_lock = lock_fd is None
        self._lock_fd = self._lock() if lock_fd is None else lock_fd
        self.runs_dir = ensure_private_dir(self.dir / "runs")
        self.journal = Journal.open(self.dir, "journal")
        self.snapshots = SnapshotStore(self.dir, "state")
        self._records: dict[str, RecordStore] = {}
        #: stores allowed to keep their descriptor, least recently used first
        self._active: OrderedDict[str, None] = OrderedDict()
        self._last_checkpoint = time.monotonic()
        self._checkpointing = False

    def _lock(self) -> int:
        fd = os.open(self.dir / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise StateLocked(f"state directory {self.dir} is in use by another ci-sidecar "
                              "(give each daemon its own --state-dir)") from None
        return fd

    # --- recovery -------------------------------------------------------------------------------

    def recover(self) -> tuple[StateImage | None, Iterator[Any]]:
        """The snapshot image (if any) and the journal records after it, decoded lazily."""
        rec = recover(self.journal, self.snapshots)
        image = decode_image(rec.state) if rec.state is not None else None

        def records() -> Iterator[Any]:
            for raw in rec.records:
                yield decode_record(raw)
            if rec.report.skipped_bytes:
                log.warning("journal: skipped %d byte(s) of a torn or corrupt tail", rec.report.skipped_bytes)

        return image, records()

    def record_file(self, run_id: str) -> Path:
        return self.runs_dir / f"{run_id}.rec"

    def open_records(self, run_id: str, valid_size: int | None) -> RecordStore:
        store = RecordStore.open(self.record_file(run_id), valid_size=valid_size)
        self._records[run_id] = store
        self._activate(run_id, store)
        return store

    def records(self, run_id: str) -> RecordStore:
        """The run's record store, for reading (a parked one stays parked)."""
        store = self._records.get(run_id)
        if store is None:
            return self.open_records(run_id, None)
        return store

    def writer(self, run_id: str) -> RecordStore:
        """The run's record store, about to be written to: it keeps its descriptor while it is
        among the MAX_OPEN_RECORD_FILES most recently written."""
        store = self.records(run_id)
        self._activate(run_id, store)
        return store

    def park_records(self, run_id: str) -> None:
        """The run is not written to any more (finished): close its record file's descriptor."""
        self._active.pop(run_id, None)
        store = self._records.get(run_id)
        if store is not None:
            store.park()

    def _activate(self, run_id: str, store: RecordStore) -> None:
        """Mark the store most recently used and park the least recently used beyond
        MAX_OPEN_RECORD_FILES: the number of retained runs never decides how many descriptors the
        daemon needs."""
        if run_id in self._active:
            self._active.move_to_end(run_id)
            return
        store.unpark()
        self._active[run_id] = None
        while len(self._active) > MAX_OPEN_RECORD_FILES:
            old, _ = self._active.popitem(last=False)
            old_store = self._records.get(old)
            if old_store is not None:
                old_store.park()

    def drop_records(self, run_id: str) -> None:
        self._active.pop(run_id, None)
        store = self._records.pop(run_id, None)
        if store is not None:
            store.remove()
        else:
            try:
                os.unlink(self.record_file(run_id))
            except FileNotFoundError:
                pass

    # --- writing --------------------------------------------------------------------------------

    def append(self, record: Any) -> None:
        """Buffer a journal record (durable after :meth:`commit`)."""
        self.journal.append(encode_record(record))

    async def commit(self) -> None:
        """Make every appended record durable (group commit: one fsync for all waiting writers)."""
        await self.journal.commit()

    def wants_checkpoint(self) -> bool:
        if self._checkpointing:
            return False
        return self.journal.size > CHECKPOINT_BYTES or (
            time.monotonic() - self._last_checkpoint > CHECKPOINT_INTERVAL_S and self.journal.size > 0
        )

    async def checkpoint(self, capture: Callable[[], StateImage]) -> None:
        """Snapshot the state and drop the journal segments it covers."""
        if self._checkpointing:
            return
        self._checkpointing = True
        try:
            stores = list(self._records.values())

            async def fsync_records() -> None:
                for store in stores:
                    await store.commit(fsync=True)

            await checkpoint(self.journal, self.snapshots, lambda: encode_image(capture()),
                             before_write=fsync_records)
            self._last_checkpoint = time.monotonic()
        finally:
            self._checkpointing = False

    async def aclose(self) -> None:
        for store in self._records.values():
            try:
                await store.commit(fsync=True)
                store.close()
            except Exception:
                log.exception("closing record file")
        self._records.clear()
        await self.journal.aclose()
        if self._own_lock:
            os.close(self._lock_fd)

