"""Soak: many runs through one daemon, then many clients at once; reports what grows.

1. ``--runs`` runs (default 1,000) of ``--results`` results each (default 1,000, sent in batches of
   ``--batch``), each created, reported and completed; the counts of every run are checked exactly.
   The daemon's resident memory (VmRSS) and open descriptors are sampled at 0, 25 %, 50 % and 100 % of
   the runs. Baseline: the sample after the first quarter (warm-up: imports, caches, the first
   checkpoint); growth is reported against it, and descriptors against the idle daemon.
2. ``--clients`` clients (default 64), each in its own thread with its own connection, report
   ``--requests`` batches of 10 results into their own run and into one shared run; latency per
   request, p50/p99. Baseline: one client doing the same alone against the same daemon. The shared
   run's count and every client's run are checked exactly.

    python bench/bench_soak.py [--runs 1000] [--results 1000] [--clients 64]

Goal (issue 15): descriptors flat, RSS growth < 10 MiB after warm-up, every count exact. Prints the
numbers and ratios; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "clients" / "python"))

from bench_clients import Daemon as _Daemon  # noqa: E402  (bench/ is on sys.path when run as a script)
from ci_sidecar_client import Client  # noqa: E402


def _results(n: int, start: int = 0, prefix: str = "t") -> list[dict[str, Any]]:
    return [{"name": f"{prefix}{i}", "suite": "soak", "classname": "soak.Case", "status": "passed",
             "duration": 0.001} for i in range(start, start + n)]


class Daemon(_Daemon):
    """One ``serve --socket`` for the whole soak, with its memory and descriptors."""

    def rss_mib(self) -> float:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))


def soak(d: Daemon, runs: int, per_run: int, batch: int) -> tuple[list[tuple[int, float, int]], int]:
    """Runs one after another; samples (runs done, RSS MiB, fds) at 0/25/50/100 %; returns mismatches."""
    marks = sorted({0, runs // 4, runs // 2, runs})
    samples: list[tuple[int, float, int]] = []
    wrong = 0
    with Client.connect(d.path) as c:
        for i in range(runs + 1):
            if i in marks:
                time.sleep(0.5)  # let debounced publications and the maintenance pass settle
                samples.append((i, d.rss_mib(), d.fds()))
                print(f"  {i:5} runs: RSS {samples[-1][1]:7.1f} MiB, {samples[-1][2]} fds", flush=True)
            if i == runs:
                break
            run = c.request("create_test_run", {"name": f"soak {i}"})["id"]
            for start in range(0, per_run, batch):
                c.request("report_results", {"test_run_id": run, "results": _results(min(batch, per_run - start), start)})
            done = c.request("complete_test_run", {"test_run_id": run})
            if done["counts"]["total"] != per_run or done["counts"]["passed"] != per_run:
                wrong += 1
    return samples, wrong


def _client_work(path: str, shared: str, requests: int, tag: str, lat: list[float], errors: list[str]) -> None:
    try:
        with Client.connect(path) as c:
            own = c.request("create_test_run", {"name": f"client {tag}"})["id"]
            for k in range(requests):
                for run in (own, shared):
                    t = time.perf_counter()
                    c.request("report_results", {"test_run_id": run, "results": _results(10, k * 10, f"{tag}-")})
                    lat.append(time.perf_counter() - t)
            got = c.request("complete_test_run", {"test_run_id": own})["counts"]["total"]
            if got != requests * 10:
                errors.append(f"client {tag}: {got} != {requests * 10}")
    except Exception as exc:  # noqa: BLE001 - reported, not raised: the other clients still count
        errors.append(f"client {tag}: {exc!r}")


def concurrent(d: Daemon, clients: int, requests: int) -> tuple[dict[str, float], list[str]]:
    with Client.connect(d.path) as c:
        shared = c.request("create_test_run", {"name": f"shared by {clients}"})["id"]
    lat: list[float] = []
    errors: list[str] = []
    threads = [threading.Thread(target=_client_work, args=(d.path, shared, requests, str(i), lat, errors))
               for i in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    with Client.connect(d.path) as c:
        got = c.request("complete_test_run", {"test_run_id": shared})["counts"]["total"]
    if got != clients * requests * 10:
        errors.append(f"shared run: {got} != {clients * requests * 10}")
    lat.sort()
    return {"p50_ms": statistics.median(lat) * 1e3, "p99_ms": lat[int(len(lat) * 0.99)] * 1e3,
            "requests_per_s": len(lat) / wall}, errors


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--results", type=int, default=1000, help="results per run")
    ap.add_argument("--batch", type=int, default=250, help="results per report_results request")
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--requests", type=int, default=50, help="report_results pairs per concurrent client")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="cbs", dir="/tmp"))  # short: Unix socket paths stay < 108 bytes
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "GITLAB_", "CI"))}
    env.update(CI_SIDECAR_OUTPUT_DIR=str(work / "out"),
               PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "clients" / "python")]))
    os.environ["CI_SIDECAR_OUTPUT_DIR"] = env["CI_SIDECAR_OUTPUT_DIR"]  # clients send their environment
    d = Daemon(work, env, "soak")
    try:
        print(f"soak: {args.runs} runs x {args.results} results (batches of {args.batch}), one client")
        t0 = time.perf_counter()
        samples, wrong = soak(d, args.runs, args.results, args.batch)
        soak_s = time.perf_counter() - t0
        print(f"concurrency: 1 client, then {args.clients} clients, {args.requests} x 2 report_results each")
        alone, errors_alone = concurrent(d, 1, args.requests)
        many, errors_many = concurrent(d, args.clients, args.requests)
        d.stop()
        code = d.proc.returncode
    finally:
        if d.proc.poll() is None:
            d.stop()
        shutil.rmtree(work, ignore_errors=True)

    idle_fds = samples[0][2]
    warm = samples[1] if len(samples) > 2 else samples[0]
    print()
    print(f"{'runs':>6} {'RSS MiB':>9} {'vs warm-up':>11} {'fds':>5} {'vs idle':>8}")
    for n, rss, fds in samples:
        print(f"{n:6} {rss:9.1f} {rss - warm[1]:+10.1f}M {fds:5} {fds - idle_fds:+8}")
    growth = samples[-1][1] - warm[1]
    print(f"RSS growth after warm-up ({warm[0]} runs): {growth:+.1f} MiB (goal < 10); ratio "
          f"{samples[-1][1] / warm[1]:.3f}; fds {samples[-1][2]} vs {idle_fds} idle (goal: flat)")
    print(f"soak: {args.runs * args.results / soak_s:,.0f} results/s; runs with a wrong count: {wrong}")
    print()
    print(f"{'clients':>8} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8} {'p50 x1':>7} {'p99 x1':>7}")
    for n, r in ((1, alone), (args.clients, many)):
        print(f"{n:8} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f} {r['requests_per_s']:8.0f} "
              f"{r['p50_ms'] / alone['p50_ms']:7.2f} {r['p99_ms'] / alone['p99_ms']:7.2f}")
    errors = errors_alone + errors_many
    print(f"counts: {'all exact' if not errors and not wrong else errors[:5]}; daemon exit code {code}")


if __name__ == "__main__":
    main()
