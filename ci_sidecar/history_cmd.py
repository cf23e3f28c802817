"""``ci-sidecar history <test or suite>``: a test's (or a suite's) recent outcomes and durations.

Reads the history database under the state root read-only, so it works beside a running daemon (and
without one). One matching test: a line per run. Several (a suite, a class, a substring): a line per run
with the matching tests' counts and total duration.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_history_command", "history_rows"]

_STATUS = ("passed", "failed", "error", "skipped", "flaky")


def add_history_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("history", help="a test's or suite's recent outcomes and durations (from the run history)")
    p.add_argument("test", help="test name, classname.name, class or suite (exact, else a substring)")
    p.add_argument("--limit", type=int, default=20, metavar="N", help="runs shown (default 20)")
    p.add_argument("--branch", help="only runs of this branch")
    p.add_argument("--state-dir", metavar="DIR", help="state root (default: as the daemon finds it)")
    p.add_argument("--config", metavar="PATH", help="configuration file (TOML)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_history)


def _state_root(args: argparse.Namespace) -> str:
    from ci_sidecar import paths
    from ci_sidecar.config import load_config

    if args.state_dir:
        return str(args.state_dir)
    configured = load_config(env=os.environ, cwd=os.getcwd(), config_path=args.config).config.state_dir
    return configured or paths.state_dir(None, os.environ)


def history_rows(db_path: Path, pattern: str, limit: int, branch: str | None) -> dict[str, Any]:
    """``{tests: [name], runs: [{run_id, name, branch, commit_sha, end_time, conclusion, status?, duration,
    counts?}]}``, newest run first (blocking)."""
    from ci_sidecar.service.history import label
    from ci_sidecar.state.history import HistoryStore

    store = HistoryStore(db_path, readonly=True)
    try:
        found = store.find_tests(pattern)
        tests = [label(suite, cls, name) for _k, suite, cls, name in found]
        runs: dict[str, dict[str, Any]] = {}
        if found:
            for run_id, run_name, run_branch, sha, end_time, conclusion, _test, status, duration in store.outcomes(
                    [k for k, *_ in found], limit, branch):
                row = runs.setdefault(run_id, {
                    "run_id": run_id, "name": run_name, "branch": run_branch, "commit_sha": sha,
                    "end_time": end_time, "conclusion": conclusion, "duration": 0.0,
                    "counts": dict.fromkeys(_STATUS, 0)})
                row["counts"][_STATUS[status]] += 1
                row["duration"] += duration or 0.0
                if len(found) == 1:
                    row["status"] = _STATUS[status]
    finally:
        store.close()
    return {"tests": tests, "runs": list(runs.values())}


def _shown(text: str) -> str:
    """``text`` safe for a terminal: test names, branches and commits come from the code under test and its
    clients, and a control character (an escape sequence) in one must not drive the terminal that prints it."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" if ord(c) < 256 else f"\\u{ord(c):04x}"
                   for c in text)


def _format(found: dict[str, Any], pattern: str) -> str:
    tests = found["tests"]
    if not tests:
        return f"no test matching {pattern!r} in the history\n"
    single = len(tests) == 1
    head = _shown(tests[0]) if single else f"{len(tests)} tests matching {pattern!r}"
    lines = [head, ""]
    for r in found["runs"]:
        when = _shown((r["end_time"] or "")[:19].replace("T", " "))
        sha = _shown((r["commit_sha"] or "")[:12])
        what = r["status"] if single else " ".join(f"{n} {k}" for k, n in r["counts"].items() if n)
        lines.append(f"{when:19}  {_shown(r['branch'] or '-'):20} {sha:12}  {what:28} {r['duration']:9.3f} s")
    if not found["runs"]:
        lines.append("(no recorded runs)")
    return "\n".join(lines) + "\n"


def _cmd_history(args: argparse.Namespace) -> int:
    from ci_sidecar.state.history import HISTORY_FILE

    db = Path(_state_root(args)) / HISTORY_FILE
    if not db.exists():
        sys.stderr.write(f"ci-sidecar history: no run history at {db} (the daemon records every finished run there)\n")
        return 1
    try:
        found = history_rows(db, args.test, max(1, args.limit), args.branch)
    except (sqlite3.Error, OSError) as exc:  # damaged, not a database, unreadable, locked past the busy timeout
        sys.stderr.write(f"ci-sidecar history: cannot read the run history at {db}: {exc}\n")
        return 2
    if args.json:
        sys.stdout.write(json.dumps(found, indent=2) + "\n")
    else:
        sys.stdout.write(_format(found, args.test))
    return 0 if found["tests"] else 1
