"""The ``ci-sidecar env`` and ``ci-sidecar doctor`` commands (stdout is theirs: they are not the daemon).

Both look at the calling shell's environment and working directory.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import msgspec

from ci_sidecar.cienv import detect
from ci_sidecar.cienv.report import doctor_report, format_doctor
from ci_sidecar.config import ConfigError, context_overrides, load_config, scm_hosts
from ci_sidecar.credentials import STANDARD_ENV, find_credentials, redact

__all__ = ["run_doctor", "run_env"]


def run_env(ns: argparse.Namespace, *, env: dict[str, str] | None = None, cwd: str | None = None) -> int:
    """Print the detected CIContext as JSON. Exit status 2 on invalid configuration.

    *env* and *cwd* default to the process's own (tests pass them explicitly).
    """
    env = dict(os.environ) if env is None else env
    cwd = os.getcwd() if cwd is None else cwd
    try:
        config = load_config(env=env, cwd=cwd, config_path=getattr(ns, "config", None)).config
        ctx = detect(env, cwd, context_overrides(config), hosts=scm_hosts(config))
    except (ConfigError, ValueError) as exc:
        sys.stderr.write(f"ci-sidecar env: {exc}\n")
        return 2
    text = msgspec.json.format(msgspec.json.encode(ctx), indent=2).decode()
    # The context holds no secrets by construction; redacting known tokens guards against one pasted
    # into a CI variable or a context override.
    secrets = [c.secret for p in STANDARD_ENV for c in find_credentials(p, env, config, env.get("CREDENTIALS_DIRECTORY"))]
    sys.stdout.write(redact(text, secrets) + "\n")
    return 0


def run_doctor(ns: argparse.Namespace, *, env: dict[str, str] | None = None, cwd: str | None = None) -> int:
    """Print the doctor report (``--json`` for machine output). Exit status 1 when it found errors."""
    env = dict(os.environ) if env is None else env
    cwd = os.getcwd() if cwd is None else cwd
    report = doctor_report(env, cwd, getattr(ns, "config", None))
    report["capabilities"] = _capabilities(env, cwd, getattr(ns, "config", None))
    report["paths"] = _paths(env, cwd, getattr(ns, "config", None))
    report["instances"] = _instances(env, cwd, getattr(ns, "config", None))
    check_failed = False
    if getattr(ns, "check", False) or getattr(ns, "write", False):
        from ci_sidecar.doctor_check import run_check  # network probes only when asked for

        report["check"] = run_check(env, cwd, getattr(ns, "config", None), write=getattr(ns, "write", False))
        check_failed = not report["check"]["ok"]
    if getattr(ns, "json", False):
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        sys.stdout.write(format_doctor(report))
        sys.stdout.write(_format_capabilities(report["capabilities"]))
        sys.stdout.write("\nPaths:\n" + "".join(f"  {k:11} {v}\n" for k, v in report["paths"].items()))
        sys.stdout.write(_format_instances(report["instances"]))
        if "check" in report:
            from ci_sidecar.doctor_check import format_check

            sys.stdout.write(format_check(report["check"]))
    return 1 if report["errors"] or check_failed else 0


def _paths(env: dict[str, str], cwd: str, config_path: str | None) -> dict[str, str]:
    """Where a daemon started here (``ci-sidecar serve``, ``exec``) would put its socket, state and output."""
    from ci_sidecar import paths
    from ci_sidecar.service.session_context import output_root

    try:
        config = load_config(env=env, cwd=cwd, config_path=config_path).config
    except (ConfigError, ValueError) as exc:
        return {"error": str(exc)}
    return {
        "output_dir": output_root(config, cwd, system_mode=False, state_dir=None),
        "socket": config.socket or paths.default_socket_path(env),
        "state_dir": config.state_dir or paths.state_dir(env=env),
    }


def _capabilities(env: dict[str, str], cwd: str, config_path: str | None) -> dict[str, object]:
    """Per role, how each operation would be carried (tiers), as a session here would get them."""
    from ci_sidecar.service.session_context import describe_roles

    try:
        config = load_config(env=env, cwd=cwd, config_path=config_path).config
        ctx = detect(env, cwd, context_overrides(config), hosts=scm_hosts(config))
        return {role: msgspec.to_builtins(caps) for role, caps in describe_roles(ctx, config, env, cwd).items()}
    except (ConfigError, ValueError) as exc:
        return {"error": str(exc)}


def _format_capabilities(caps: dict[str, object]) -> str:
    lines = ["", "Capabilities (how each operation would be carried):"]
    for role, value in caps.items():
        if not isinstance(value, dict):
            lines.append(f"  {role}: {value}")
            continue
        lines.append(f"  {role}: {value['provider']}")
        for op in ("test_run", "build_status", "pr_comment", "artifacts"):
            tier = value[op]
            extra = f" via {tier['via']}" if tier.get("via") else ""
            note = f" ({tier['note']})" if tier.get("note") else ""
            lines.append(f"    {op:13} {tier['kind']}{extra}{note}")
    return "\n".join(lines) + "\n"


def _instances(env: dict[str, str], cwd: str, config_path: str | None) -> dict[str, object]:
    """The daemon instances under the state root (live, adopted, orphaned) and their disk usage."""
    from ci_sidecar import paths
    from ci_sidecar.state.instances import survey

    try:
        configured = load_config(env=env, cwd=cwd, config_path=config_path).config.state_dir
    except ConfigError:
        configured = None  # reported with the rest of the configuration
    root = configured or paths.state_dir(None, env)
    return {"root": root, "instances": [i.as_dict() for i in survey(root)]}


def _format_instances(found: dict[str, object]) -> str:
    lines = ["", f"Daemon instances under {found['root']}:"]
    items = found["instances"]
    assert isinstance(items, list)
    if not items:
        lines.append("  none")
    for i in items:
        who = f"pid {i['pid']}" if i.get("pid") else "pid ?"
        if i.get("mode"):
            who += f", {i['mode']}"
        extra = {"adopted": f"; adopted by pid {i.get('adopted_by')}",
                 "orphaned": "; the next daemon started under this root " +
                             ("takes it over" if i["name"] == "main" else "adopts it")}.get(i["state"], "")
        lines.append(f"  {i['name']:30} {i['state']:9} ({who}){extra}; {i['bytes']} bytes")
    return "\n".join(lines) + "\n"
