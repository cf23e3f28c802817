"""A per-run file of per-test records, so a run's memory stays flat however many tests it reports.

The service keeps counts, failures and the slowest tests in memory and streams every test record
(bytes it encodes itself) to the run's own file; report rendering iterates them back in order with
bounded memory. Same framing as the journal (:mod:`.segments`), kind ``CISRECS``.

Why a file per run rather than reading records back from the journal: the journal is compacted
(segments deleted after a snapshot) and interleaves every run, while a report needs one run's tests
for as long as the run is retained; deleting a run is then one ``unlink``.

Durability, recommended pattern (one fsync per request batch, whatever the number of runs):

* ``report_results``: append the batch to the **journal** (one record per batch) and commit it
  before acknowledging; also append each test record to the run's :class:`RecordStore` without
  fsync (``commit(fsync=False)`` or let it buffer).
* checkpoint: in ``capture`` record each store's :attr:`RecordStore.size` in the state; in
  ``before_write`` call ``commit()`` (with fsync) on those stores; then the snapshot is written.
* recovery: reopen each store with ``valid_size`` from the snapshot (anything past it is cut off)
  and the stores of runs the snapshot does not know with ``valid_size=RecordStore.EMPTY``; then
  replay the journal, which re-appends every batch that came after the snapshot.

A store may also be used on its own as a durable log (``commit()`` fsyncs); then
``RecordStore.open(path)`` finds the valid end itself and cuts a torn tail.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import trio

from ci_sidecar.atomic import ensure_private_dir, remove_stale_temps

from .segments import FILE_HEADER, MAX_RECORD, RECORD_HEADER, AppendFile, Scan, check_payload, frame_many

__all__ = ["RecordStore"]

log = logging.getLogger(__name__)

KIND = b"CISRECS\x01"


class RecordStore:
    """Append-only records of one run in one file, iterated back in append order.

    Use :meth:`open`. ``append`` buffers; ``commit`` writes the buffer (and fsyncs unless told not
    to). One writer per file; the blocking methods (``*_sync``, iteration) belong in
    ``trio.to_thread.run_sync`` when called from the event loop with a lot to do.

    Resource handling: :meth:`park` closes the file descriptor of a store that is not written to
    for a while (a finished run); the store stays usable and reopens its file for the next write,
    and closes it again after that write while it stays parked. A daemon that retains thousands of
    runs thereby holds descriptors only for the few being written.
    """

    #: ``valid_size`` of a store with no records (just the file header).
    EMPTY = FILE_HEADER.size

    def __init__(self, file: AppendFile, records: int | None) -> None:
        self._file: AppendFile | None = file
        self._path = file.path
        #: bytes in the file (header included), kept while the descriptor is closed
        self._written = file.size
        self._unsynced = False  # written since the last fsync
        self._parked = False
        self._pending: list[bytes] = []
        # The logical end offset after every append, maintained in the caller's thread only, so a
        # snapshot capturing it never sees a write half-accounted in the worker thread.
        self._size = file.size
        self._records = records
        self._lock = trio.Lock()
        self._broken: BaseException | None = None

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, valid_size: int | None = None) -> RecordStore:
        """Open or create the record file at ``path`` (its directory is made ``0700``, the file ``0600``).

        Args:
            path: the file.
            valid_size: the size the caller knows to be complete (from a snapshot); the file is cut
                to it. ``None`` scans the file and cuts a torn tail (with a warning).
        """
        p = Path(path)
        ensure_private_dir(p.parent)
        remove_stale_temps(p.parent, p.name)
        if not p.exists():
            return cls(AppendFile.create(p, KIND, 0), 0)
        records: int | None = None
        if valid_size is None:
            scan = Scan(p, KIND)
            records = sum(1 for _ in scan)
            valid_size = scan.valid_end
            if scan.problem is not None:
                log.warning("record file %s: keeping %d record(s), cutting at offset %d", p, records, valid_size)
            if valid_size < FILE_HEADER.size:
                # No usable header: start the file afresh rather than append to something foreign.
                return cls(AppendFile.create(p, KIND, 0), 0)
        elif valid_size < FILE_HEADER.size:
            raise ValueError(f"valid_size {valid_size} is smaller than the file header")
        return cls(AppendFile.open(p, truncate_to=valid_size), records)

    @property
    def path(self) -> Path:
        """The record file."""
        return self._path

    @property
    def is_open(self) -> bool:
        """Whether the store holds a file descriptor now."""
        return self._file is not None

    def park(self) -> None:
        """Close the file descriptor until the next write (which closes it again afterwards).

        A write in progress in a worker thread keeps its descriptor; it is closed when it ends.
        """
        self._parked = True
        if not self._lock.locked():
            self._close_file()

    def unpark(self) -> None:
        """Keep the file open again after the next write (the store is being written to)."""
        self._parked = False

    def _close_file(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    @property
    def size(self) -> int:
        """File size after every append so far is written: the offset to keep in a snapshot."""
        return self._size

    @property
    def records(self) -> int | None:
        """Records in the store, if known (``None`` after opening with ``valid_size``)."""
        return self._records

    def append(self, payload: bytes) -> None:
        """Buffer one record (bytes the caller encoded)."""
        if payload.__class__ is not bytes or len(payload) > MAX_RECORD:
            payload = check_payload(payload)
        self._pending.append(payload)
        self._size += RECORD_HEADER.size + len(payload)
        if self._records is not None:
            self._records += 1

    def append_many(self, payloads: Iterable[bytes]) -> None:
        """Buffer several records."""
        for payload in payloads:
            self.append(payload)

    def commit_sync(self, *, fsync: bool = True) -> None:
        """Write buffered records to the file, then fsync unless ``fsync=False``. Blocking."""
        try:
            self._write(self._take(), fsync)
        finally:
            if self._parked:
                self._close_file()

    async def commit(self, *, fsync: bool = True) -> None:
        """Write buffered records (and fsync unless ``fsync=False``) in a worker thread.

        Cancellation: a write handed to the thread completes; records appended meanwhile wait for
        the next commit.
        """
        async with self._lock:
            try:
                # Taken here, in the event loop's thread, so appends racing the worker are never lost.
                pending = self._take()
                if pending or (fsync and self._unsynced):  # else a parked store's file is not even opened
                    await trio.to_thread.run_sync(self._write, pending, fsync)
            finally:
                # park() found the lock held (perhaps while we waited to take it): closing is ours
                if self._parked:
                    self._close_file()

    def _take(self) -> list[bytes]:
        if self._broken is not None:
            raise OSError(f"record file {self.path} failed earlier; reopen it") from self._broken
        pending, self._pending = self._pending, []
        return pending

    def _write(self, pending: list[bytes], fsync: bool) -> None:
        if not pending and not (fsync and self._unsynced):
            return
        try:
            file = self._file
            if file is None:
                file = self._file = AppendFile.open(self._path)
            if pending:
                file.write(frame_many(pending))
                self._written = file.size
                self._unsynced = True
            if fsync:
                file.sync()
                self._unsynced = False
        except BaseException as exc:
            # The tail may hold a partial record; appending after it would look like corruption.
            # Reopening (with a scan, or the snapshot's valid_size) cuts it off.
            self._broken = exc
            raise

    def iter_records(self) -> Iterator[bytes]:
        """Yield the records written to the file so far, in order (commit first to include buffered ones).

        Reads in chunks: memory stays bounded by one chunk plus one record. Appends made while
        iterating are not included.
        """
        return iter(Scan(self._path, KIND, end=self._written))

    def close(self) -> None:
        """Write what is buffered (no fsync) and close the file."""
        try:
            if self._pending:
                self.commit_sync(fsync=False)
        finally:
            self._close_file()

    def remove(self) -> None:
        """Close and delete the record file (run retention)."""
        self._pending.clear()
        self._close_file()
        try:
            os.unlink(self._path)
        except FileNotFoundError:
            pass
