"""The on-disk format shared by journal segments and per-run record files: framing, scanning, appending.

A log file is a 16-byte file header (8-byte kind magic, u64 sequence number) followed by records::

    u32 RECORD_MAGIC | u32 length | u32 crc32(payload, seed=length) | payload (length bytes)

all little-endian. The crc is seeded with the length so a garbled length cannot pass, and the
per-record magic means a zero-filled region (what some filesystems expose after a crash that extended
the file but lost its data) is never read as a record.

Scanning stops at the first record that does not check out and classifies it:

* **torn tail**: the bad bytes run to the end of the file (a partial header or payload, a crc
  mismatch in the very last record, or trailing zeros). This is what a crash mid-write leaves;
  nothing after it was ever acknowledged.
* **corruption**: a bad record followed by more data. Resynchronising on the next magic could
  misread payload bytes as a header and replay a record that never existed, so the rest of that
  file is skipped instead; the warning says how many bytes were lost.
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Literal

from ci_sidecar.atomic import _write_all, atomic_write_bytes

__all__ = [
    "FILE_HEADER",
    "MAX_RECORD",
    "RECORD_HEADER",
    "RECORD_MAGIC",
    "AppendFile",
    "Scan",
    "check_payload",
    "frame_many",
    "read_file_header",
]

log = logging.getLogger(__name__)

RECORD_MAGIC = 0xC15EA11C
RECORD_HEADER = struct.Struct("<III")
FILE_HEADER = struct.Struct("<8sQ")
#: Largest payload accepted; a bigger length field can only be corruption.
MAX_RECORD = 256 * 1024 * 1024

_CHUNK = 4 * 1024 * 1024

Problem = Literal["torn", "corrupt"]


def frame_many(payloads: list[bytes]) -> bytes:
    """The on-disk bytes of several records, in order (one tight loop: framing is the hot path)."""
    pack, crc32, magic = RECORD_HEADER.pack, zlib.crc32, RECORD_MAGIC
    return b"".join([pack(magic, len(p), crc32(p, len(p))) + p for p in payloads])


def check_payload(payload: bytes | bytearray | memoryview) -> bytes:
    """``payload`` as immutable bytes (a bytearray could change before it is written), size-checked."""
    if payload.__class__ is not bytes:
        payload = bytes(payload)  # raises TypeError for str: records are bytes the caller encoded
    if len(payload) > MAX_RECORD:
        raise ValueError(f"record of {len(payload)} bytes exceeds {MAX_RECORD}")
    return payload  # type: ignore[return-value]


def read_file_header(path: Path, kind: bytes) -> int | None:
    """The sequence number in ``path``'s file header, or ``None`` if the header is missing or of another kind."""
    with open(path, "rb") as f:
        head = f.read(FILE_HEADER.size)
    if len(head) < FILE_HEADER.size:
        return None
    magic, seq = FILE_HEADER.unpack(head)
    return seq if magic == kind else None


