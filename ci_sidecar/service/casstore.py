"""Content-addressed blob store for artifacts: one file per distinct content, named by its SHA-256.

Layout under ``<state dir>/cas/``: ``blobs/<2 hex>/<64 hex>`` (read-only files, mode 0444) and
``tmp/`` (uploads in progress). Bytes are copied by the kernel or through a fixed buffer and hashed in
streaming passes, so memory stays flat whatever the size. A blob appears only complete: the temp file is
fsynced, renamed into place and the directory fsynced; anything left in ``tmp/`` after a crash is a
torn upload and is deleted at open. Identical content is stored once.

Everything here is blocking file I/O that the service calls through ``trio.to_thread``, except
:meth:`CasStore.stage_file_async`, which has the kernel copy the file, then overlaps its fsync with hashing
the stored bytes on two worker threads. Deciding which blobs are still referenced is the caller's job
(:meth:`CasStore.remove`).
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import secrets
import stat
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import trio

from ci_sidecar.atomic import ensure_private_dir, fsync_dir
from ci_sidecar.protocol.errors import ContentError

__all__ = ["CasStore", "BlobWriter", "StagedBlob", "TooLarge", "NotRegularFile", "CHUNK", "open_regular_file",
           "hash_file"]

log = logging.getLogger("ci_sidecar.artifacts")

#: copy buffer: large enough that syscalls and hashing run at disk speed, small enough to stay flat
CHUNK = 1024 * 1024
#: bytes per kernel copy call of :meth:`CasStore.stage_file_async` (a cancelled upload stops between two)
COPY_CHUNK = 8 * 1024 * 1024
#: errors of copy_file_range that mean "not between these two files": copy through a buffer instead
_NO_KERNEL_COPY = frozenset({errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EBADF, errno.EPERM})
#: how much of the content's beginning is kept for sniffing a mime type
HEAD_BYTES = 1024
_BLOB_MODE = 0o444  # blobs never change; the local provider hard-links them into output folders


class TooLarge(ContentError):
    """The content passed ``limit`` bytes (``actual`` is what was seen when it was noticed)."""

    def __init__(self, limit: int, actual: int) -> None:
        super().__init__(f"{actual} > {limit} bytes")
        self.limit = limit
        self.actual = actual


class NotRegularFile(ContentError):
    """A source that is not a regular file (a directory, a FIFO, a device, a symlink)."""


@dataclass(frozen=True)
class StagedBlob:
    """Complete, fsynced content in ``tmp/``, waiting for :meth:`CasStore.commit`."""

    tmp_path: Path
    sha256: str
    size: int
    head: bytes


def _write_all(fd: int, view: memoryview) -> None:
    while view:
        n = os.write(fd, view)
        view = view[n:]


class BlobWriter:
    """Sequential writer of one upload into ``tmp/``, hashing as it goes.

    ``write_at`` makes resent data harmless: bytes before ``written`` are ignored, bytes after it
    are appended, a gap is refused (the stream must be contiguous for a one-pass hash).
    """

    def __init__(self, tmp_dir: Path, limit: int | None = None) -> None:
        self.path = tmp_dir / f"up-{secrets.token_hex(12)}"
        self.fd: int | None = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        self.limit = limit
        self.written = 0
        self._hash = hashlib.sha256()
        self._head = bytearray()

    def write(self, data: bytes | bytearray | memoryview, *, hash: bool = True) -> None:
        """Append ``data`` (raises :class:`TooLarge` past the limit, writing nothing of it).

        ``hash=False`` leaves hashing to the caller, who then passes the digest to :meth:`finish`.
        """
        view = memoryview(data)
        n = len(view)
        if self.limit is not None and self.written + n > self.limit:
            raise TooLarge(self.limit, self.written + n)
        assert self.fd is not None, "writer already finished"
        if len(self._head) < HEAD_BYTES:
            self._head += view[: HEAD_BYTES - len(self._head)]
        if hash:
            self._hash.update(view)
        _write_all(self.fd, view)
        self.written += n

    def copy_from(self, src: int, between: Callable[[], None] = lambda: None) -> None:
        """Append the rest of ``src`` (from its offset) copied by the kernel (``copy_file_range``: page cache
        to page cache, nothing through Python), or through a buffer where the kernel cannot copy between
        these two files. Nothing is hashed: hash the stored file (:func:`hash_file`). ``between`` runs
        before each chunk (a cancelled upload stops there). Raises :class:`TooLarge` once the content
        passes the limit (the caller discards the partial upload).
        """
        assert self.fd is not None, "writer already finished"
        kernel = True
        while True:
            between()
            want = COPY_CHUNK if self.limit is None else max(1, min(COPY_CHUNK, self.limit - self.written + 1))
            if kernel:
                try:
                    n = os.copy_file_range(src, self.fd, want)
                except OSError as exc:
                    if exc.errno not in _NO_KERNEL_COPY:
                        raise
                    kernel = False
                    continue
            else:
                data = os.read(src, min(want, CHUNK))
                _write_all(self.fd, memoryview(data))
                n = len(data)
            if n == 0:
                return
            self.written += n
            if self.limit is not None and self.written > self.limit:
                raise TooLarge(self.limit, self.written)

    def write_at(self, offset: int, data: bytes) -> int:
        """Write ``data`` that belongs at ``offset``; returns how many new bytes were stored."""
        if offset > self.written:
            raise ValueError(f"offset {offset} is past the {self.written} byte(s) written so far")
        skip = self.written - offset
        if skip >= len(data):
            return 0  # a resend of bytes already written
        self.write(memoryview(data)[skip:])
        return len(data) - skip

    def finish(self, digest: str | None = None) -> StagedBlob:
        """Fsync and close; the content is ready for :meth:`CasStore.commit`."""
        assert self.fd is not None, "writer already finished"
        try:
            os.fsync(self.fd)
        finally:
            os.close(self.fd)
            self.fd = None
        return StagedBlob(self.path, digest or self._hash.hexdigest(), self.written, bytes(self._head))

    def discard(self) -> None:
        """Drop the partial upload (idempotent)."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def hash_file(path: str | os.PathLike[str]) -> tuple[str, bytes]:
    """SHA-256 of a file and its first ``HEAD_BYTES`` bytes, read through one reused buffer."""
    hasher = hashlib.sha256()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    head = b""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        while n := os.readv(fd, [buf]):
            if len(head) < HEAD_BYTES:
                head += bytes(view[: min(n, HEAD_BYTES - len(head))])
            hasher.update(view[:n])
    finally:
        os.close(fd)
    return hasher.hexdigest(), head


