"""stdin/stdout as one trio stream, with stdout protected from stray writes.

At start-up the protocol takes a private duplicate of fd 1 and points fd 1 at stderr, so a ``print()``
anywhere in the process (or a C library writing to fd 1) lands on stderr instead of corrupting frames.
"""

from __future__ import annotations

import os
import sys

import trio

from ci_sidecar.protocol.errors import TransportError

__all__ = ["StdioUnavailable", "open_stdio_stream"]


class StdioUnavailable(TransportError):
    """stdio cannot carry the protocol (a terminal, or closed descriptors)."""


def open_stdio_stream() -> trio.StapledStream:
    """Take over fds 0/1 for the protocol and return them as one bidirectional stream."""
    if os.isatty(0):
        # FdStream would switch the terminal shared with the shell to non-blocking mode (trio#174).
        raise StdioUnavailable("stdin is a terminal: --stdio is for a program that spawns the daemon")
    try:
        proto_in = os.dup(0)
        proto_out = os.dup(1)
    except OSError as exc:
        raise StdioUnavailable(f"stdin/stdout not open: {exc}") from None
    sys.stdout.flush()
    os.dup2(2, 1)  # stray writes to fd 1 now go to stderr
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)  # nothing else in the process may read protocol bytes
    os.close(devnull)
    return trio.StapledStream(trio.lowlevel.FdStream(proto_out), trio.lowlevel.FdStream(proto_in))
