"""``ci-sidecar merge`` — fan-in without an object store: one run from many shards' outputs.

A final CI job downloads every shard's output (the ``results.json`` each run leaves in its output folder, or the
JUnit files the shards wrote) and publishes them as **one** run: one check run, one conclusion. Arguments are
folders (searched for ``results.json`` and ``*.xml``) or globs. Tests are keyed as everywhere
(``suite``, ``classname``, ``name``): a test reported by two shards counts once, with its latest attempt.

Exit status: 0 when the merged run passed (or had no tests), 1 when a test failed, 2 when no input was found or
no daemon could be used.
"""

from __future__ import annotations

import argparse
import glob
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec

from ci_sidecar.exec_cmd import _flush_timeout, _open_sidecar, _summary
from ci_sidecar.exec_delivery import say as _say
from ci_sidecar.exec_signals import SignalGate
from ci_sidecar.protocol.records import Counts, TestResult
from ci_sidecar.protocol.shards import ShardReport
from ci_sidecar.reports.shards import shards_text
from ci_sidecar_client import ConnectionLost, DaemonNotFound, RpcError

__all__ = ["add_merge_command", "run_merge", "find_inputs", "shard_rows"]

_BATCH = 1000
#: bytes of results per report_results (well under the daemon's 16 MiB message limit)
_BATCH_BYTES = 4 * 1024 * 1024
#: one result bigger than this cannot travel in one message at all
_MAX_RESULT_BYTES = 12 * 1024 * 1024
_encode = msgspec.json.Encoder().encode


def add_merge_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("merge", help="publish one run from many shards' results.json / JUnit files (fan-in)")
    p.add_argument("inputs", nargs="+", metavar="DIR|GLOB",
                   help="shard outputs: folders (searched for results.json and *.xml) or globs of files")
    p.add_argument("--name", help="run name (default: the first results.json's run name)")
    p.add_argument("--wait-s", type=float, default=None,
                   help="how long to wait for the run's delivery (default: flush_timeout_s, 60 s)")
    p.add_argument("--private", action="store_true", help="always start a daemon of our own")
    p.set_defaults(func=run_merge)


def _glob_base(pattern: str) -> Path:
    """The folder a glob cannot leave: its leading parts without a wildcard."""
    parts = Path(pattern).parts
    literal: list[str] = []
    for part in parts[:-1]:
        if glob.has_magic(part):
            break
        literal.append(part)
    return Path(*literal) if literal else Path(".")


def find_inputs(inputs: list[str], outside: list[str] | None = None) -> tuple[list[Path], list[Path]]:
    """(results.json files, JUnit files) named by the arguments, each once, in a stable order. In a folder, XML
    files in or under a folder holding a results.json are that run's own reports, not inputs. A file that is a
    link leading out of its argument's folder (a downloaded shard output can hold anything) is not an input:
    its path goes to ``outside``."""
    results: dict[Path, None] = {}
    junit: dict[Path, None] = {}

    def inside(found: Path, base: Path) -> Path | None:
        real = found.resolve()
        if real == base or base in real.parents:
            return real
        if outside is not None:
            outside.append(str(found))
        return None

    for arg in inputs:
        if Path(arg).is_dir():
            base = Path(arg).resolve()
            found = sorted(f for f in (inside(p, base) for p in Path(arg).rglob("results.json")) if f)
            owned = {p.parent for p in found}
            results.update(dict.fromkeys(found))
            xml = (inside(x, base) for x in sorted(Path(arg).rglob("*.xml")))
            junit.update(dict.fromkeys(x for x in xml if x and not owned.intersection(x.parents)))
            continue
        base = _glob_base(arg).resolve()
        for match in sorted(glob.glob(arg, recursive=True)):
            if not (Path(match).name == "results.json" or Path(match).suffix == ".xml"):
                continue
            f = inside(Path(match), base)
            if f is not None and f.is_file():
                (results if f.name == "results.json" else junit)[f] = None
    return list(results), list(junit)


