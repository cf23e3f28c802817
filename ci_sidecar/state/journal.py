"""An append-only, segmented, crash-safe log of opaque records with group commit.

Records are bytes (callers encode them, e.g. msgspec msgpack of a tagged union) framed as described
in :mod:`.segments`. ``append`` only adds to an in-memory buffer; ``commit`` writes the buffer and
fsyncs once for everything appended so far, however many tasks are waiting (group commit). A caller
acknowledges a request only after its ``commit`` returned: from then on ``kill -9`` or a power loss
cannot lose the record.

Segments are files ``<name>.<seq>.wal`` in the state directory. Opening a journal always starts a
new segment, so a torn tail left by a crash is never followed by new records in the same file (it
stays a *tail*, skipped with a warning on replay). :meth:`Journal.rotate` starts a new segment; a
snapshot with sequence number ``N`` covers every segment below ``N`` (see :mod:`.snapshot`).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import msgspec
import trio

from ci_sidecar.atomic import ensure_private_dir, fsync_dir, remove_stale_temps
from ci_sidecar.protocol.errors import StateError

from .segments import FILE_HEADER, MAX_RECORD, RECORD_HEADER, AppendFile, Scan, check_payload, frame_many

__all__ = ["Journal", "JournalBroken", "JournalGap", "ReplayReport", "StateError"]

log = logging.getLogger(__name__)

KIND = b"CISJRNL\x01"
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")




class JournalBroken(StateError):
    """A write or fsync failed; the journal refuses further use because the file tail is unknown.

    Reopen the journal (a new segment is started) to continue; nothing that was committed is lost.
    """


class JournalGap(StateError):
    """Segments needed for recovery are missing: replaying would silently lose acknowledged records."""


class ReplayReport(msgspec.Struct, kw_only=True):
    """What a replay read: segments, records, and what it had to skip (filled in as it goes)."""

    segments: list[int] = []
    records: int = 0
    torn: int = 0
    corrupt: int = 0
    skipped_bytes: int = 0


def _segment_name(name: str, seq: int) -> str:
    return f"{name}.{seq:016d}.wal"


def list_segments(directory: Path, name: str) -> list[int]:
    """Sequence numbers of ``name``'s journal segments in ``directory``, ascending."""
    pattern = re.compile(rf"^{re.escape(name)}\.(\d{{16}})\.wal$")
    seqs = [int(m.group(1)) for e in os.scandir(directory) if (m := pattern.match(e.name))]
    return sorted(seqs)


