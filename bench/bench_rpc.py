"""Round-trip latency and throughput of ``sidecar/status`` over a Unix socket and stdio, against two
baselines measured in the same run: the floor (trio + msgspec echo, same framing) and pygls.

    python bench/bench_rpc.py [--n 3000]

Also: cold start (spawn → initialize answered, median of 10) and idle RSS. Prints ratios; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


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


def measure(conn: Conn, n: int, initialize: bool) -> dict:
    if initialize:
        conn.send({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {}})
        conn.recv()
    req = {"jsonrpc": "2.0", "id": 1, "method": "sidecar/status", "params": {}}
    for _ in range(200):  # warm-up
        conn.send(req)
        conn.recv()
    lat = []
    t0 = time.perf_counter()
    for i in range(n):
        s = time.perf_counter()
        conn.send(req)
        conn.recv()
        lat.append(time.perf_counter() - s)
    seq_rps = n / (time.perf_counter() - t0)
    # 32 in flight
    t0 = time.perf_counter()
    inflight = 0
    sent = done = 0
    while done < n:
        while inflight < 32 and sent < n:
            conn.send({"jsonrpc": "2.0", "id": sent + 10, "method": "sidecar/status", "params": {}})
            sent += 1
            inflight += 1
        conn.recv()
        done += 1
        inflight -= 1
    par_rps = n / (time.perf_counter() - t0)
    lat.sort()
    return {"p50_us": lat[len(lat) // 2] * 1e6, "p99_us": lat[int(len(lat) * 0.99)] * 1e6,
            "seq_rps": seq_rps, "par32_rps": par_rps}


def env() -> dict:
    e = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "CI"))}
    e["CI_SIDECAR_STATE_DIR"] = tempfile.mkdtemp(prefix="cis-bench-")
    e["PYTHONPATH"] = str(ROOT)
    return e


def over_stdio(argv: list[str], n: int, initialize: bool) -> dict:
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env())
    try:
        return measure(Conn(p.stdout, p.stdin), n, initialize)
    finally:
        p.kill()
        p.wait()


def over_socket(argv_for: callable, n: int, initialize: bool) -> dict:
    d = tempfile.mkdtemp(prefix="cb", dir="/tmp")
    path = os.path.join(d, "s.sock")
    p = subprocess.Popen(argv_for(path), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, env=env())
    try:
        deadline = time.time() + 10
        s = socket.socket(socket.AF_UNIX)
        while True:
            try:
                s.connect(path)
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.02)
        return measure(Conn(s.makefile("rb"), s.makefile("wb")), n, initialize)
    finally:
        p.kill()
        p.wait()


def cold_start(runs: int = 10) -> tuple[float, float]:
    times = []
    rss = 0.0
    for _ in range(runs):
        t0 = time.perf_counter()
        p = subprocess.Popen([sys.executable, "-m", "ci_sidecar", "serve", "--stdio"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env())
        c = Conn(p.stdout, p.stdin)
        c.send({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {}})
        c.recv()
        times.append(time.perf_counter() - t0)
        time.sleep(0.2)
        with open(f"/proc/{p.pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    rss = max(rss, int(line.split()[1]) / 1024)
        p.kill()
        p.wait()
    return statistics.median(times) * 1000, rss


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=3000)
    args = ap.parse_args()
    py = sys.executable
    floor_srv = str(HERE / "_floor_server.py")
    rows = {
        "floor (trio+msgspec echo), socket": over_socket(lambda p: [py, floor_srv, "socket", p], args.n, False),
        "ci-sidecar, socket": over_socket(lambda p: [py, "-m", "ci_sidecar", "serve", "--socket", p], args.n, True),
        "floor (trio+msgspec echo), stdio": over_stdio([py, floor_srv, "stdio"], args.n, False),
        "ci-sidecar, stdio": over_stdio([py, "-m", "ci_sidecar", "serve", "--stdio"], args.n, True),
    }
    try:
        import pygls  # noqa: F401

        rows["pygls, stdio"] = over_stdio([py, floor_srv, "pygls"], args.n, True)
    except ImportError:
        print("(pygls not installed: pip install pygls==2.1.1 for that baseline)")
    print(f"{'server':40} {'p50 µs':>8} {'p99 µs':>8} {'seq req/s':>10} {'32-inflight req/s':>18}")
    for name, r in rows.items():
        print(f"{name:40} {r['p50_us']:8.0f} {r['p99_us']:8.0f} {r['seq_rps']:10.0f} {r['par32_rps']:18.0f}")
    for t in ("socket", "stdio"):
        f, s = rows[f"floor (trio+msgspec echo), {t}"], rows[f"ci-sidecar, {t}"]
        print(f"{t}: p50 ratio to floor {s['p50_us'] / f['p50_us']:.2f}x (goal <= 1.5x); "
              f"32-inflight ratio {s['par32_rps'] / f['par32_rps']:.2f}")
    if "pygls, stdio" in rows:
        g, s = rows["pygls, stdio"], rows["ci-sidecar, stdio"]
        print(f"stdio throughput vs pygls (32 in flight): {s['par32_rps'] / g['par32_rps']:.1f}x (goal >= 10x); "
              f"p50 {s['p50_us'] / g['p50_us']:.2f}x of pygls")
    ms, rss = cold_start()
    print(f"cold start (spawn -> initialize answered), median of 10: {ms:.0f} ms (goal < 300 ms); "
          f"idle RSS {rss:.1f} MiB (goal <= 60 MiB)")


if __name__ == "__main__":
    main()