def _results_of(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """(run, results) of one results.json, checked as the daemon would check them (a ValueError naming the file
    and the place otherwise, before anything is sent); a sharded group's merged run (``group-…``) counts nothing:
    its shards' own outputs hold its results."""
    try:
        doc = json.loads(path.read_bytes())
    except ValueError as exc:
        raise ValueError(f"{path}: not JSON ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("results"), list):
        raise ValueError(f"{path}: not a ci-sidecar results.json (no results array)")
    run = doc.get("run") or {}
    if not isinstance(run, dict):
        raise ValueError(f"{path}: not a ci-sidecar results.json (its run is not an object)")
    for where, value, kind in (("run.counts", run.get("counts") or {}, Counts),
                               ("results", doc["results"], list[TestResult])):
        try:
            msgspec.convert(value, kind)
        except msgspec.ValidationError as exc:
            reason, _, at = str(exc).partition(" - at `$")
            raise ValueError(f"{path}: {where}{at.rstrip('`')}: {reason}") from None
    for n, item in enumerate(doc["results"]):
        if len(_encode(item)) > _MAX_RESULT_BYTES:
            raise ValueError(f"{path}: result {n} ({item.get('name')!r}) is over {_MAX_RESULT_BYTES >> 20} MiB, "
                             "more than one message to the daemon may carry")
    if str(run.get("id", "")).startswith("group-"):
        return None
    return run, doc["results"]


def _batches(items: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """``items`` cut into report_results batches of at most ``_BATCH`` results and about ``_BATCH_BYTES``."""
    out: list[list[dict[str, Any]]] = [[]]
    size = 0
    for item in items:
        n = len(_encode(item))
        if out[-1] and (len(out[-1]) >= _BATCH or size + n > _BATCH_BYTES):
            out.append([])
            size = 0
        out[-1].append(item)
        size += n
    return [b for b in out if b]


def _wall(iso: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(iso).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def shard_rows(runs: list[tuple[Path, dict[str, Any]]]) -> list[dict[str, Any]]:
    """One row per shard output (numbered in input order): its state, duration and counts, for the merged run's
    shards section (the daemon adds the slowest shard and the balance hint)."""
    rows = []
    for n, (_path, run) in enumerate(runs):
        counts = msgspec.convert(run.get("counts") or {}, Counts)
        start, end = _wall(run.get("start_time")), _wall(run.get("end_time"))
        row: dict[str, Any] = {"shard": n, "status": "finished" if run.get("status") == "finished" else "running",
                               "total": counts.total, "passed": counts.passed,
                               "failed": counts.failed + counts.errors, "skipped": counts.skipped}
        if start is not None and end is not None:
            row["duration"] = round(max(0.0, end - start), 3)
        rows.append(row)
    return rows


def run_merge(args: argparse.Namespace) -> int:
    outside: list[str] = []
    try:
        results, junit = find_inputs(args.inputs, outside)
        for path in outside:
            _say(f"skipped {path}: a link leading out of the folder it was found in")
        read = {p: _results_of(p) for p in results}
        loaded = [got for got in read.values() if got is not None]
        results = [p for p, got in read.items() if got is not None]
        runs = [(p, got[0]) for p, got in read.items() if got is not None]
    except (OSError, ValueError) as exc:
        _say(f"cannot read the shard outputs: {exc}")
        return 2
    if not results and not junit:
        _say(f"no results.json or JUnit (*.xml) files in {' '.join(args.inputs)}")
        return 2
    name = args.name or next((r.get("name") for r, _ in loaded if r.get("name")), None) or "merged run"
    flush_s = _flush_timeout(args)
    with SignalGate(_say) as gate:
        try:
            client, _socket, daemon = _open_sidecar(args, flush_s, gate)
        except (DaemonNotFound, ConnectionLost, RpcError, OSError) as exc:
            _say(f"no ci-sidecar daemon could be started or reached: {exc}")
            return 2
        try:
            create: dict[str, Any] = {"name": name}
            if runs:
                create["shards"] = shard_rows(runs)
            run_id = client.request("create_test_run", create)["id"]
            for _, items in loaded:
                for batch in _batches(items):
                    client.request("report_results", {"test_run_id": run_id, "results": batch})
            for path in junit:
                got = client.request("ingest_junit", {"test_run_id": run_id, "path": str(path)})
                for err in got["errors"]:
                    _say(f"JUnit problem in {err['file']}: {err['message']}")
            done = client.request("complete_test_run", {"test_run_id": run_id, "wait": True, "wait_s": flush_s})
            _say(f"merged {len(results)} results.json and {len(junit)} JUnit file(s)")
            if done.get("shards"):
                # its first lines are the shards' rows, in input order: each names its output
                for n, line in enumerate(shards_text(msgspec.convert(done["shards"], ShardReport))):
                    _say(f"{line} ({runs[n][0]})" if n < len(runs) else line)
            _summary(done)
        except RpcError as exc:
            _say(f"merge failed: {exc.message}")
            return 2
        except ConnectionLost as exc:
            _say(f"merge failed: the daemon went away: {exc}")
            return 2
        finally:
            client.close(timeout=max(2.0, flush_s))
            if daemon is not None:
                daemon.stop()
    return 1 if done["conclusion"] == "failure" else 0
