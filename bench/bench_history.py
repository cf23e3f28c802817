"""Recording a 100,000-test run in a history of 1,000 runs, and how responsive the daemon stays meanwhile.

    python bench/bench_history.py [--tests 100000] [--runs 1000] [--big-runs 10]

The history is prepared directly in the database: ``--big-runs`` earlier runs of the same suite on main with
every test (a few flipping), the rest smaller runs of other suites. Then, measured:

1. in-process: ``RunHistory.record`` of a new 100,000-test run (delta + flaky scores + retention), while a trio
   task measures how late the event loop wakes a 1 ms sleeper, against the same sleeper on an idle loop;
2. the real daemon: ``complete_test_run`` of a 100,000-test run with history, against the same run with
   ``[history] enabled = false``; meanwhile a second client times ``sidecar/status`` round trips, against
   round trips on the idle daemon in the same run.

Goal (issue 22): the ingest under 2 s, the daemon responsive meanwhile. Prints ratios; asserts nothing.
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

import trio

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_results import Conn, pump, start  # noqa: E402

from ci_sidecar.protocol.records import TestResult  # noqa: E402
from ci_sidecar.service.history import HistorySettings, RunHistory, collect_outcomes  # noqa: E402
from ci_sidecar.state.history import HISTORY_FILE, HistoryRun, HistoryStore, TestOutcome  # noqa: E402


def _names(n: int, size: int = 1000) -> list[TestResult]:
    """The tests bench_results.batch_body sends (same identities), all passing."""
    return [TestResult(name=f"test_payment_gateway_handles_declined_card_with_retry_{b:05d}_{i:04d}",
                       suite=f"integration.payments.suite_{b % 50:02d}",
                       classname="tests.integration.payments.TestGateway", status="passed", duration=0.01)
            for b in range(n // size) for i in range(size)]


def _run(run_id: str, name: str, total: int, finished: float) -> HistoryRun:
    return HistoryRun(run_id=run_id, name=name, repository=None, branch="main", target_branch=None, pr_number=None,
                      commit_sha=None, build_id=None, conclusion="success", finished=finished, end_time=None,
                      total=total, failed=0)


def prepare(db_path: Path, tests: int, runs: int, big: int) -> None:
    base = collect_outcomes(_names(tests))
    store = HistoryStore(db_path)
    now = time.time() - runs
    try:
        small = [TestOutcome(key=i + 1, suite="other", classname="Small", name=f"t{i}", status=0, duration=0.01)
                 for i in range(1000)]
        for r in range(runs - big):
            store.add_run(_run(f"small{r}", f"suite{r % 7}", 1000, now + r), small, window=20)
        for r in range(big):
            flipped = [TestOutcome(t.key, t.suite, t.classname, t.name, 1 if (i + r) % 997 == 0 else 0, t.duration)
                       for i, t in enumerate(base)]
            store.add_run(_run(f"big{r}", "bench", tests, now + runs - big + r), flipped, window=20)
    finally:
        store.close()


def in_process(db_dir: Path, tests: int) -> tuple[float, list[float], list[float]]:
    results = _names(tests)
    for i in range(0, len(results), 1013):
        results[i] = TestResult(name=results[i].name, suite=results[i].suite, classname=results[i].classname,
                                status="failed", duration=0.01)
    history = RunHistory(db_dir, HistorySettings())

    async def lateness(samples: list[float], stop: trio.Event) -> None:
        while not stop.is_set():
            t0 = time.perf_counter()
            await trio.sleep(0.001)
            samples.append(time.perf_counter() - t0 - 0.001)

    cpu = [0.0]

    async def main() -> tuple[float, list[float], list[float]]:
        idle: list[float] = []
        busy: list[float] = []
        async with trio.open_nursery() as n:
            stop = trio.Event()
            n.start_soon(lateness, idle, stop)
            await trio.sleep(1.0)
            stop.set()
        async with trio.open_nursery() as n:
            stop = trio.Event()
            n.start_soon(lateness, busy, stop)
            t0, cpu0 = time.perf_counter(), time.process_time()
            delta = await history.record(_run("new", "bench", tests, time.time()), lambda: results)
            took = time.perf_counter() - t0
            cpu[0] = time.process_time() - cpu0
            stop.set()
        assert delta is not None and delta.base is not None, "no delta"
        await history.aclose()
        return took, idle, busy

    took, idle, busy = trio.run(main)
    print(f"  CPU time of the process while recording: {cpu[0]:.2f} s (the wall time above includes waiting for a "
          f"CPU on a loaded machine: load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    return took, idle, busy


def pings(path: str, out: list[float], stop: threading.Event) -> None:
    conn = Conn(path)
    conn.call("initialize", {"cwd": "/", "env": {}}, rid=0)
    rid = 1
    while not stop.is_set():
        t0 = time.perf_counter()
        conn.call("sidecar/status", {}, rid=rid)
        out.append(time.perf_counter() - t0)
        rid += 1
        time.sleep(0.002)


def daemon_round(work: Path, state: Path, tests: int, history: bool) -> tuple[float, list[float], list[float]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "CI"))}
    python_path = os.pathsep.join([str(HERE.parent), str(HERE.parent / "clients" / "python"), env.get("PYTHONPATH", "")])
    env.update(CI_SIDECAR_STATE_DIR=str(state), PYTHONPATH=python_path,
               CI_SIDECAR_HISTORY_ENABLED="true" if history else "false", CI_SIDECAR_OUTPUT_DIR=str(work / "out"))
    path = str(work / ("h.sock" if history else "n.sock"))
    daemon = start([sys.executable, "-m", "ci_sidecar", "serve", "--socket", path], env)
    try:
        conn = Conn(path)
        conn.call("initialize", {"cwd": str(work), "env": {}}, rid=0)
        run_id = conn.call("create_test_run", {"name": "bench", "branch": "main"})["result"]["id"]
        pump(conn, run_id, tests, 1000)
        idle: list[float] = []
        busy: list[float] = []
        stop = threading.Event()
        pinger = threading.Thread(target=pings, args=(path, idle, stop))
        pinger.start()
        time.sleep(1.0)
        stop.set()
        pinger.join()
        stop = threading.Event()
        pinger = threading.Thread(target=pings, args=(path, busy, stop))
        pinger.start()
        time.sleep(0.2)
        t0 = time.perf_counter()
        done = conn.call("complete_test_run", {"test_run_id": run_id}, rid=99)
        took = time.perf_counter() - t0
        stop.set()
        pinger.join()
        if "error" in done:
            raise RuntimeError(done["error"])
        if history and "delta" not in done["result"]:
            raise RuntimeError("the completed run has no delta")
        conn.call("sidecar/stop", {}, rid=100)
        daemon.wait(30)
        return took, idle, busy
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()


def _p(samples: list[float], q: float) -> float:
    if not samples:
        return float("nan")
    return statistics.quantiles(samples, n=100)[int(q) - 1] if len(samples) > 2 else max(samples)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tests", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--big-runs", type=int, default=10)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cbh", dir="/tmp"))
    try:
        state = work / "state"
        state.mkdir(mode=0o700)
        t0 = time.perf_counter()
        prepare(state / HISTORY_FILE, args.tests, args.runs, args.big_runs)
        print(f"history prepared: {args.runs} runs ({args.big_runs} of {args.tests:,} tests) in "
              f"{time.perf_counter() - t0:.1f} s, {os.path.getsize(state / HISTORY_FILE) / 2**20:.0f} MiB")
        copy = work / "copy"
        copy.mkdir()
        shutil.copy(state / HISTORY_FILE, copy / HISTORY_FILE)

        took, idle, busy = in_process(copy, args.tests)
        print(f"in-process RunHistory.record of {args.tests:,} tests: {took:.2f} s (goal < 2 s)")
        print(f"  event-loop lateness of a 1 ms sleeper: p50 {_p(idle, 50) * 1e3:.2f} ms idle, "
              f"{_p(busy, 50) * 1e3:.2f} ms while recording (ratio {_p(busy, 50) / max(_p(idle, 50), 1e-6):.1f}x); "
              f"p99 {_p(idle, 99) * 1e3:.2f} ms idle, {_p(busy, 99) * 1e3:.2f} ms recording; "
              f"max {max(busy) * 1e3:.1f} ms")

        without, idle0, busy0 = daemon_round(work, work / "state-nohistory", args.tests, history=False)
        with_history, idle1, busy1 = daemon_round(work, state, args.tests, history=True)
        print(f"daemon complete_test_run of {args.tests:,} tests: {with_history:.2f} s with history, "
              f"{without:.2f} s without (history adds {with_history - without:.2f} s)")
        print(f"  sidecar/status round trip while completing: p50 {_p(busy1, 50) * 1e3:.2f} ms, p99 "
              f"{_p(busy1, 99) * 1e3:.2f} ms, max {max(busy1, default=0) * 1e3:.1f} ms over {len(busy1)} calls; "
              f"idle p50 {_p(idle1, 50) * 1e3:.2f} ms, p99 {_p(idle1, 99) * 1e3:.2f} ms")
        print(f"  responsiveness ratio (busy/idle): p50 {_p(busy1, 50) / _p(idle1, 50):.1f}x, "
              f"p99 {_p(busy1, 99) / _p(idle1, 99):.1f}x; without history: p50 {_p(busy0, 50) / _p(idle0, 50):.1f}x, "
              f"p99 {_p(busy0, 99) / _p(idle0, 99):.1f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
