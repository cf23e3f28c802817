"""``ci-sidecar exec``'s overhead on a 1,000-test command, against the command alone in the same run.

The command is a small Python script that writes a JUnit file of 1,000 test cases (a few of them failed and
skipped). Three ways of running it, interleaved round by round so that machine load hits all alike:

* ``alone``: the command by itself (the baseline);
* ``exec --private``: exec starts a daemon of its own, runs the command, ingests the file, completes the run;
* ``exec (joined)``: exec joins a daemon that is already running (a test machine's service).

    python bench/bench_exec.py [--rounds 7] [--tests 1000]

Prints the median wall time of each and its overhead over the baseline; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "clients" / "python"))

from ci_sidecar_client import Client  # noqa: E402

_WRITER = """\
import sys
n = int(sys.argv[2])
cases = []
for i in range(n):
    body = '<failure message="boom">trace</failure>' if i % 97 == 0 else '<skipped/>' if i % 89 == 0 else ''
    cases.append(f'<testcase classname="bench.Case{i % 20}" name="test_{i}" time="0.001">{body}</testcase>')
with open(sys.argv[1], "w") as fh:
    fh.write(f'<testsuite name="bench" tests="{n}">' + "".join(cases) + "</testsuite>")
"""


def _timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--tests", type=int, default=1000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="cis-bench-", dir="/tmp") as tmp:
        home = Path(tmp)
        writer = home / "writer.py"
        writer.write_text(_WRITER)
        junit = home / "junit.xml"
        env = dict(os.environ, HOME=str(home), XDG_STATE_HOME=str(home / "state"), XDG_RUNTIME_DIR=str(home),
                   XDG_CONFIG_HOME=str(home / "config"), XDG_CACHE_HOME=str(home / "cache"),
                   PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "clients" / "python")]))
        for key in [k for k in env if k.startswith("CI_SIDECAR_") or k in ("CI", "GITHUB_ACTIONS")]:
            del env[key]
        command = [sys.executable, str(writer), str(junit), str(args.tests)]
        exec_argv = [sys.executable, "-m", "ci_sidecar", "exec", "--junit", str(junit)]
        sock = str(home / "d.sock")
        daemon = subprocess.Popen([sys.executable, "-m", "ci_sidecar", "serve", "--socket", sock], env=env,
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    Client.connect(sock).close()
                    break
                except Exception:  # noqa: BLE001 - not up yet
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            ways = {
                "alone": (command, env),
                "exec --private": (exec_argv + ["--private", "--"] + command, env),
                "exec (joined)": (exec_argv + ["--"] + command, dict(env, CI_SIDECAR_SOCKET=sock)),
            }
            times: dict[str, list[float]] = {name: [] for name in ways}
            _timed(*ways["exec --private"])  # warm the file cache
            for _ in range(args.rounds):
                for name, (argv, e) in ways.items():
                    times[name].append(_timed(argv, e))
        finally:
            daemon.terminate()
            daemon.wait(10)
    base = statistics.median(times["alone"])
    print(f"{args.tests} tests, {args.rounds} rounds, load average {os.getloadavg()[0]:.2f}")
    for name, got in times.items():
        med = statistics.median(got)
        print(f"{name:16} median {med * 1000:8.1f} ms   overhead {(med - base) * 1000:8.1f} ms   "
              f"ratio {med / base:5.2f}x")


if __name__ == "__main__":
    main()
