"""Unix-socket listener: path checks, single-instance lock, stale-socket recovery, peer uid check.

trio has no Unix listener helper (trio#279), so this builds one from ``trio.socket`` and
``trio.SocketListener``. A socket the daemon creates is 0600 in a 0700 directory and only the daemon's
uid may connect (SO_PEERCRED); a socket passed by systemd keeps its own mode and group.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import stat
import struct
from dataclasses import dataclass

import trio

from ci_sidecar.protocol.errors import TransportError

__all__ = [
    "MAX_SOCKET_PATH_BYTES",
    "SocketPathError",
    "AlreadyRunning",
    "PeerCredentials",
    "UnixServerSocket",
    "bind_unix_listener",
    "peer_credentials",
]

# sun_path is 108 bytes on Linux including the terminating NUL
MAX_SOCKET_PATH_BYTES = 107


class SocketPathError(TransportError):
    """The socket path cannot be used; the message says why and what to do."""


class AlreadyRunning(TransportError):
    """Another daemon holds the path's lock."""


@dataclass(frozen=True)
class PeerCredentials:
    pid: int
    uid: int
    gid: int


def peer_credentials(sock: socket.socket | trio.socket.SocketType) -> PeerCredentials:
    """The connecting process's credentials at connect(2) time."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return PeerCredentials(pid, uid, gid)


@dataclass
class UnixServerSocket:
    """A bound, listening socket plus the lock that makes this daemon its only server."""

    path: str
    listener: trio.SocketListener
    lock_fd: int | None

    def close(self) -> None:
        """Remove the socket file (if still ours) and release the lock."""
        try:
            os.unlink(self.path)
        except OSError:
            pass
        if self.lock_fd is not None:
            try:
                os.unlink(self.path + ".lock")
            except OSError:
                pass
            os.close(self.lock_fd)
            self.lock_fd = None


def _check_path(path: str) -> None:
    if len(os.fsencode(path)) > MAX_SOCKET_PATH_BYTES:
        raise SocketPathError(
            f"socket path is {len(os.fsencode(path))} bytes, the limit is {MAX_SOCKET_PATH_BYTES}: {path} "
            "(choose a shorter path with --socket or CI_SIDECAR_SOCKET)"
        )


def _prepare_dir(directory: str) -> None:
    if not os.path.isdir(directory):
        os.makedirs(directory, mode=0o700, exist_ok=True)
        os.chmod(directory, 0o700)
        return
    st = os.stat(directory)
    shared = st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    if shared and not st.st_mode & stat.S_ISVTX:
        raise SocketPathError(
            f"socket directory {directory} is writable by others without the sticky bit; "
            "anyone could replace the socket (use a private directory)"
        )


def _take_lock(path: str) -> int:
    lock_path = path + ".lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = ""
        try:
            holder = os.pread(fd, 32, 0).decode().strip()
        except OSError:
            pass
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise AlreadyRunning(
                f"another ci-sidecar is already serving {path}" + (f" (pid {holder})" if holder else "")
            ) from None
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


async def bind_unix_listener(path: str, *, backlog: int = 128) -> UnixServerSocket:
    """Create the socket at ``path`` (0600), replacing a stale one, under a single-instance lock."""
    path = os.path.abspath(path)
    _check_path(path)
    _prepare_dir(os.path.dirname(path))
    lock_fd = _take_lock(path)
    try:
        if os.path.lexists(path):
            if not stat.S_ISSOCK(os.lstat(path).st_mode):
                raise SocketPathError(f"{path} exists and is not a socket; refusing to replace it")
            os.unlink(path)  # stale: we hold the lock, so nobody serves it
        sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)
        try:
            await sock.bind(path)
        finally:
            os.umask(old_umask)
        os.chmod(path, 0o600)
        sock.listen(backlog)
        return UnixServerSocket(path, trio.SocketListener(sock), lock_fd)
    except BaseException:
        os.close(lock_fd)
        raise


def listener_from_fd_socket(sock: socket.socket) -> trio.SocketListener:
    """Wrap an already-listening socket (socket activation)."""
    return trio.SocketListener(trio.socket.from_stdlib_socket(sock))
