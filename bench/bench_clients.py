"""The client libraries against a raw socket, measured in the same run against one daemon:

* ``sidecar/status`` round trips, one at a time: p50 and p99 latency;
* ``report_results`` throughput: one result per request, and batches of 100.

Clients: the raw-socket Python baseline (hand-written framing, no client), the Python client
(clients/python), the Node client (clients/node, via ``node``) and the Go client (clients/go, a tiny
main built with ``go build`` in a temp dir). A missing toolchain is reported and skipped.

    python bench/bench_clients.py [--n 2000] [--results 2000] [--rounds 3]

Prints one row per client and its ratio to the raw baseline; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "clients" / "python"))

from ci_sidecar_client import Client  # noqa: E402


def _result(i: int) -> dict[str, Any]:
    return {"name": f"test_{i}", "suite": "bench", "classname": "bench.Case", "status": "passed",
            "duration": 0.001, "file": "bench/test_x.py", "line": 10}


def _summary(lat: list[float], one: float, batched: float) -> dict[str, float]:
    lat.sort()
    return {"p50_us": statistics.median(lat) * 1e6, "p99_us": lat[int(len(lat) * 0.99)] * 1e6,
            "one_by_one_rps": one, "batch100_rps": batched}


# --- raw socket baseline --------------------------------------------------------------------------

class Raw:
    """Hand-written LSP framing over a blocking socket: the floor any client adds to."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(path)
        self.r = self.sock.makefile("rb")
        self.id = 0

    def call(self, method: str, params: Any) -> Any:
        self.id += 1
        body = json.dumps({"jsonrpc": "2.0", "id": self.id, "method": method, "params": params}).encode()
        self.sock.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        length = 0
        while True:
            line = self.r.readline()
            if line in (b"\r\n", b""):
                break
            if line.lower().startswith(b"content-length"):
                length = int(line.split(b":")[1])
        return json.loads(self.r.read(length))["result"]


def bench_python(call: Any, n: int, results: int) -> dict[str, float]:
    for _ in range(200):
        call("sidecar/status", {})
    lat = []
    for _ in range(n):
        t = time.perf_counter()
        call("sidecar/status", {})
        lat.append(time.perf_counter() - t)
    run = call("create_test_run", {"name": "bench one"})["id"]
    t = time.perf_counter()
    for i in range(results):
        call("report_results", {"test_run_id": run, "results": [_result(i)]})
    one = results / (time.perf_counter() - t)
    run = call("create_test_run", {"name": "bench batch"})["id"]
    t = time.perf_counter()
    for i in range(0, results, 100):
        call("report_results", {"test_run_id": run, "results": [_result(j) for j in range(i, min(i + 100, results))]})
    batched = results / (time.perf_counter() - t)
    return _summary(lat, one, batched)


def raw_baseline(path: str, n: int, results: int) -> dict[str, float]:
    raw = Raw(path)
    raw.call("initialize", {"processId": None, "cwd": os.getcwd(), "env": dict(os.environ)})
    try:
        return bench_python(raw.call, n, results)
    finally:
        raw.sock.close()


def python_client(path: str, n: int, results: int) -> dict[str, float]:
    with Client.connect(path) as c:
        return bench_python(c.request, n, results)


# --- Node and Go: the same loop in their language, printing one JSON line ---------------------------

NODE_MAIN = r"""
import { Client } from %(index)s;
const [path, n, results] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
const now = () => Number(process.hrtime.bigint()) / 1e9;
const item = (i) => ({name: `test_${i}`, suite: 'bench', classname: 'bench.Case', status: 'passed',
                      duration: 0.001, file: 'bench/test_x.py', line: 10});
const c = await Client.connect({ path });
for (let i = 0; i < 200; i++) await c.request('sidecar/status', {});
const lat = [];
for (let i = 0; i < n; i++) { const t = now(); await c.request('sidecar/status', {}); lat.push(now() - t); }
let run = (await c.request('create_test_run', {name: 'bench one'})).id;
let t = now();
for (let i = 0; i < results; i++) await c.request('report_results', {test_run_id: run, results: [item(i)]});
const one = results / (now() - t);
run = (await c.request('create_test_run', {name: 'bench batch'})).id;
t = now();
for (let i = 0; i < results; i += 100) {
  const batch = [];
  for (let j = i; j < Math.min(i + 100, results); j++) batch.push(item(j));
  await c.request('report_results', {test_run_id: run, results: batch});
}
const batched = results / (now() - t);
await c.close();
console.log(JSON.stringify({lat, one, batched}));
"""