class Journal:
    """A segmented append-only log with buffered appends and group commit.

    Use :meth:`open`, never the constructor. One writer per ``(directory, name)``: the caller owns
    the state directory (the daemon holds a lock on it).

    Concurrency: ``append`` and ``rotate`` are synchronous and cheap; ``commit`` may be awaited by
    many tasks at once and performs one write + one fsync for all of them. ``commit_sync`` is for
    code that runs outside trio or before any ``commit`` task exists (startup, shutdown, benchmarks).
    """

    def __init__(self, directory: Path, name: str, seq: int, file: AppendFile, *, sync: bool) -> None:
        self.directory = directory
        self.name = name
        self._sync = sync
        self._seq = seq  # segment that appends go to
        # Appends only collect payloads; framing (header + crc32) happens in the commit's worker
        # thread, which keeps ``append`` at a list append.
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._sealed: list[tuple[int, list[bytes]]] = []  # rotated away, not yet written
        self._file = file  # segment being written on disk
        self._file_seq = seq
        self._appended = 0  # records appended since open, counted at take time
        self._durable = 0  # records written (and fsynced when sync=True)
        self._lock = trio.Lock()
        self._broken: BaseException | None = None

    @classmethod
    def open(cls, directory: str | os.PathLike[str], name: str, *, sync: bool = True) -> Journal:
        """Open (creating if needed) journal ``name`` in ``directory`` and start a new segment.

        Args:
            directory: the state directory; created ``0700`` if missing.
            name: letters, digits, ``_`` and ``-``; names the segment files.
            sync: fsync on every commit (default). ``False`` only writes to the OS page cache,
                which survives ``kill -9`` but not a power loss.
        """
        if not _NAME.match(name):
            raise ValueError(f"invalid journal name {name!r}")
        path = ensure_private_dir(directory)
        remove_stale_temps(path, name)
        existing = list_segments(path, name)
        seq = existing[-1] + 1 if existing else 1
        file = AppendFile.create(path / _segment_name(name, seq), KIND, seq)
        return cls(path, name, seq, file, sync=sync)

    # --- writing ---------------------------------------------------------------------------------

    @property
    def seq(self) -> int:
        """Sequence number of the segment new appends go to."""
        return self._seq

    @property
    def size(self) -> int:
        """Bytes in the current segment, counting appends not yet committed (for rotation policies)."""
        framed = self._pending_bytes + RECORD_HEADER.size * len(self._pending)
        if self._file_seq == self._seq:
            return self._file.size + framed
        return FILE_HEADER.size + framed

    @property
    def pending(self) -> int:
        """Records appended but not yet committed."""
        return self._appended + len(self._pending) - self._durable

    def append(self, payload: bytes) -> None:
        """Buffer one record. It is durable once a later :meth:`commit` returns.

        Raises:
            JournalBroken: an earlier write failed.
            TypeError, ValueError: ``payload`` is not bytes-like or exceeds ``MAX_RECORD``.
        """
        if payload.__class__ is not bytes or len(payload) > MAX_RECORD:
            payload = check_payload(payload)
        if self._broken is not None:
            raise JournalBroken(f"journal {self.name} is broken") from self._broken
        self._pending.append(payload)
        self._pending_bytes += len(payload)

    def append_many(self, payloads: Iterable[bytes]) -> None:
        """Buffer several records (same as calling :meth:`append` for each)."""
        for payload in payloads:
            self.append(payload)

    def rotate(self) -> int:
        """Start a new segment for later appends and return its sequence number.

        Synchronous so that a caller can capture its in-memory state and call ``rotate`` with no
        checkpoint in between: the state then reflects exactly the segments below the returned
        number. The new segment file is created by the next commit.
        """
        self._appended += len(self._pending)
        self._sealed.append((self._seq, self._pending))
        self._pending = []
        self._pending_bytes = 0
        self._seq += 1
        return self._seq

    async def commit(self) -> None:
        """Write and fsync every record appended before this call (one fsync for all waiting tasks).

        Raises:
            JournalBroken: a write failed, now or earlier.

        Cancellation: a write already handed to the worker thread completes and is accounted for;
        if cancelled while waiting for the lock, nothing was written for this caller and the records
        stay buffered for the next commit.
        """
        target = self._appended + len(self._pending)
        if self._durable >= target and not self._sealed and self._broken is None:
            await trio.lowlevel.checkpoint()
            return
        async with self._lock:
            # Whoever held the lock before us may have written our records already.
            if self._durable >= target and not self._sealed and self._broken is None:
                return
            work, count = self._take()
            await trio.to_thread.run_sync(self._write, work)
            self._durable = count

    def commit_sync(self) -> None:
        """Blocking :meth:`commit`, for code outside trio or with no concurrent async commit."""
        if self._lock.locked():
            raise RuntimeError("commit_sync while an async commit is running")
        work, count = self._take()
        self._write(work)
        self._durable = count

    def _take(self) -> tuple[list[tuple[int, list[bytes]]], int]:
        if self._broken is not None:
            raise JournalBroken(f"journal {self.name} is broken") from self._broken
        self._appended += len(self._pending)
        work = [*self._sealed, (self._seq, self._pending)]
        self._sealed = []
        self._pending = []
        self._pending_bytes = 0
        return work, self._appended

    def _write(self, work: list[tuple[int, list[bytes]]]) -> None:
        """Worker-thread side of a commit: frame and write chunks in order, switching segments, fsync."""
        try:
            for seq, payloads in work:
                if seq != self._file_seq:
                    if self._sync:
                        self._file.sync()
                    self._file.close()
                    self._file = AppendFile.create(self.directory / _segment_name(self.name, seq), KIND, seq)
                    self._file_seq = seq
                if payloads:
                    self._file.write(frame_many(payloads))
            if self._sync:
                self._file.sync()
        except BaseException as exc:
            # The file tail is now unknown: appending after a partial record would turn a torn tail
            # into mid-file corruption, so refuse everything until the journal is reopened.
            self._broken = exc
            log.error("journal %s: write failed, journal disabled until reopened: %r", self.name, exc)
            raise JournalBroken(f"journal {self.name}: write failed") from exc

    # --- reading and compaction --------------------------------------------------------------------

    def segments(self) -> list[int]:
        """Sequence numbers of the segments on disk, ascending."""
        return list_segments(self.directory, self.name)

    def replay(self, from_seq: int = 0, report: ReplayReport | None = None) -> Iterator[bytes]:
        """Yield every record on disk in segments ``>= from_seq``, in append order.

        Each segment is read until its end or its first bad record (a torn tail or corruption is
        logged as a warning and counted in ``report``); later segments are still read. Call it at
        startup before appending: records still buffered in memory are not on disk.

        Raises:
            JournalGap: a segment between ``from_seq`` and the newest one is missing.
        """
        report = report if report is not None else ReplayReport()
        seqs = [s for s in self.segments() if s >= from_seq]
        expected = from_seq if from_seq > 0 else (seqs[0] if seqs else 0)
        for seq in seqs:
            if seq != expected:
                raise JournalGap(f"journal {self.name}: segment {expected} is missing (found {seq})")
            expected = seq + 1
        if from_seq > 0 and not seqs:
            raise JournalGap(f"journal {self.name}: no segment at or after {from_seq}")
        for seq in seqs:
            scan = Scan(self.directory / _segment_name(self.name, seq), KIND)
            yield from scan
            report.segments.append(seq)
            report.records += scan.records
            report.skipped_bytes += scan.skipped_bytes
            if scan.problem == "torn":
                report.torn += 1
            elif scan.problem == "corrupt":
                report.corrupt += 1

    def delete_segments_before(self, seq: int) -> list[int]:
        """Delete segments below ``seq`` (covered by a durable snapshot); returns the deleted numbers."""
        gone = [s for s in self.segments() if s < seq and s != self._file_seq]
        for s in gone:
            try:
                os.unlink(self.directory / _segment_name(self.name, s))
            except FileNotFoundError:
                pass
        if gone:
            fsync_dir(self.directory)
        return gone

    def close(self) -> None:
        """Commit what is buffered (blocking) and close the segment file."""
        try:
            if self._broken is None and (self.pending or self._sealed):
                self.commit_sync()
        finally:
            self._file.close()

    async def aclose(self) -> None:
        """Commit what is buffered and close the segment file.

        Cancellation: the file is closed even if the final commit is cancelled.
        """
        try:
            if self._broken is None and (self.pending or self._sealed):
                await self.commit()
        finally:
            self._file.close()
