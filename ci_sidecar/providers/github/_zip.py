"""The deterministic one-entry *stored* zip a v4 artifact is: laid out from size, CRC-32 and mtime, streamed
from the stored file (a retry builds the same bytes, hence the same digest)."""

from __future__ import annotations

import hashlib
import os
import struct
import time
import zlib
from collections.abc import AsyncIterator
from contextlib import aclosing

import msgspec
import trio

from ci_sidecar.protocol.errors import ContentError

from ..base import UploadArtifact

__all__ = ["ZipLayout", "SourceChanged", "zip_entry_name", "zip_stream", "prepare", "archive_digest"]

_READ_BYTES = 1024 * 1024


def zip_entry_name(name: str) -> str:
    """The file name inside the archive: the artifact's own name, as a relative path."""
    entry = name.replace("\\", "/").lstrip("/")
    parts = [p for p in entry.split("/") if p not in ("", ".", "..")]
    return "/".join(parts) or "artifact"


# --- the zip archive --------------------------------------------------------------------------------

_ZIP32_MAX = 0xFFFFFFFF


def _dos_time(epoch: float) -> tuple[int, int]:
    t = time.gmtime(max(epoch, 315532800))  # the zip epoch is 1980-01-01
    return (t.tm_hour << 11) | (t.tm_min << 5) | (t.tm_sec // 2), ((t.tm_year - 1980) << 9) | (t.tm_mon << 5) | t.tm_mday


class ZipLayout:
    """A one-entry *stored* zip around a file of known size and CRC-32: the bytes before and after the data.

    ZIP64 fields are used when the file or the offsets pass 4 GiB (``zip64=True`` forces them, for tests).
    """

    def __init__(self, entry_name: str, size: int, crc: int, mtime: float, *, zip64: bool | None = None) -> None:
        name = entry_name.encode("utf-8")
        dos_time, dos_date = _dos_time(mtime)
        self.zip64 = zip64 if zip64 is not None else size >= _ZIP32_MAX - 2 * len(name) - 200
        version = 45 if self.zip64 else 20
        flags = 0x0800  # names are UTF-8
        sizes = (_ZIP32_MAX, _ZIP32_MAX) if self.zip64 else (size, size)
        extra = struct.pack("<HHQQ", 1, 16, size, size) if self.zip64 else b""
        self.header = struct.pack("<IHHHHHIIIHH", 0x04034B50, version, flags, 0, dos_time, dos_date, crc,
                                  sizes[0], sizes[1], len(name), len(extra)) + name + extra
        cd_offset = len(self.header) + size
        central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, (3 << 8) | version, version, flags, 0, dos_time,
                              dos_date, crc, sizes[0], sizes[1], len(name), len(extra), 0, 0, 0, 0o100644 << 16,
                              0) + name + extra
        trailer = central
        if self.zip64:
            eocd64_offset = cd_offset + len(central)
            trailer += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, (3 << 8) | 45, 45, 0, 0, 1, 1, len(central),
                                   cd_offset)
            trailer += struct.pack("<IIQI", 0x07064B50, 0, eocd64_offset, 1)
        offset32 = _ZIP32_MAX if cd_offset >= _ZIP32_MAX else cd_offset
        trailer += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), offset32, 0)
        self.trailer = trailer
        self.data_size = size
        self.size = len(self.header) + size + len(self.trailer)


async def _file_chunks(path: str, size: int) -> AsyncIterator[bytes]:
    """The file's bytes in 1 MiB reads; fails if it is not exactly ``size`` bytes long."""
    seen = 0
    async with await trio.open_file(path, "rb") as fh:
        while True:
            chunk = await fh.read(_READ_BYTES)
            if not chunk:
                break
            seen += len(chunk)
            if seen > size:
                break
            yield chunk
    if seen != size:
        raise SourceChanged(f"the stored file is {seen}+ bytes, expected {size}")


class SourceChanged(ContentError):
    """The stored file is not what the write describes (removed, truncated, replaced)."""


async def zip_stream(layout: ZipLayout, path: str) -> AsyncIterator[bytes]:
    yield layout.header
    async with aclosing(_file_chunks(path, layout.data_size)) as chunks:
        async for chunk in chunks:
            yield chunk
    yield layout.trailer


class _Prepared(msgspec.Struct, kw_only=True):
    """What one pass over the stored file yields: enough to lay out the archive."""

    crc32: int
    mtime: float


async def prepare(op: UploadArtifact) -> _Prepared:
    """CRC-32 of the stored file (one read), checked against the write's sha256."""
    try:
        mtime = (await trio.to_thread.run_sync(os.stat, op.stored_path)).st_mtime
    except OSError as exc:
        raise SourceChanged(f"the stored file is gone ({exc.strerror or exc})") from None
    crc = 0
    source = hashlib.sha256()
    async with aclosing(_file_chunks(op.stored_path, op.size)) as chunks:
        async for chunk in chunks:
            crc = zlib.crc32(chunk, crc)
            source.update(chunk)
    if source.hexdigest() != op.sha256.lower():
        raise SourceChanged("the stored file does not match its sha256")
    return _Prepared(crc32=crc, mtime=mtime)


async def archive_digest(layout: ZipLayout, path: str) -> str:
    """SHA-256 of the archive without sending it (needed only to recognise an upload of an earlier attempt)."""
    digest = hashlib.sha256()
    async with aclosing(zip_stream(layout, path)) as chunks:
        async for chunk in chunks:
            digest.update(chunk)
    return digest.hexdigest()
