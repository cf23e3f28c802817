"""Round-trip latency, throughput and cold start of ci-sidecar against the floor, measured in one run.

The floor is a bare trio + msgspec echo server with the same LSP framing (``_floor_server.py``); pygls is a
second baseline when installed. Both servers run at the same time and are measured in alternating rounds
(sequential ``sidecar/status`` round trips, then 32 in flight), so a machine whose load changes during the
run shifts both sides alike; every round's ratio is printed, with the load average.

    python bench/bench_rpc.py [--n 3000] [--rounds 10] [--cold 10]

Cold start: spawn → ``initialize`` answered, floor and ci-sidecar spawned alternately. Also idle RSS.
Prints ratios; asserts nothing.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PY = sys.executable
FLOOR = str(HERE / "_floor_server.py")


def frame(obj: dict) -> bytes:
    body = json.dumps(obj).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


class Conn:
    """Blocking framed connection over a socket or a pair of pipes."""

    def __init__(self, rfile, wfile) -> None:
        self.r, self.w = rfile, wfile

    def send(self, obj: dict) -> None:
        self.w.write(frame(obj))
        self.w.flush()

    def recv(self) -> dict:
        length = 0
        while True:
            line = self.r.readline()
            if line in (b"\r\n", b""):
                break
            if line.lower().startswith(b"content-length"):
                length = int(line.split(b":")[1])
        return json.loads(self.r.read(length))


STATUS = {"jsonrpc": "2.0", "id": 1, "method": "sidecar/status", "params": {}}


def sequential(conn: Conn, n: int) -> list[float]:
    lat = []
    for _ in range(n):
        s = time.perf_counter()
        conn.send(STATUS)
        conn.recv()
        lat.append(time.perf_counter() - s)
    return lat


def in_flight(conn: Conn, n: int, depth: int = 32) -> float:
    """Requests per second with ``depth`` requests in flight."""
    t0 = time.perf_counter()
    inflight = sent = done = 0
    while done < n:
        while inflight < depth and sent < n:
            conn.send({"jsonrpc": "2.0", "id": sent + 10, "method": "sidecar/status", "params": {}})
            sent += 1
            inflight += 1
        conn.recv()
        done += 1
        inflight -= 1
    return n / (time.perf_counter() - t0)


def env() -> dict:
    e = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "CI"))}
    e["CI_SIDECAR_STATE_DIR"] = tempfile.mkdtemp(prefix="cis-bench-")
    e["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "clients" / "python")])
    return e


class Server:
    """One server process and a connection to it, initialized and warmed up."""

    def __init__(self, name: str, argv: list[str] | Callable[[str], list[str]], transport: str,
                 initialize: bool) -> None:
        self.name = name
        self.lat: list[float] = []
        self.rounds: list[tuple[float, float]] = []  # (p50 s, req/s with 32 in flight) per round
        if transport == "stdio":
            assert isinstance(argv, list)
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.DEVNULL, env=env())
            self.conn = Conn(self.proc.stdout, self.proc.stdin)
        else:
            path = os.path.join(tempfile.mkdtemp(prefix="cb", dir="/tmp"), "s.sock")
            assert callable(argv)
            self.proc = subprocess.Popen(argv(path), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL, env=env())
            s = socket.socket(socket.AF_UNIX)
            deadline = time.time() + 10
            while True:
                try:
                    s.connect(path)
                    break
                except OSError:
                    if time.time() > deadline:
                        raise
                    time.sleep(0.02)
            self.conn = Conn(s.makefile("rb"), s.makefile("wb"))
        if initialize:
            self.conn.send({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {}})
            self.conn.recv()
        sequential(self.conn, 300)  # warm-up

    def round(self, n: int) -> None:
        lat = sequential(self.conn, n)
        self.lat.extend(lat)
        self.rounds.append((statistics.median(lat), in_flight(self.conn, n)))

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def spawn_until_answer(argv: list[str]) -> tuple[float, float]:
    """Seconds from spawn to an answered ``initialize`` over stdio, and the process's RSS in MiB after it."""
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env())
    c = Conn(p.stdout, p.stdin)
    c.send({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {}})
    c.recv()
    took = time.perf_counter() - t0
    time.sleep(0.1)
    rss = 0.0
    with open(f"/proc/{p.pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
    p.kill()
    p.wait()
    return took, rss


def load() -> str:
    return "load average %.2f %.2f %.2f" % os.getloadavg()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=3000, help="requests per server (split over the rounds)")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--cold", type=int, default=10, help="cold starts per server")
    args = ap.parse_args()
    # an installed package has its bytecode compiled; a checkout run with PYTHONDONTWRITEBYTECODE would
    # otherwise compile ~100 modules at every start and measure the compiler, not the daemon
    compileall.compile_dir(str(ROOT / "ci_sidecar"), quiet=1)
    compileall.compile_dir(str(ROOT / "clients" / "python"), quiet=1)
    print(f"{os.cpu_count()} CPUs; {load()} at the start")
    per_round = max(1, args.n // args.rounds)
    pairs = [("socket", lambda p: [PY, FLOOR, "socket", p], lambda p: [PY, "-m", "ci_sidecar", "serve", "--socket", p]),
             ("stdio", [PY, FLOOR, "stdio"], [PY, "-m", "ci_sidecar", "serve", "--stdio"])]
    servers: dict[str, Server] = {}
    for transport, floor_argv, ours_argv in pairs:
        servers[f"floor, {transport}"] = Server(f"floor, {transport}", floor_argv, transport, False)
        servers[f"ci-sidecar, {transport}"] = Server(f"ci-sidecar, {transport}", ours_argv, transport, True)
    try:
        import pygls  # noqa: F401

        servers["pygls, stdio"] = Server("pygls, stdio", [PY, FLOOR, "pygls"], "stdio", True)
    except ImportError:
        print("(pygls not installed: pip install pygls==2.1.1 for that baseline)")
    try:
        for r in range(args.rounds):
            order = list(servers.values())
            for s in order if r % 2 == 0 else reversed(order):  # alternate who goes first
                s.round(per_round)
    finally:
        for s in servers.values():
            s.close()

    print(f"\n{'server':22} {'p50 µs':>8} {'p99 µs':>8} {'seq req/s':>10} {'32-inflight req/s':>18}")
    for name, s in servers.items():
        lat = sorted(s.lat)
        p50, p99 = lat[len(lat) // 2], lat[int(len(lat) * 0.99)]
        par = statistics.median(x[1] for x in s.rounds)
        print(f"{name:22} {p50 * 1e6:8.0f} {p99 * 1e6:8.0f} {1 / statistics.mean(lat):10.0f} {par:18.0f}")
    print()
    for transport in ("socket", "stdio"):
        f, o = servers[f"floor, {transport}"], servers[f"ci-sidecar, {transport}"]
        ratios = [b[0] / a[0] for a, b in zip(f.rounds, o.rounds)]
        tputs = [b[1] / a[1] for a, b in zip(f.rounds, o.rounds)]
        print(f"{transport}: round-trip p50 vs floor {statistics.median(ratios):.2f}x (goal <= 1.5x, stretch 1.2x); "
              f"per round " + " ".join(f"{x:.2f}" for x in ratios))
        print(f"{transport}: 32-in-flight throughput vs floor {statistics.median(tputs):.2f}x; "
              f"per round " + " ".join(f"{x:.2f}" for x in tputs))
    if "pygls, stdio" in servers:
        g, o = servers["pygls, stdio"], servers["ci-sidecar, stdio"]
        tput = statistics.median(b[1] / a[1] for a, b in zip(g.rounds, o.rounds))
        print(f"stdio: 32-in-flight throughput vs pygls {tput:.1f}x (goal >= 10x)")

    cold: dict[str, list[float]] = {"floor": [], "ci-sidecar": []}
    rss = 0.0
    for i in range(args.cold):
        for who in (("floor", "ci-sidecar") if i % 2 == 0 else ("ci-sidecar", "floor")):
            argv = [PY, FLOOR, "stdio"] if who == "floor" else [PY, "-m", "ci_sidecar", "serve", "--stdio"]
            took, mib = spawn_until_answer(argv)
            cold[who].append(took)
            if who == "ci-sidecar":
                rss = max(rss, mib)
    f_ms, o_ms = (statistics.median(cold[k]) * 1000 for k in ("floor", "ci-sidecar"))
    print(f"cold start (spawn -> initialize answered, median of {args.cold}): ci-sidecar {o_ms:.0f} ms, "
          f"floor {f_ms:.0f} ms: {o_ms / f_ms:.2f}x the floor (goal <= 250 ms); "
          f"idle RSS {rss:.1f} MiB (goal <= 60 MiB)")
    print(f"{load()} at the end")


if __name__ == "__main__":
    main()