def open_regular_file(source: str | os.PathLike[str], limit: int | None) -> int:
    """Open a client's file for reading without ever blocking: a FIFO or a device would hang a plain
    ``open`` (or its first read) forever, so the open is non-blocking, a final symlink is refused
    (callers pass a resolved real path: a symlink there was swapped in after the check) and only a
    regular file within ``limit`` bytes is accepted. Returns the descriptor (the caller closes it).

    Raises:
        NotRegularFile, TooLarge, OSError.
    """
    try:
        src = os.open(source, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotRegularFile("is a symbolic link") from None
        raise
    try:
        st = os.fstat(src)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile("not a regular file")
        if limit is not None and st.st_size > limit:
            raise TooLarge(limit, st.st_size)
        try:
            os.posix_fadvise(src, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        except (AttributeError, OSError):
            pass
    except BaseException:
        os.close(src)
        raise
    return src


class CasStore:
    """Blobs by SHA-256 under one directory."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = ensure_private_dir(root)
        self.blobs = ensure_private_dir(self.root / "blobs")
        self.tmp = ensure_private_dir(self.root / "tmp")
        self._clear_tmp()

    def _clear_tmp(self) -> None:
        removed = 0
        for entry in os.scandir(self.tmp):
            try:
                os.unlink(entry.path)
                removed += 1
            except OSError:
                pass
        if removed:
            log.info("artifacts: removed %d torn upload(s) left by an interrupted daemon", removed)

    # --- naming ---------------------------------------------------------------------------------

    def path(self, sha256: str) -> Path:
        """Where the blob with this digest lives (whether or not it exists)."""
        return self.blobs / sha256[:2] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    # --- writing --------------------------------------------------------------------------------

    def writer(self, limit: int | None = None) -> BlobWriter:
        return BlobWriter(self.tmp, limit)

    async def stage_file_async(self, source: str | os.PathLike[str], limit: int | None = None) -> StagedBlob:
        """:meth:`stage_file` without the bytes passing through Python: the kernel copies the file into
        ``tmp/`` (:meth:`BlobWriter.copy_from`), then the copy's fsync and the SHA-256 of what was stored,
        read back from the page cache, run side by side on two worker threads. The digest is of the stored
        bytes themselves (the temp file is the daemon's own, mode 0600): what the blob is named after is
        what it holds. Same checks and errors as :meth:`stage_file`; cancelling stops the copy at the next
        chunk and discards the partial upload.
        """
        src = await trio.to_thread.run_sync(self._open_source, source, limit)
        writer: BlobWriter | None = None
        try:
            writer = w = await trio.to_thread.run_sync(self.writer, limit)
            await trio.to_thread.run_sync(w.copy_from, src, trio.from_thread.check_cancelled)
            hashed: list[tuple[str, bytes]] = []

            async def hash_stored() -> None:
                hashed.append(await trio.to_thread.run_sync(hash_file, w.path))

            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(hash_stored)
                    staged = await trio.to_thread.run_sync(w.finish, "-")  # fsync and close; digest below
            except BaseExceptionGroup as group:  # one failure (OSError, Cancelled) is raised as itself
                if len(group.exceptions) == 1:
                    raise group.exceptions[0] from None
                raise
            digest, head = hashed[0]
            return replace(staged, sha256=digest, head=head)
        except BaseException:
            if writer is not None:
                writer.discard()
            raise
        finally:
            os.close(src)

    def _open_source(self, source: str | os.PathLike[str], limit: int | None) -> int:
        return open_regular_file(source, limit)

    def stage_file(self, source: str | os.PathLike[str], limit: int | None = None) -> StagedBlob:
        """Copy and hash a regular file in one pass into ``tmp/``.

        The source is opened without following a final symlink (callers pass a resolved real path,
        so a symlink there means it was swapped after the check) and must be a regular file.

        Raises:
            NotRegularFile, TooLarge, OSError.
        """
        src = self._open_source(source, limit)
        try:
            w = self.writer(limit)
            try:
                buf = bytearray(CHUNK)
                view = memoryview(buf)
                while True:
                    n = os.readv(src, [buf])
                    if n == 0:
                        break
                    w.write(view[:n])  # a file that grows past the limit while copied still fails
                return w.finish()
            except BaseException:
                w.discard()
                raise
        finally:
            os.close(src)

    def stage_bytes(self, data: bytes, limit: int | None = None) -> StagedBlob:
        """Store content a client sent inline."""
        w = self.writer(limit)
        try:
            w.write(data)
            return w.finish()
        except BaseException:
            w.discard()
            raise

    def commit(self, staged: StagedBlob) -> bool:
        """Move staged content into place; False when identical content was already stored."""
        target = self.path(staged.sha256)
        if target.is_file():
            os.unlink(staged.tmp_path)
            return False
        target.parent.mkdir(mode=0o700, exist_ok=True)
        os.chmod(staged.tmp_path, _BLOB_MODE)
        os.rename(staged.tmp_path, target)
        fsync_dir(target.parent)
        return True

    def discard(self, staged: StagedBlob) -> None:
        try:
            os.unlink(staged.tmp_path)
        except FileNotFoundError:
            pass

    # --- removing -------------------------------------------------------------------------------

    def remove(self, sha256: str) -> int:
        """Delete a blob; returns the bytes freed (0 when it was not there)."""
        path = self.path(sha256)
        try:
            size = path.stat().st_size
            os.unlink(path)
        except FileNotFoundError:
            return 0
        return size

    def all_digests(self) -> set[str]:
        """Every stored digest (for removing blobs no artifact references after a restart)."""
        out: set[str] = set()
        for sub in os.scandir(self.blobs):
            if sub.is_dir(follow_symlinks=False):
                out.update(e.name for e in os.scandir(sub.path) if len(e.name) == 64)
        return out

    def total_bytes(self) -> int:
        total = 0
        for sub in os.scandir(self.blobs):
            if sub.is_dir(follow_symlinks=False):
                total += sum(e.stat(follow_symlinks=False).st_size for e in os.scandir(sub.path))
        return total
