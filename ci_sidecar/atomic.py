"""Atomic, durable file replacement and the private-directory rules (state files, run output, blobs).

A file written here is either the old version or the complete new one after a crash at any point:
the bytes go to a temporary file in the same directory (same filesystem, so ``rename`` is atomic),
which is fsynced, renamed over the target, and then the directory itself is fsynced so the rename
survives a power loss too. Files are created ``0600``; state directories are ``0700``.

A folder a CI collects after the job (a staging area, an output folder) must never hold a temporary file: a
writer killed with ``kill -9`` mid-write would leave one there to be uploaded. Writes into such a folder keep
their temporary files in the hidden folder :func:`partial_dir` beside it (same filesystem, so the rename is
still atomic); :func:`remove_dead_partials` clears what killed writers left there.
"""

from __future__ import annotations

import errno
import logging
import os
import secrets
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["TMP_MARKER", "atomic_write", "atomic_write_bytes", "ensure_private_dir", "fsync_dir", "partial_dir",
           "ready_partial_dir", "remove_dead_partials", "remove_stale_temps"]

log = logging.getLogger(__name__)

#: Part of every temporary file name; files carrying it are leftovers of an interrupted write.
TMP_MARKER = ".tmp-"
_PARTIAL = ".partial"
#: a temporary file in a partial folder untouched this long, of a process that is gone, is a leftover
_DEAD_AFTER_S = 600.0


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


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes | bytearray | memoryview, *, mode: int = 0o600,
                       tmp_dir: str | os.PathLike[str] | None = None) -> None:
    """Replace ``path`` with ``data`` atomically and durably.

    Readers (and a process restarted after a crash or power loss) see either the previous content
    or all of ``data``, never a mix. A crash may leave a temporary file named with
    :data:`TMP_MARKER` next to the target (:func:`remove_stale_temps` clears those), or in ``tmp_dir``.

    Args:
        path: the target file; its directory must exist.
        data: the complete new content.
        mode: permission bits of the new file.
        tmp_dir: see :func:`atomic_write`.
    """
    atomic_write(path, lambda fh: _write_all(fh.fileno(), data), mode=mode, tmp_dir=tmp_dir)


def atomic_write(path: str | os.PathLike[str], write: Callable[[BinaryIO], None], *, mode: int = 0o600,
                 tmp_dir: str | os.PathLike[str] | None = None) -> None:
    """Replace ``path`` with what ``write`` writes into the open file it is given, atomically and durably.

    Args:
        path: the target file; its directory must exist.
        write: fills the temporary file (it may be called a second time, see ``tmp_dir``).
        mode: permission bits of the new file (exactly: the umask does not apply).
        tmp_dir: an existing folder for the temporary file (:func:`partial_dir` of a folder a CI collects);
            when it turns out to be on another filesystem than ``path`` the write is done again through a
            temporary file beside the target. None: beside the target.
    """
    target = Path(path)
    if tmp_dir is not None:
        try:
            _write_via(Path(tmp_dir) / f"{os.getpid()}-{secrets.token_hex(8)}{_PARTIAL}", target, write, mode)
            return
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            log.warning("%s is on another filesystem than %s: writing its temporary file beside it", tmp_dir, target)
    _write_via(target.parent / f".{target.name}{TMP_MARKER}{secrets.token_hex(6)}", target, write, mode)


def _write_via(tmp: Path, target: Path, write: Callable[[BinaryIO], None], mode: int) -> None:
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            # os.open applied the umask; fchmod makes the mode exactly what the caller asked for.
            os.fchmod(fh.fileno(), mode)
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        raise
    fsync_dir(target.parent)


def partial_dir(collected: str | os.PathLike[str]) -> Path:
    """The hidden folder beside ``collected`` (``.<name>.partial``) for the temporary files of writes into it."""
    folder = Path(collected)
    return folder.parent / f".{folder.name}{_PARTIAL}"


def ready_partial_dir(collected: str | os.PathLike[str]) -> Path | None:
    """:func:`partial_dir` of ``collected``, created (``0700``) and cleared of dead writers' files; None when it
    cannot be had (unwritable parent, or a symlink planted there): write beside the target instead."""
    partial = partial_dir(collected)
    try:
        partial.mkdir(mode=0o700, exist_ok=True)
        if partial.is_symlink():
            return None
        remove_dead_partials(partial)
    except OSError:
        return None
    return partial


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process, or not ours to ask about: treat it as writing
        return True
    return True


def remove_dead_partials(folder: str | os.PathLike[str]) -> int:
    """Delete the temporary files in a :func:`partial_dir` whose writer is gone (killed mid-write).

    A file is a leftover when the process named in it no longer runs and it has not changed for ten
    minutes (a writer in another PID namespace sharing the folder still touches its file).

    Returns:
        How many files were removed.
    """
    cutoff = time.time() - _DEAD_AFTER_S

    def dead(entry: os.DirEntry[str]) -> bool:
        pid, _, rest = entry.name.partition("-")
        return (pid.isdigit() and rest.endswith(_PARTIAL) and not _alive(int(pid))
                and entry.stat(follow_symlinks=False).st_mtime < cutoff)

    try:
        return _remove_where(folder, dead, "temporary file(s) of interrupted writes")
    except FileNotFoundError:  # the folder itself is gone
        return 0


def _remove_where(directory: str | os.PathLike[str], doomed: Callable[[os.DirEntry[str]], bool], what: str) -> int:
    """Unlink the entries of ``directory`` that ``doomed`` picks (one vanishing meanwhile is fine); how many."""
    removed = 0
    for entry in os.scandir(directory):
        try:
            if doomed(entry):
                os.unlink(entry.path)
                removed += 1
        except FileNotFoundError:
            pass
    if removed:
        log.info("removed %d %s in %s", removed, what, directory)
        fsync_dir(directory)
    return removed


def remove_stale_temps(directory: str | os.PathLike[str], prefix: str) -> int:
    """Delete temporary files left by interrupted :func:`atomic_write_bytes` calls for ``<prefix>.*`` targets.

    Only call this while no write to those targets is in progress (at open time). The dot after
    ``prefix`` keeps journal ``state`` from touching the files of a journal named ``state-x``.

    Returns:
        How many files were removed.
    """
    return _remove_where(directory, lambda entry: entry.name.startswith(f".{prefix}.") and TMP_MARKER in entry.name,
                         "stale temporary file(s)")