GO_MAIN = r"""
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"time"

	sidecar "github.com/ci-sidecar/ci-sidecar/clients/go"
)

func item(i int) map[string]any {
	return map[string]any{"name": fmt.Sprintf("test_%d", i), "suite": "bench", "classname": "bench.Case",
		"status": "passed", "duration": 0.001, "file": "bench/test_x.go", "line": 10}
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func main() {
	ctx := context.Background()
	n, _ := strconv.Atoi(os.Args[2])
	results, _ := strconv.Atoi(os.Args[3])
	c, err := sidecar.Connect(ctx, os.Args[1], nil)
	must(err)
	var status json.RawMessage
	for i := 0; i < 200; i++ {
		must(c.Call(ctx, "sidecar/status", map[string]any{}, &status))
	}
	lat := make([]float64, 0, n)
	for i := 0; i < n; i++ {
		t := time.Now()
		must(c.Call(ctx, "sidecar/status", map[string]any{}, &status))
		lat = append(lat, time.Since(t).Seconds())
	}
	var run struct{ ID string `json:"id"` }
	must(c.Call(ctx, "create_test_run", map[string]any{"name": "bench one"}, &run))
	var ack json.RawMessage
	t := time.Now()
	for i := 0; i < results; i++ {
		must(c.Call(ctx, "report_results", map[string]any{"test_run_id": run.ID, "results": []any{item(i)}}, &ack))
	}
	one := float64(results) / time.Since(t).Seconds()
	must(c.Call(ctx, "create_test_run", map[string]any{"name": "bench batch"}, &run))
	t = time.Now()
	for i := 0; i < results; i += 100 {
		batch := []any{}
		for j := i; j < i+100 && j < results; j++ {
			batch = append(batch, item(j))
		}
		must(c.Call(ctx, "report_results", map[string]any{"test_run_id": run.ID, "results": batch}, &ack))
	}
	batched := float64(results) / time.Since(t).Seconds()
	_, _ = c.Close(ctx)
	out, _ := json.Marshal(map[string]any{"lat": lat, "one": one, "batched": batched})
	fmt.Println(string(out))
}
"""


def _external(argv: list[str], cwd: Path, env: dict[str, str]) -> dict[str, float]:
    proc = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    return _summary(data["lat"], data["one"], data["batched"])


def node_client(path: str, n: int, results: int, work: Path, env: dict[str, str]) -> dict[str, float]:
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is not installed")
    script = work / "bench.mjs"
    script.write_text(NODE_MAIN % {"index": json.dumps((ROOT / "clients" / "node" / "index.js").as_uri())})
    return _external([node, str(script), path, str(n), str(results)], work, env)


def go_client(path: str, n: int, results: int, work: Path, env: dict[str, str]) -> dict[str, float]:
    go = shutil.which("go")
    if go is None:
        raise RuntimeError("go is not installed")
    mod = work / "gobench"
    mod.mkdir()
    (mod / "go.mod").write_text(
        "module gobench\n\ngo 1.19\n\nrequire github.com/ci-sidecar/ci-sidecar/clients/go v0.0.0\n\n"
        f"replace github.com/ci-sidecar/ci-sidecar/clients/go => {ROOT / 'clients' / 'go'}\n")
    (mod / "main.go").write_text(GO_MAIN)
    # the client is standard library only: nothing may be downloaded
    genv = dict(env, GOFLAGS="-mod=mod", GOPROXY="off")
    build = subprocess.run([go, "build", "-o", "gobench", "."], cwd=mod, env=genv, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=600)
    if build.returncode != 0:
        raise RuntimeError("go build failed: " + build.stdout[-2000:])
    return _external([str(mod / "gobench"), path, str(n), str(results)], mod, env)


