"""Signals for ``ci-sidecar exec``: forward SIGINT/SIGTERM/SIGHUP to the command, never die mid-report.

While exec runs, these signals are blocked in every thread it starts, so a signal can neither kill exec
before the run is completed nor land in a client thread; exec takes them itself: while the command runs, a
task in the command's nursery reads them from a ``signalfd`` (:meth:`SignalGate.forward`), and while exec
waits at the end, the main thread takes them with ``sigtimedwait``. Processes exec starts get the normal
mask back. A signal sent to exec (``kill``, a CI runner cancelling the job) is passed to the command; one
the terminal sent (Ctrl-C reaches the whole foreground process group, the command included) is not sent a
second time. A command that is still running ``KILL_AFTER_S`` after the first signal is killed.
"""

from __future__ import annotations

import ctypes
import os
import signal
import struct
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any, Callable

import trio

from ci_sidecar.protocol.errors import SidecarError

__all__ = ["SignalGate", "Interrupted", "exit_status", "child_exit"]

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
KILL_AFTER_S = 10.0
_SI_KERNEL = 0x80  # si_code of a signal the kernel generated (the terminal's Ctrl-C), not kill()
_SFD_FLAGS = os.O_NONBLOCK | os.O_CLOEXEC  # SFD_NONBLOCK and SFD_CLOEXEC have the same values
_SIGINFO_SIZE = 128  # sizeof(struct signalfd_siginfo): u32 ssi_signo, i32 ssi_errno, i32 ssi_code, ...


class Interrupted(SidecarError):
    """A second signal arrived while exec was waiting for something it can give up on."""


def exit_status(returncode: int) -> int:
    """A shell's exit status for a child's return code: 128+N when a signal N killed it."""
    return 128 - returncode if returncode < 0 else returncode


class SignalGate:
    """Use as a context manager around everything exec does; see the module docstring."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.signum: int | None = None  # the first signal exec received
        self._say = say
        self._caught: list[int] = []
        self._old_mask: Any = None
        self._old_handlers: dict[int, Any] = {}

    def __enter__(self) -> "SignalGate":
        # handlers only matter in the short unblocked windows around spawning (see unblocked())
        for sig in SIGNALS:
            self._old_handlers[sig] = signal.signal(sig, lambda signo, frame: self._caught.append(signo))
        self._old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
        return self

    def __exit__(self, *exc: Any) -> None:
        while (info := signal.sigtimedwait(SIGNALS, 0)) is not None:  # arrived while the run was completed
            self.signum = self.signum or info.si_signo  # exec still exits 128+N for it
        if self._caught:
            self.signum = self.signum or self._caught[0]
        signal.pthread_sigmask(signal.SIG_SETMASK, self._old_mask)
        for sig, handler in self._old_handlers.items():
            signal.signal(sig, handler)

    @contextmanager
    def unblocked(self) -> Iterator[None]:
        """Around starting a process: it inherits the normal mask (blocked signals survive exec)."""
        signal.pthread_sigmask(signal.SIG_SETMASK, self._old_mask)
        try:
            yield
        finally:
            signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)

    def popen(self, *args: Any, **kwargs: Any) -> subprocess.Popen:
        with self.unblocked():
            return subprocess.Popen(*args, **kwargs)

    def _next(self, timeout: float) -> tuple[int, bool] | None:
        """The next signal and whether it came from the terminal, waiting up to ``timeout``."""
        if self._caught:
            return self._caught.pop(0), False
        info = signal.sigtimedwait(SIGNALS, timeout)
        if info is None:
            return None
        return info.si_signo, info.si_code == _SI_KERNEL

    async def forward(self, proc: subprocess.Popen) -> None:
        """Forward signals to the command until cancelled (when it has exited); the first one also kills it
        if it is still running ``KILL_AFTER_S`` later."""
        async with trio.open_nursery() as nursery:
            async for signo, from_terminal in self._signals():
                if self.signum is None:
                    self.signum = signo
                    nursery.start_soon(self._kill_later, proc)
                    self._say(f"received {self._name()}: stopping the command, then completing the run as cancelled")
                if not from_terminal:  # the terminal already sent it to the whole process group
                    try:
                        proc.send_signal(signo)
                    except ProcessLookupError:
                        pass

    async def _kill_later(self, proc: subprocess.Popen) -> None:
        await trio.sleep(KILL_AFTER_S)
        if proc.poll() is None:
            self._say(f"the command is still running {KILL_AFTER_S:g} s after {self._name()}: killing it")
            proc.kill()

    async def _signals(self) -> AsyncIterator[tuple[int, bool]]:
        """Each signal as it arrives and whether it came from the terminal (read from a ``signalfd``: the
        signals stay blocked, and unlike a handler it tells who sent them)."""
        fd = _signalfd(SIGNALS)
        try:
            while True:
                while self._caught:  # arrived while a process was being started (see unblocked())
                    yield self._caught.pop(0), False
                try:
                    info = os.read(fd, _SIGINFO_SIZE)
                except BlockingIOError:
                    await trio.lowlevel.wait_readable(fd)
                    continue
                signo, _errno, code = struct.unpack_from("=Iii", info)
                yield signo, code == _SI_KERNEL
        finally:
            os.close(fd)

    def result(self, fut: Future, timeout: float, *, notice_after: float = float("inf"),
               notice: Callable[[], None] | None = None) -> Any:
        """``fut.result(timeout)``, but a signal gives up waiting (raises :class:`Interrupted`);
        ``notice()`` is called once if the wait lasts longer than ``notice_after`` seconds."""
        start = time.monotonic()
        deadline = start + timeout
        while not fut.done():
            if notice is not None and time.monotonic() - start >= notice_after:
                notice()
                notice = None
            left = deadline - time.monotonic()
            if left <= 0:
                return fut.result(0)  # raises the timeout
            got = self._next(min(0.2, left))
            if got is not None:
                self.signum = self.signum or got[0]
                raise Interrupted(signal.Signals(got[0]).name)
        return fut.result()

    def _name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else "a signal"


def _signalfd(signals: tuple[int, ...]) -> int:
    """A file descriptor that reads the pending *signals* (Linux ``signalfd(2)``, which the standard library
    does not wrap); they must be blocked, as they are under :class:`SignalGate`."""
    libc = ctypes.CDLL(None, use_errno=True)
    mask = ctypes.create_string_buffer(128)  # sigset_t: 1024 bits in glibc and musl
    libc.sigemptyset(mask)
    for sig in signals:
        libc.sigaddset(mask, int(sig))
    fd = libc.signalfd(-1, mask, _SFD_FLAGS)
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"signalfd: {os.strerror(err)}")
    return fd


async def child_exit(proc: subprocess.Popen) -> int:
    """Wait for *proc* to exit (its pidfd becomes readable; no thread waits); its return code."""
    fd = os.pidfd_open(proc.pid)
    try:
        await trio.lowlevel.wait_readable(fd)
    finally:
        os.close(fd)
    return proc.wait()
