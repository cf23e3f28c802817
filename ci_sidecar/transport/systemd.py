"""The systemd side of the daemon: socket activation, ``sd_notify`` and the watchdog, in pure Python.

No libsystemd binding and no running systemd needed (the protocol is environment variables, inherited
fds and datagrams). How the server uses it::

    listeners = listen_fds()                  # [] unless socket-activated
    notifier = Notifier.from_env()            # no-op unless $NOTIFY_SOCKET is set
    async with trio.open_nursery() as nursery:
        await nursery.start(serve_listeners, ...)           # bound and listening first,
        notifier.ready("listening on ...")                  # then READY=1
        if (interval := watchdog_interval()) is not None:
            nursery.start_soon(run_watchdog, notifier, interval)
        ...
    # on SIGTERM: notifier.stopping(), flush, exit

Reference: sd_listen_fds(3), sd_notify(3), sd_watchdog_enabled(3).
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
from collections.abc import Mapping, MutableMapping

import trio

__all__ = [
    "SD_LISTEN_FDS_START",
    "Notifier",
    "listen_fds",
    "listen_fds_with_names",
    "run_watchdog",
    "watchdog_interval",
]

log = logging.getLogger(__name__)

#: The first inherited fd (sd-daemon.h ``SD_LISTEN_FDS_START``).
SD_LISTEN_FDS_START = 3
_LISTEN_VARS = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")


def listen_fds(env: MutableMapping[str, str] = os.environ, *, unset: bool = True) -> list[socket.socket]:
    """Sockets passed to this process by socket activation, in fd order (fd 3, 4, ...).

    They are accepted only when ``$LISTEN_PID`` is this process (the variables may have been
    inherited from a parent they were meant for); otherwise the result is empty. Each fd gets
    close-on-exec so children never inherit the listener. With ``unset`` the ``LISTEN_*``
    variables are removed from ``env`` afterwards, whatever the outcome (as sd_listen_fds does).

    Raises:
        ValueError: ``$LISTEN_PID`` or ``$LISTEN_FDS`` is not a number (a broken service manager
            setup; better to fail at start-up than to silently bind a new socket).
        OSError: a promised fd is not open or not a socket.
    """
    return [sock for sock, _name in listen_fds_with_names(env, unset=unset)]


def listen_fds_with_names(
    env: MutableMapping[str, str] = os.environ, *, unset: bool = True
) -> list[tuple[socket.socket, str]]:
    """Like :func:`listen_fds`, with each socket's ``FileDescriptorName=`` (``$LISTEN_FDNAMES``).

    A socket without a name gets ``"unknown"``, as systemd itself reports it.
    """
    try:
        pid_text = env.get("LISTEN_PID")
        if not pid_text:
            return []
        try:
            pid = int(pid_text)
            count = int(env.get("LISTEN_FDS", "0"))
        except ValueError:
            raise ValueError(
                f"bad socket-activation variables LISTEN_PID={pid_text!r} "
                f"LISTEN_FDS={env.get('LISTEN_FDS')!r}"
            ) from None
        if pid != os.getpid():
            log.debug("LISTEN_PID=%d is not this process (%d): ignoring LISTEN_FDS", pid, os.getpid())
            return []
        if count < 0:
            raise ValueError(f"bad socket-activation variable LISTEN_FDS={count}")
        names = env.get("LISTEN_FDNAMES", "").split(":") if env.get("LISTEN_FDNAMES") else []
        result = []
        for index, fd in enumerate(range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + count)):
            flags = fcntl.fcntl(fd, fcntl.F_GETFD)  # OSError(EBADF) if systemd's promise is broken
            fcntl.fcntl(fd, fcntl.F_SETFD, flags | fcntl.FD_CLOEXEC)
            sock = socket.socket(fileno=fd)  # family and type are read from the fd
            result.append((sock, names[index] if index < len(names) else "unknown"))
        log.info("socket activation: %d inherited socket(s)", len(result))
        return result
    finally:
        if unset:
            for name in _LISTEN_VARS:
                env.pop(name, None)


class Notifier:
    """Sends ``sd_notify`` datagrams (``READY=1``, ``WATCHDOG=1``, ...) to the service manager.

    A notifier without an address does nothing, so code paths need no ``if systemd`` checks.
    Sending never raises: a failed send is logged (a warning the first time, debug after) and
    reported by the ``False`` return value. Sends never block the event loop (``MSG_DONTWAIT``).
    """

    def __init__(self, address: str | None) -> None:
        """Notify ``address``: a ``$NOTIFY_SOCKET`` value, i.e. an absolute path or ``@name`` (abstract
        namespace). ``None`` or ``""`` makes a no-op notifier; see also :meth:`from_env`.
        """
        self._target: str | bytes | None = None
        self._warned = False
        if not address:
            return
        if address.startswith("@"):
            # Abstract namespace: the name starts with a NUL byte instead of '@'.
            self._target = b"\0" + address[1:].encode()
        elif address.startswith("/"):
            self._target = address
        else:
            # vsock:... and other forms are for VMs/containers we do not run in.
            log.warning("unsupported NOTIFY_SOCKET %r: systemd notifications disabled", address)

    @classmethod
    def from_env(cls, env: MutableMapping[str, str] = os.environ, *, unset: bool = False) -> Notifier:
        """A notifier for ``$NOTIFY_SOCKET`` (a no-op one when it is unset).

        With ``unset`` the variable is removed so child processes do not notify in our name.
        """
        address = env.get("NOTIFY_SOCKET")
        if unset:
            env.pop("NOTIFY_SOCKET", None)
        return cls(address)

    @property
    def enabled(self) -> bool:
        """Whether notifications go anywhere."""
        return self._target is not None

    def notify(self, **fields: object) -> bool:
        """Send one datagram of ``KEY=value`` lines, e.g. ``notify(READY=1, STATUS="serving")``.

        Newlines in values are replaced by spaces: they would start another field.
        Returns True if the datagram was sent.
        """
        if self._target is None or not fields:
            return False
        payload = "\n".join(
            f"{key}={str(value).replace(chr(13), ' ').replace(chr(10), ' ')}" for key, value in fields.items()
        ).encode()
        try:
            # A socket per datagram (as sd_notify does): sends are rare, and a notifier then owns
            # no fd that could leak into children or need closing.
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(payload, socket.MSG_DONTWAIT, self._target)
        except OSError as exc:
            level = logging.DEBUG if self._warned else logging.WARNING
            self._warned = True
            log.log(level, "sd_notify to %r failed: %s", self._target, exc)
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """``READY=1`` (send only once the listener accepts connections), with ``MAINPID``."""
        fields: dict[str, object] = {"READY": 1}
        if status is not None:
            fields["STATUS"] = status
        fields["MAINPID"] = os.getpid()
        return self.notify(**fields)

    def status(self, text: str) -> bool:
        """``STATUS=<text>``: the line ``systemctl status`` shows."""
        return self.notify(STATUS=text)

    def stopping(self, status: str | None = None) -> bool:
        """``STOPPING=1``: shutdown has begun (flushing pending writes)."""
        fields: dict[str, object] = {"STOPPING": 1}
        if status is not None:
            fields["STATUS"] = status
        return self.notify(**fields)

    def watchdog(self) -> bool:
        """``WATCHDOG=1``: the keep-alive ping."""
        return self.notify(WATCHDOG=1)

    def __repr__(self) -> str:
        return f"Notifier({self._target!r})"


def watchdog_interval(env: Mapping[str, str] = os.environ) -> float | None:
    """Seconds between watchdog pings: half of ``$WATCHDOG_USEC``, or None when there is no watchdog.

    None too when ``$WATCHDOG_PID`` names another process (the watchdog is not ours) or the value
    is unusable (logged).
    """
    usec_text = env.get("WATCHDOG_USEC")
    if not usec_text:
        return None
    pid_text = env.get("WATCHDOG_PID")
    try:
        usec = int(usec_text)
        if pid_text and int(pid_text) != os.getpid():
            return None
    except ValueError:
        log.warning("ignoring bad WATCHDOG_USEC=%r / WATCHDOG_PID=%r", usec_text, pid_text)
        return None
    if usec <= 0:
        log.warning("ignoring bad WATCHDOG_USEC=%r", usec_text)
        return None
    return usec / 2 / 1_000_000


async def run_watchdog(notifier: Notifier, interval: float) -> None:
    """Send ``WATCHDOG=1`` now and every ``interval`` seconds, until cancelled.

    Runs as a task of the server's nursery: the ping comes from the event loop itself, so a loop
    wedged by blocking code stops pinging and systemd restarts the service (``WatchdogSec=``).
    """
    if interval <= 0:
        raise ValueError(f"watchdog interval must be positive, got {interval}")
    while True:
        notifier.watchdog()
        await trio.sleep(interval)