class Scan:
    """Iterate the record payloads of one log file, stopping (with a warning) at a torn tail or corruption.

    After iteration, :attr:`valid_end` is the offset just past the last good record, :attr:`records`
    how many were yielded and :attr:`problem` what stopped the scan (``None`` at a clean end).
    Memory stays bounded by the read chunk size plus one record, whatever the file size.

    Args:
        path: the file.
        kind: the expected 8-byte file magic.
        start: offset of the first record to read (defaults to just after the file header).
        end: read no further than this offset (bytes a concurrent writer adds later are ignored).
    """

    def __init__(
        self, path: str | os.PathLike[str], kind: bytes, start: int | None = None, end: int | None = None
    ) -> None:
        self.path = Path(path)
        self.kind = kind
        self.start = FILE_HEADER.size if start is None else start
        self.end = end
        self.valid_end = self.start
        self.records = 0
        self.problem: Problem | None = None
        self.skipped_bytes = 0

    def __iter__(self) -> Iterator[bytes]:
        unpack_from = RECORD_HEADER.unpack_from
        crc32 = zlib.crc32
        hsize = RECORD_HEADER.size
        with open(self.path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if self.end is not None:
                size = min(size, self.end)
            if self.start == FILE_HEADER.size and f.read(FILE_HEADER.size)[:8] != self.kind:
                self.valid_end = 0
                self._stop(size, 0, "corrupt", "missing or foreign file header")
                return
            f.seek(self.start)
            buf = b""
            pos = 0  # offset in buf of the next record
            base = self.start  # file offset of buf[0]
            eof = False
            while True:
                avail = len(buf) - pos
                need = hsize
                if avail >= hsize:
                    magic, length, crc = unpack_from(buf, pos)
                    if magic != RECORD_MAGIC or length > MAX_RECORD:
                        break
                    need = hsize + length
                    if avail >= need:
                        end = pos + need
                        payload = buf[pos + hsize : end]
                        if crc32(payload, length) != crc:
                            break
                        pos = end
                        self.valid_end = base + end
                        self.records += 1
                        yield payload
                        continue
                if eof:
                    break
                more = f.read(min(max(_CHUNK, need - avail), max(0, size - base - len(buf))))
                eof = not more
                buf = buf[pos:] + more
                base += pos
                pos = 0
            if self.valid_end < size:
                self._classify(f, size)

    def _classify(self, f: BinaryIO, size: int) -> None:
        """Decide whether the bad bytes at :attr:`valid_end` are a torn tail or corruption, and log it."""
        at = self.valid_end
        f.seek(at)
        head = f.read(min(RECORD_HEADER.size, size - at))
        if len(head) < RECORD_HEADER.size:
            return self._stop(size, at, "torn", "partial record header")
        magic, length, _ = RECORD_HEADER.unpack(head)
        if magic == RECORD_MAGIC and length <= MAX_RECORD:
            end = at + RECORD_HEADER.size + length
            if end > size:
                return self._stop(size, at, "torn", "partial record payload")
            if end == size:
                return self._stop(size, at, "torn", "checksum mismatch in the last record")
            return self._stop(size, at, "corrupt", "checksum mismatch")
        if self._zeros_to_end(f, at, size):
            return self._stop(size, at, "torn", "zero-filled tail")
        return self._stop(size, at, "corrupt", "bad record header")

    @staticmethod
    def _zeros_to_end(f: BinaryIO, at: int, size: int) -> bool:
        f.seek(at)
        while at < size and (chunk := f.read(min(_CHUNK, size - at))):
            if chunk.count(0) != len(chunk):
                return False
            at += len(chunk)
        return True

    def _stop(self, size: int, at: int, problem: Problem, why: str) -> None:
        self.problem = problem
        self.skipped_bytes = size - at
        if problem == "torn":
            log.warning("%s: torn tail at offset %d (%s): skipped %d byte(s) after %d good record(s)",
                        self.path, at, why, self.skipped_bytes, self.records)
        else:
            log.warning("%s: corruption at offset %d (%s): skipped the remaining %d byte(s) of this file "
                        "after %d good record(s)", self.path, at, why, self.skipped_bytes, self.records)


class AppendFile:
    """One log file open for appending: raw writes and an fdatasync, nothing buffered here.

    Blocking; callers in trio run these methods through ``trio.to_thread.run_sync``.
    """

    def __init__(self, path: Path, fd: int, size: int) -> None:
        self.path = path
        self._fd = fd
        #: Bytes in the file (header included).
        self.size = size

    @classmethod
    def create(cls, path: Path, kind: bytes, seq: int) -> AppendFile:
        """Create ``path`` with its file header atomically (never a half-written header), ``0600``."""
        atomic_write_bytes(path, FILE_HEADER.pack(kind, seq))
        return cls.open(path)

    @classmethod
    def open(cls, path: Path, truncate_to: int | None = None) -> AppendFile:
        """Open an existing log file for appending, first cutting it to ``truncate_to`` bytes if given."""
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        try:
            if truncate_to is not None and os.fstat(fd).st_size != truncate_to:
                os.ftruncate(fd, truncate_to)
                os.fsync(fd)
            size = os.fstat(fd).st_size
        except BaseException:
            os.close(fd)
            raise
        return cls(path, fd, size)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append ``data`` to the file (into the OS page cache: survives ``kill -9``, not a power loss)."""
        _write_all(self._fd, data)
        self.size += len(data)

    def sync(self) -> None:
        """Make everything written so far durable (``fdatasync``: the size change is included)."""
        os.fdatasync(self._fd)

    def close(self) -> None:
        """Close the file descriptor (idempotent)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
