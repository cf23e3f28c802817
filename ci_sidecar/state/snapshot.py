"""Snapshots of the caller's state, and the recovery and checkpoint procedures built on them.

A snapshot is the caller's encoded state (bytes) plus a sequence number ``N``: it reflects every
journal record in segments below ``N`` and none above. Files are ``<name>.<N>.snap``, written
atomically with a checksum. The procedures, and why a crash anywhere in them is harmless:

:func:`checkpoint`
    1. capture the state and :meth:`~.journal.Journal.rotate` with no await in between;
    2. commit the journal (creates segment ``N``; older segments complete);
    3. ``before_write`` hook (e.g. fsync per-run record files whose sizes the state refers to);
    4. write snapshot ``N`` atomically;
    5. delete segments and snapshots below ``N``.

    A crash before 4 completes leaves the previous snapshot and every segment after it: recovery
    is as if no checkpoint had started. After 4, snapshot ``N`` plus segments ``>= N`` are
    complete, and leftovers from 5 are merely ignored and deleted by the next checkpoint.

:func:`recover`
    newest snapshot whose checksum holds, then the journal from its sequence number. If that
    would skip a missing segment (only possible if files were lost), :class:`.journal.JournalGap`
    is raised instead of silently dropping acknowledged records.
"""

from __future__ import annotations

import logging
import os
import re
import struct
import zlib
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import msgspec
import trio

from ci_sidecar.atomic import atomic_write_bytes, ensure_private_dir, fsync_dir, remove_stale_temps

from .journal import Journal, ReplayReport

__all__ = ["Recovery", "Snapshot", "SnapshotStore", "checkpoint", "recover"]

log = logging.getLogger(__name__)

_MAGIC = b"CISSNAP\x01"
_HEADER = struct.Struct("<8sQQI")  # magic, seq, length, crc32(data)


class Snapshot(msgspec.Struct, frozen=True):
    """One snapshot: the caller's state bytes covering journal segments below ``seq``."""

    seq: int
    data: bytes


class Recovery(msgspec.Struct, kw_only=True):
    """What :func:`recover` found: the snapshot state (``None`` if none) and the records after it.

    ``records`` is a lazy iterator over journal records in order; ``report`` fills in as it is consumed.
    """

    state: bytes | None
    seq: int
    records: Iterator[bytes]
    report: ReplayReport


class SnapshotStore:
    """Snapshot files ``<name>.<seq>.snap`` in a private state directory. Blocking methods."""

    def __init__(self, directory: str | os.PathLike[str], name: str) -> None:
        self.directory = ensure_private_dir(directory)
        self.name = name
        self._pattern = re.compile(rf"^{re.escape(name)}\.(\d{{16}})\.snap$")
        remove_stale_temps(self.directory, name)

    def _path(self, seq: int) -> Path:
        return self.directory / f"{self.name}.{seq:016d}.snap"

    def sequences(self) -> list[int]:
        """Sequence numbers of the snapshot files present, ascending."""
        return sorted(int(m.group(1)) for e in os.scandir(self.directory) if (m := self._pattern.match(e.name)))

    def load(self, seq: int) -> Snapshot | None:
        """Read and verify snapshot ``seq``; ``None`` (with a warning) if it is damaged."""
        path = self._path(seq)
        raw = path.read_bytes()
        if len(raw) >= _HEADER.size:
            magic, hseq, length, crc = _HEADER.unpack_from(raw)
            data = raw[_HEADER.size :]
            if magic == _MAGIC and hseq == seq and length == len(data) and zlib.crc32(data) == crc:
                return Snapshot(seq=seq, data=data)
        log.warning("snapshot %s is damaged (%d bytes); ignoring it", path, len(raw))
        return None

    def latest(self) -> Snapshot | None:
        """The newest snapshot that verifies, or ``None``."""
        for seq in reversed(self.sequences()):
            snap = self.load(seq)
            if snap is not None:
                return snap
        return None

    def write(self, seq: int, data: bytes) -> None:
        """Write snapshot ``seq`` atomically and durably (``0600``)."""
        atomic_write_bytes(self._path(seq), _HEADER.pack(_MAGIC, seq, len(data), zlib.crc32(data)) + data)

    def delete_before(self, seq: int) -> list[int]:
        """Delete snapshots older than ``seq``; returns the deleted numbers."""
        gone = [s for s in self.sequences() if s < seq]
        for s in gone:
            try:
                os.unlink(self._path(s))
            except FileNotFoundError:
                pass
        if gone:
            fsync_dir(self.directory)
        return gone


def recover(journal: Journal, snapshots: SnapshotStore) -> Recovery:
    """Find the newest valid snapshot and the journal records written after it.

    Call right after :meth:`Journal.open`, before appending. Apply ``state`` first, then every
    item of ``records`` in order.

    Raises:
        JournalGap: (while iterating ``records``) a segment the snapshot does not cover is missing.
    """
    snap = snapshots.latest()
    seq = snap.seq if snap is not None else 0
    report = ReplayReport()
    return Recovery(
        state=snap.data if snap is not None else None,
        seq=seq,
        records=journal.replay(seq, report),
        report=report,
    )


async def checkpoint(
    journal: Journal,
    snapshots: SnapshotStore,
    capture: Callable[[], bytes],
    *,
    before_write: Callable[[], Awaitable[None]] | None = None,
) -> int:
    """Snapshot the caller's state and drop the journal segments it covers.

    Run one checkpoint at a time (from one task). ``capture`` is called synchronously together with
    the journal rotation, so the state it returns reflects exactly the records appended so far.

    Args:
        journal: the journal whose records the state reflects.
        snapshots: where the snapshot goes.
        capture: returns the encoded state; must not await (it is a plain function).
        before_write: awaited after the journal commit and before the snapshot is written, e.g. to
            fsync files whose sizes ``capture`` recorded.

    Returns:
        The snapshot's sequence number.

    Cancellation: safe at any point; a checkpoint cut short leaves the previous snapshot valid
    and every segment it needs in place.
    """
    data = capture()
    seq = journal.rotate()
    await journal.commit()
    if before_write is not None:
        await before_write()
    await trio.to_thread.run_sync(snapshots.write, seq, data)
    await trio.to_thread.run_sync(_prune, journal, snapshots, seq)
    return seq


def _prune(journal: Journal, snapshots: SnapshotStore, seq: int) -> None:
    journal.delete_segments_before(seq)
    snapshots.delete_before(seq)
