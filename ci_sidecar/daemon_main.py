"""Wires the layers together for ``ci-sidecar serve``: options → services → transport → trio.run."""

from __future__ import annotations

import argparse
import logging
import os

import trio

from ci_sidecar import paths
from ci_sidecar.rpc.server import Daemon, DaemonOptions

__all__ = ["run", "build_daemon", "CannotServe"]

log = logging.getLogger("ci_sidecar.daemon")


def _env_float(name: str) -> float | None:
    value = os.environ.get(name)
    try:
        return float(value) if value else None
    except ValueError:
        raise SystemExit(f"ci-sidecar: {name}={value!r} is not a number") from None


class CannotServe(Exception):
    """The daemon cannot start; the message is for the user (the CLI prints it and exits 2)."""


def options_from_args(args: argparse.Namespace) -> DaemonOptions:
    opts = DaemonOptions(debug_methods=args.debug_methods, system_mode=args.system, config_path=args.config)
    idle = args.idle_timeout if args.idle_timeout is not None else _env_float("CI_SIDECAR_IDLE_TIMEOUT")
    opts.idle_timeout_s = idle or 0.0
    if args.max_body_bytes:
        opts.max_body_bytes = args.max_body_bytes
    if args.max_header_bytes:
        opts.max_header_bytes = args.max_header_bytes
    opts.state_dir = paths.state_dir(args.state_dir, system=args.system)
    return opts


def build_daemon(opts: DaemonOptions) -> Daemon:
    """The daemon with every service layer this build has."""
    from ci_sidecar.service.app import build_services

    return Daemon(opts, build_services(opts))


def run(args: argparse.Namespace) -> int:
    from ci_sidecar.config import ConfigError
    from ci_sidecar.service.store import StateLocked
    from ci_sidecar.state import StateError

    opts = options_from_args(args)
    try:
        if args.stdio:
            return _run_stdio(opts)
        return _run_socket(opts, args.socket or None)
    except (ConfigError, StateLocked, StateError) as exc:
        raise CannotServe(str(exc)) from None
    except CannotServe:
        raise
    except OSError as exc:  # e.g. a state directory this user cannot create
        log.debug("daemon failed", exc_info=True)
        raise CannotServe(f"cannot serve: {exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")) from None


def _run_stdio(opts: DaemonOptions) -> int:
    from ci_sidecar.transport.stdio import StdioUnavailable, open_stdio_stream

    daemon = build_daemon(opts)  # first, so config/state errors are reported before stdio is taken
    try:
        stream = open_stdio_stream()
    except StdioUnavailable as exc:
        raise CannotServe(str(exc)) from None
    log.info("serving on stdio (pid %d, state %s)", os.getpid(), opts.state_dir)
    return trio.run(daemon.serve_stdio, stream)


def _run_socket(opts: DaemonOptions, socket_path: str | None) -> int:
    from ci_sidecar.transport import systemd
    from ci_sidecar.transport.unix import AlreadyRunning, SocketPathError, bind_unix_listener, listener_from_fd_socket

    activated = systemd.listen_fds()
    notifier = systemd.Notifier.from_env(unset=True)  # children must not inherit NOTIFY_SOCKET

    async def main() -> int:
        server_socket = None
        if activated:
            # systemd owns the socket: its mode and group decide who may connect
            listeners = [listener_from_fd_socket(s) for s in activated]
            opts.check_peer_uid = False
            where = f"{len(listeners)} socket(s) from systemd"
        else:
            path = socket_path or paths.default_socket_path(system=opts.system_mode)
            try:
                server_socket = await bind_unix_listener(path)
            except (AlreadyRunning, SocketPathError) as exc:
                raise CannotServe(str(exc)) from None
            listeners = [server_socket.listener]
            where = server_socket.path
        try:
            # after the socket lock: a second daemon on the same path hears about the socket first
            daemon = build_daemon(opts)
        except BaseException:
            if server_socket is not None:
                server_socket.close()
            raise

        def ready() -> None:
            log.info("serving on %s (pid %d, state %s)", where, os.getpid(), opts.state_dir)
            notifier.ready(f"serving on {where}")

        try:
            async with trio.open_nursery() as nursery:
                interval = systemd.watchdog_interval()
                if interval:
                    nursery.start_soon(systemd.run_watchdog, notifier, interval)
                code = await daemon.serve_listeners(listeners, on_ready=ready)
                notifier.stopping()
                nursery.cancel_scope.cancel()
            return code
        finally:
            if server_socket is not None:
                server_socket.close()

    return trio.run(main)