# --- the run --------------------------------------------------------------------------------------

class Daemon:
    """A fresh ``serve --socket`` per measurement, so no client pays for the runs another one left."""

    def __init__(self, work: Path, env: dict[str, str], tag: str) -> None:
        self.path = str(work / f"{tag}.sock")
        env = dict(env, CI_SIDECAR_STATE_DIR=str(work / f"state-{tag}"))
        self.proc = subprocess.Popen([sys.executable, "-m", "ci_sidecar", "serve", "--socket", self.path], env=env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while not os.path.exists(self.path):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SystemExit("the daemon did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000, help="sidecar/status round trips per client")
    ap.add_argument("--results", type=int, default=2000, help="results per report_results measurement")
    ap.add_argument("--rounds", type=int, default=3, help="rounds over all clients; medians are printed")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="cbc", dir="/tmp"))  # short: Unix socket paths stay < 108 bytes
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "GITLAB_", "CI"))}
    env.update(CI_SIDECAR_OUTPUT_DIR=str(work / "out"),
               PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "clients" / "python")]))
    # the Python clients send this process's environment in initialize: keep run output in the temp dir
    os.environ["CI_SIDECAR_OUTPUT_DIR"] = env["CI_SIDECAR_OUTPUT_DIR"]
    clients: list[tuple[str, Any]] = [
        ("raw socket (Python)", lambda p: raw_baseline(p, args.n, args.results)),
        ("Python client", lambda p: python_client(p, args.n, args.results)),
        ("Node client", lambda p: node_client(p, args.n, args.results, work, env)),
        ("Go client", lambda p: go_client(p, args.n, args.results, work, env)),
    ]
    measured: dict[str, list[dict[str, float]]] = {name: [] for name, _ in clients}
    failed: dict[str, str] = {}
    try:
        for rnd in range(args.rounds):
            # round robin: slow drifts of the machine spread over every client alike
            for i, (name, fn) in enumerate(clients):
                if name in failed:
                    continue
                daemon = Daemon(work, env, f"{rnd}-{i}")
                try:
                    measured[name].append(fn(daemon.path))
                except (RuntimeError, subprocess.TimeoutExpired, ValueError) as exc:
                    failed[name] = f"not measured: {exc}"
                finally:
                    daemon.stop()
                if name == "Go client" and (work / "gobench").exists():
                    shutil.rmtree(work / "gobench")  # rebuilt each round (go's build cache keeps it quick)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows: list[tuple[str, dict[str, float] | str]] = []
    for name, _ in clients:
        if name in failed:
            rows.append((name, failed[name]))
        else:
            rows.append((name, {k: statistics.median(m[k] for m in measured[name]) for k in measured[name][0]}))

    base = rows[0][1]
    assert isinstance(base, dict)
    print(f"sidecar/status x{args.n}, report_results x{args.results} (one per request / batches of 100), "
          f"median of {args.rounds} rounds, a fresh daemon each; ratios against the raw socket")
    print(f"{'client':22} {'p50 µs':>9} {'p99 µs':>9} {'p50 ×raw':>9} {'1-by-1 res/s':>13} {'×raw':>6} "
          f"{'batch100 res/s':>15} {'×raw':>6}")
    for name, r in rows:
        if isinstance(r, str):
            print(f"{name:22} {r}")
            continue
        print(f"{name:22} {r['p50_us']:9.0f} {r['p99_us']:9.0f} {r['p50_us'] / base['p50_us']:9.2f} "
              f"{r['one_by_one_rps']:13,.0f} {r['one_by_one_rps'] / base['one_by_one_rps']:6.2f} "
              f"{r['batch100_rps']:15,.0f} {r['batch100_rps'] / base['batch100_rps']:6.2f}")


if __name__ == "__main__":
    main()
