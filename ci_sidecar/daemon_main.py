"""Wires the layers together for ``ci-sidecar serve``: configuration (flags on top) → services → transport → trio.run."""

from __future__ import annotations

import argparse
import logging
import os
import resource

import msgspec
import trio

from ci_sidecar import paths
from ci_sidecar.config import LoadedConfig, load_config
from ci_sidecar.protocol.errors import SidecarError
from ci_sidecar.rpc.server import Daemon

__all__ = ["run", "build_daemon", "raise_fd_limit", "CannotServe"]

log = logging.getLogger("ci_sidecar.daemon")


#: never ask for more than this, whatever the hard limit (some systems set it to ~2^30)
_MAX_NOFILE = 1 << 20


def raise_fd_limit() -> int:
    """Raise the soft limit on open files to the hard limit and return the soft limit in force.

    The daemon waits with epoll (never select), so a high limit costs nothing; the common default
    soft limit of 1,024 is what a busy shared daemon would otherwise run into. The service unit sets
    ``LimitNOFILE`` for the hard limit.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, _MAX_NOFILE) if hard != resource.RLIM_INFINITY else _MAX_NOFILE
    if soft == resource.RLIM_INFINITY or soft >= want:
        return soft if soft != resource.RLIM_INFINITY else want
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    except (ValueError, OSError) as exc:
        log.warning("could not raise the open-files limit from %d to %d: %s", soft, want, exc)
        return soft
    log.debug("open-files limit raised from %d to %d", soft, want)
    return want


class CannotServe(SidecarError):
    """The daemon cannot start; the message is for the user (the CLI prints it and exits 2)."""


def config_from_args(args: argparse.Namespace) -> LoadedConfig:
    """The daemon's configuration: every source of :func:`ci_sidecar.config.load_config`, the flags on top.

    The state dir falls back to systemd's ``$STATE_DIRECTORY``, then the platform's state dir. Raises
    ``ConfigError``.
    """
    flags = {
        "state_dir": args.state_dir,
        "socket": args.socket or None,
        "idle_timeout_s": args.idle_timeout,
        "max_body_bytes": args.max_body_bytes or None,
        "max_header_bytes": args.max_header_bytes or None,
        "system_mode": True if args.system else None,
    }
    if args.idle_timeout is None and os.environ.get("CI_SIDECAR_IDLE_TIMEOUT"):  # the older name of the variable
        flags["idle_timeout_s"] = os.environ["CI_SIDECAR_IDLE_TIMEOUT"]
    # absolute now: sessions load configuration from their own cwd, which must not decide which file this is
    config_path = os.path.abspath(os.path.expanduser(args.config)) if args.config else None
    loaded = load_config(env=os.environ, cwd=os.getcwd(), config_path=config_path, system_mode=args.system,
                         flags=flags)
    config = loaded.config
    if not config.state_dir:
        loaded.config = msgspec.structs.replace(config, state_dir=paths.state_dir(None, system=config.system_mode))
    return loaded


def build_daemon(loaded: LoadedConfig, *, debug_methods: bool = False, fd_limit: int = 0,
                 role: str = "socket") -> Daemon:
    """The daemon with every service layer this build has (``role``: socket, stdio or exec, named in its
    instance's owner record)."""
    from ci_sidecar.service.app import build_services

    daemon = Daemon(loaded.config, build_services(loaded, role=role), debug_methods=debug_methods)
    daemon.fd_limit = fd_limit
    return daemon


def run(args: argparse.Namespace) -> int:
    from ci_sidecar.config import ConfigError
    from ci_sidecar.service.store import StateLocked
    from ci_sidecar.state import StateError

    fd_limit = raise_fd_limit()
    try:
        loaded = config_from_args(args)
        if args.stdio:
            return _run_stdio(loaded, args.debug_methods, fd_limit)
        return _run_socket(loaded, args.debug_methods, fd_limit, getattr(args, "role", None) or "socket")
    except (ConfigError, StateLocked, StateError) as exc:
        raise CannotServe(str(exc)) from None
    except CannotServe:
        raise
    except OSError as exc:  # e.g. a state directory this user cannot create
        log.debug("daemon failed", exc_info=True)
        raise CannotServe(f"cannot serve: {exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")) from None


def _run_stdio(loaded: LoadedConfig, debug_methods: bool, fd_limit: int) -> int:
    from ci_sidecar.transport.stdio import StdioUnavailable, open_stdio_stream

    # first: config/state errors before stdio is taken
    daemon = build_daemon(loaded, debug_methods=debug_methods, fd_limit=fd_limit, role="stdio")
    try:
        stream = open_stdio_stream()
    except StdioUnavailable as exc:
        raise CannotServe(str(exc)) from None
    log.info("serving on stdio (pid %d, state %s)", os.getpid(), loaded.config.state_dir)
    return trio.run(daemon.serve_stdio, stream)


def _run_socket(loaded: LoadedConfig, debug_methods: bool, fd_limit: int, role: str) -> int:
    from ci_sidecar.transport import systemd
    from ci_sidecar.transport.unix import AlreadyRunning, SocketPathError, bind_unix_listener, listener_from_fd_socket

    config = loaded.config
    activated = systemd.listen_fds()
    notifier = systemd.Notifier.from_env(unset=True)  # children must not inherit NOTIFY_SOCKET

    async def main() -> int:
        server_socket = None
        if activated:
            # systemd owns the socket: its mode and group decide who may connect
            listeners = [listener_from_fd_socket(s) for s in activated]
            where = f"{len(listeners)} socket(s) from systemd"
        else:
            path = config.socket or paths.default_socket_path(system=config.system_mode)
            try:
                server_socket = await bind_unix_listener(path)
            except (AlreadyRunning, SocketPathError) as exc:
                raise CannotServe(str(exc)) from None
            listeners = [server_socket.listener]
            where = server_socket.path
        try:
            # after the socket lock: a second daemon on the same path hears about the socket first
            daemon = build_daemon(loaded, debug_methods=debug_methods, fd_limit=fd_limit, role=role)
            daemon.check_peer_uid = not activated  # systemd owns an activated socket: its mode decides
        except BaseException:
            if server_socket is not None:
                server_socket.close()
            raise

        def ready() -> None:
            log.info("serving on %s (pid %d, state %s)", where, os.getpid(), config.state_dir)
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
