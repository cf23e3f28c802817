"""The ``ci-sidecar`` command: ``serve``, ``call`` and the other subcommands.

Every subcommand is a small function taking the parsed arguments and returning an exit code.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from ci_sidecar import __version__

__all__ = ["main", "build_parser"]

log = logging.getLogger("ci_sidecar.cli")


def _add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the daemon on stdio or a Unix socket")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--stdio", action="store_true", help="serve one session on stdin/stdout (spawned by a runner)")
    where.add_argument("--socket", metavar="PATH", nargs="?", const="", default=None,
                       help="serve on a Unix socket (default: $CI_SIDECAR_SOCKET, else the user runtime dir)")
    p.add_argument("--system", action="store_true",
                   help="system-wide mode: site dirs, /etc/ci-sidecar/ci-sidecar.toml, /run/ci-sidecar socket")
    p.add_argument("--state-dir", metavar="DIR", help="durable state (default: $CI_SIDECAR_STATE_DIR, "
                   "$STATE_DIRECTORY, else the platform state dir)")
    p.add_argument("--config", metavar="PATH", help="configuration file (TOML)")
    p.add_argument("--idle-timeout", type=float, default=None, metavar="SECONDS",
                   help="exit after this long with no session (socket) or no message (stdio); 0 = never")
    p.add_argument("--max-body-bytes", type=int, default=None, help="largest message body (default 16 MiB)")
    p.add_argument("--max-header-bytes", type=int, default=None, help="largest header block (default 8 KiB)")
    p.add_argument("--debug-methods", action="store_true", help="also serve sidecar/debug/* (for tests)")
    p.add_argument("--background", action="store_true",
                   help="start the daemon detached and return once its socket accepts connections")
    p.add_argument("--ready-timeout", type=float, default=30.0, metavar="SECONDS",
                   help="with --background: how long to wait for the socket (default 30)")
    p.add_argument("--log-level", default=os.environ.get("CI_SIDECAR_LOG_LEVEL"),
                   help="default INFO; WARNING with --stdio, whose stderr is the spawning test runner's output")
    p.add_argument("--role", choices=["exec"], help=argparse.SUPPRESS)  # the private daemon of `exec`
    p.add_argument("--log-file", default=os.environ.get("CI_SIDECAR_LOG_FILE"))
    p.set_defaults(func=_cmd_serve)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command-line parser; with the name of a subcommand, only that one, so a daemon's start-up or a
    script's ``call`` does not import what the others need (``exec`` pulls in most of the service layer)."""
    parser = argparse.ArgumentParser(
        prog="ci-sidecar",
        description="A JSON-RPC daemon that does CI work (test runs, results, comments, artifacts) for test runners.",
    )
    parser.add_argument("--version", action="version", version=f"ci-sidecar {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    adders = _COMMANDS.values() if command not in _COMMANDS else [_COMMANDS[command]]
    for add in adders:
        add(sub)
    return parser


# --- serve -------------------------------------------------------------------------------------


def _cmd_serve(args: argparse.Namespace) -> int:
    if args.background:
        from ci_sidecar.call_cmd import start_in_background

        return start_in_background(args, args.argv)
    from ci_sidecar.logs import setup_logging

    setup_logging(args.log_level or ("WARNING" if args.stdio else "INFO"), args.log_file)
    from ci_sidecar import daemon_main

    try:
        return daemon_main.run(args)
    except daemon_main.CannotServe as exc:
        print(f"ci-sidecar: {exc}", file=sys.stderr)
        return 2


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run a small bundled test suite through `exec` on the local provider")
    p.set_defaults(func=_cmd_demo)


def _cmd_demo(args: argparse.Namespace) -> int:
    import tempfile

    from ci_sidecar.exec_cmd import run_exec

    with tempfile.TemporaryDirectory(prefix="cis-demo-") as tmp:
        junit = os.path.join(tmp, "demo-junit.xml")
        ns = argparse.Namespace(junit=[junit], name="ci-sidecar demo", fail_on_undelivered=True, wait_s=30.0,
                                private=False, strict=True,
                                cmd=["--", sys.executable, "-m", "ci_sidecar.demo_suite", junit])
        status = run_exec(ns)
    run = getattr(ns, "completed_run", None)
    if run is None:  # exec said why (no daemon, no run): the demo failed
        print("ci-sidecar: demo failed: no run was completed", file=sys.stderr)
        return status or 1
    delivered = not (run["delivery"]["pending"] or run["delivery"]["failed"])
    if status == 1 and delivered and run["counts"]["failed"] == 1:
        print("ci-sidecar: demo done; the failing test (0.1 + 0.2) fails on purpose. Open the report above.",
              file=sys.stderr)
        return 0
    return status or 0


def _add_env(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("env", help="print the detected CI context as JSON")
    p.add_argument("--config", metavar="PATH", help="configuration file (TOML)")
    p.set_defaults(func=lambda a: _env_cmd().run_env(a))


def _add_doctor(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="show the detected context, providers, credentials found and config files")
    p.add_argument("--config", metavar="PATH", help="configuration file (TOML)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--check", action="store_true",
                   help="prove the tokens can do what the chosen tiers need (read-only, leaves no trace)")
    p.add_argument("--write", action="store_true",
                   help="with --check: prove write access by writing once (a 'ci-sidecar doctor' check run, "
                        "a 'ci-sidecar/doctor' status, a PR comment deleted again)")
    p.set_defaults(func=lambda a: _env_cmd().run_doctor(a))


def _env_cmd() -> Any:
    from ci_sidecar import env_cmd

    return env_cmd


def _add_install_units(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("install-units", help="write the systemd service and socket units")
    p.add_argument("--user", action="store_true", help="per-user units (systemctl --user)")
    p.add_argument("--prefix", help="install prefix of ci-sidecar (ExecStart=<prefix>/bin/ci-sidecar)")
    p.add_argument("--root", help="where to write (default: / for system units, $HOME for user units)")
    p.add_argument("--group", default="ci", help="group allowed to connect to the system socket (default: ci)")
    p.add_argument("--service-user", default="ci-sidecar", help="the system service's user (default: ci-sidecar)")
    p.add_argument("--force", action="store_true",
                   help="write the units even when the service user cannot run this installation")
    p.set_defaults(func=_cmd_install_units)


def _cmd_install_units(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ci_sidecar.units import install_units

    root = Path(args.root) if args.root else (Path.home() if args.user else Path("/"))
    if not args.user:
        from ci_sidecar.unit_reach import ServiceUser, unreachable_reason
        from ci_sidecar.units import entry_point

        why = unreachable_reason(entry_point(args.prefix), ServiceUser(args.service_user, args.group), private_tmp=True)
        if why:
            print(f"ci-sidecar install-units: the service cannot run this installation: {why}. Install ci-sidecar "
                  "where the service user can reach it (python3 -m venv /opt/ci-sidecar; see docs/systemd.md)"
                  + (" -- writing the units anyway (--force)" if args.force else ", or pass --force"), file=sys.stderr)
            if not args.force:
                return 1
    written = install_units(root, user_mode=args.user, prefix=args.prefix, system_group=args.group)
    for path in written:
        print(f"wrote {path}")
    scope = "--user " if args.user else ""
    print(f"next: systemctl {scope}daemon-reload && systemctl {scope}enable --now ci-sidecar.socket")
    return 0


def _add_exec(sub: argparse._SubParsersAction) -> None:
    from ci_sidecar.exec_cmd import add_exec_command

    add_exec_command(sub)


def _add_history(sub: argparse._SubParsersAction) -> None:
    from ci_sidecar.history_cmd import add_history_command

    add_history_command(sub)


def _add_merge(sub: argparse._SubParsersAction) -> None:
    from ci_sidecar.merge_cmd import add_merge_command

    add_merge_command(sub)


def _add_call(sub: argparse._SubParsersAction) -> None:
    from ci_sidecar.call_cmd import add_call_command

    add_call_command(sub)


def _add_wait(sub: argparse._SubParsersAction) -> None:
    from ci_sidecar.call_cmd import add_wait_command

    add_wait_command(sub)


#: every subcommand, in the order ``--help`` lists them
_COMMANDS: dict[str, Any] = {"serve": _add_serve, "call": _add_call, "wait": _add_wait, "exec": _add_exec,
                             "merge": _add_merge, "demo": _add_demo, "env": _add_env, "doctor": _add_doctor,
                             "install-units": _add_install_units, "history": _add_history}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ci-sidecar`` console script."""
    args_in = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(args_in[0] if args_in else None)
    args = parser.parse_args(args_in)
    args.argv = args_in
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
