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
    if getattr(ns, "json", False):
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        sys.stdout.write(format_doctor(report))
    return 1 if report["errors"] else 0
