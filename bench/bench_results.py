"""``report_results`` throughput for a million realistic results, memory at the end, and restart time.

    python bench/bench_results.py [--results 1000000] [--batch 1000]

Baseline, measured in the same run: the same framed request bodies sent to a trio + msgspec echo
server (what transport, framing and JSON alone cost). Prints ratios; asserts nothing.
Goals (issue 4): >= 100,000 results/s, daemon RSS <= 400 MiB at the end, restart <= 3 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgspec

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
encode = msgspec.json.encode
decode = msgspec.json.decode


def batch_body(run_id: str, b: int, size: int, rid: int) -> bytes:
    results = [{
        "name": f"test_payment_gateway_handles_declined_card_with_retry_{b:05d}_{i:04d}",  # ~60 chars
        "suite": f"integration.payments.suite_{b % 50:02d}",
        "classname": "tests.integration.payments.TestGateway",
        "file": f"tests/integration/payments/test_gateway_{b % 50:02d}.py",
        "line": 10 + i,
        "status": "failed" if i % 97 == 0 else ("skipped" if i % 31 == 0 else "passed"),
        "duration": (i % 50) * 0.013,
        **({"message": "AssertionError: expected 402, got 500"} if i % 97 == 0 else {}),
    } for i in range(size)]
    body = encode({"jsonrpc": "2.0", "id": rid, "method": "report_results",
                   "params": {"test_run_id": run_id, "results": results}})
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


class Conn:
    def __init__(self, path: str) -> None:
        self.s = socket.socket(socket.AF_UNIX)
        deadline = time.time() + 15
        while True:
            try:
                self.s.connect(path)
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.02)
        self.r = self.s.makefile("rb")

    def send(self, data: bytes) -> None:
        self.s.sendall(data)

    def call(self, method: str, params: dict, rid: int = 1) -> dict:
        body = encode({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
        self.send(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        return self.recv()

    def recv(self) -> dict:
        length = 0
        while True:
            line = self.r.readline()
            if line in (b"\r\n", b""):
                break
            if line.lower().startswith(b"content-length"):
                length = int(line.split(b":")[1])
        return decode(self.r.read(length))


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def pump(conn: Conn, run_id: str, total: int, size: int, inflight: int = 4) -> float:
    sent = done = 0
    t0 = time.perf_counter()
    nbatches = total // size
    while done < nbatches:
        while sent < nbatches and sent - done < inflight:
            conn.send(batch_body(run_id, sent, size, sent + 10))
            sent += 1
        reply = conn.recv()
        if "error" in reply:
            raise RuntimeError(reply["error"])
        done += 1
    return time.perf_counter() - t0


def start(argv: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=1000)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="cbr", dir="/tmp")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "CI"))}
    env.update(CI_SIDECAR_STATE_DIR=os.path.join(work, "state"), PYTHONPATH=str(ROOT))
    py = sys.executable
    try:
        # baseline: same bodies to the echo floor
        floor_path = os.path.join(work, "f.sock")
        floor = start([py, str(HERE / "_floor_server.py"), "socket", floor_path], env)
        base_s = pump(Conn(floor_path), "x", args.results, args.batch)
        floor.kill()
        floor.wait()

        path = os.path.join(work, "d.sock")
        daemon = start([py, "-m", "ci_sidecar", "serve", "--socket", path], env)
        conn = Conn(path)
        conn.call("initialize", {"cwd": work, "env": {}}, rid=0)
        run_id = conn.call("create_test_run", {"name": "bench"})["result"]["id"]
        rss_before = rss_mib(daemon.pid)
        took = pump(conn, run_id, args.results, args.batch)
        rss_after = rss_mib(daemon.pid)
        counts = conn.call("get_test_run_status", {"test_run_id": run_id})["result"]["counts"]
        assert counts["total"] == args.results, counts
        rate = args.results / took
        print(f"report_results: {args.results:,} results in batches of {args.batch}: {took:.2f} s = {rate:,.0f} results/s "
              f"(goal >= 100,000)")
        print(f"baseline (same bodies to a trio+msgspec echo): {base_s:.2f} s = {args.results / base_s:,.0f}/s; "
              f"ci-sidecar takes {took / base_s:.2f}x the baseline time")
        print(f"daemon RSS: {rss_before:.0f} MiB before, {rss_after:.0f} MiB after (goal <= 400 MiB)")

        # restart: kill -9 (no final checkpoint), then time spawn -> initialize -> status answered
        daemon.kill()
        daemon.wait()
        t0 = time.perf_counter()
        daemon = start([py, "-m", "ci_sidecar", "serve", "--socket", path], env)
        conn = Conn(path)
        conn.call("initialize", {"cwd": work, "env": {}}, rid=0)
        after = conn.call("get_test_run_status", {"test_run_id": run_id})["result"]["counts"]
        restart = time.perf_counter() - t0
        assert after["total"] == args.results, after
        print(f"restart after kill -9 with {args.results:,} results persisted: {restart:.2f} s (goal <= 3 s), "
              f"RSS {rss_mib(daemon.pid):.0f} MiB")
        # and after a clean stop (final checkpoint): the fast path
        daemon.terminate()
        daemon.wait()
        t0 = time.perf_counter()
        daemon = start([py, "-m", "ci_sidecar", "serve", "--socket", path], env)
        conn = Conn(path)
        conn.call("initialize", {"cwd": work, "env": {}}, rid=0)
        conn.call("get_test_run_status", {"test_run_id": run_id})
        print(f"restart after a clean stop (snapshot): {time.perf_counter() - t0:.2f} s")
        daemon.terminate()
        daemon.wait()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
