"""Atomic, durable file replacement and the private-directory rules (state files, run output, blobs).

A file written here is either the old version or the complete new one after a crash at any point:
the bytes go to a temporary file in the same directory (same filesystem, so ``rename`` is atomic),
which is fsynced, renamed over the target, and then the directory itself is fsynced so the rename
survives a power loss too. Files are created ``0600``; state directories are ``0700``.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path

__all__ = ["TMP_MARKER", "atomic_write_bytes", "ensure_private_dir", "fsync_dir", "remove_stale_temps"]

log = logging.getLogger(__name__)

#: Part of every temporary file name; files carrying it are leftovers of an interrupted write.
TMP_MARKER = ".tmp-"


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Fsync a directory so that entries created, renamed or removed in it are durable.

    Args:
        path: the directory.
    """
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_private_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` (and parents) if needed and make sure only its owner can enter it (``0700``).

    An existing directory that group or others may access is tightened, with a warning: state files
    hold run data and credential references.

    Returns:
        The directory as a :class:`~pathlib.Path`.
    """
    p = Path(path)
    p.mkdir(mode=0o700, parents=True, exist_ok=True)
    mode = stat.S_IMODE(p.stat().st_mode)
    if mode != 0o700:
        if mode & 0o077:
            log.warning("state directory %s had mode %o; tightening to 0700", p, mode)
        os.chmod(p, 0o700)
    return p


def _write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    """``os.write`` until every byte is written (a single write may be short)."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes | bytearray | memoryview, *, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` atomically and durably.

    Readers (and a process restarted after a crash or power loss) see either the previous content
    or all of ``data``, never a mix. A crash may leave a temporary file named with
    :data:`TMP_MARKER` next to the target; :func:`remove_stale_temps` clears those.

    Args:
        path: the target file; its directory must exist.
        data: the complete new content.
        mode: permission bits of the new file.
    """
    target = Path(path)
    directory = target.parent
    tmp = directory / f".{target.name}{TMP_MARKER}{secrets.token_hex(6)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        try:
            # os.open applied the umask; fchmod makes the mode exactly what the caller asked for.
            os.fchmod(fd, mode)
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        raise
    fsync_dir(directory)


def remove_stale_temps(directory: str | os.PathLike[str], prefix: str) -> int:
    """Delete temporary files left by interrupted :func:`atomic_write_bytes` calls for ``<prefix>.*`` targets.

    Only call this while no write to those targets is in progress (at open time). The dot after
    ``prefix`` keeps journal ``state`` from touching the files of a journal named ``state-x``.

    Returns:
        How many files were removed.
    """
    removed = 0
    for entry in os.scandir(directory):
        if entry.name.startswith(f".{prefix}.") and TMP_MARKER in entry.name:
            try:
                os.unlink(entry.path)
                removed += 1
            except FileNotFoundError:
                pass
    if removed:
        log.info("removed %d stale temporary file(s) in %s", removed, directory)
        fsync_dir(directory)
    return removed
