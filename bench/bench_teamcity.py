"""TeamCity end to end: what one pull-request build costs in REST calls, what 30% injected faults cost in time,
and what the service-message stream tier (``ci-sidecar exec`` printing the run into the build log) costs.

    python bench/bench_teamcity.py [--faults 0.3] [--seeds 1,2,3,4,5] [--results 10000] [--rounds 3]

1. The scenario of ``tests/providers/test_teamcity_scenario.py`` (``fakes.teamcity_scenario.World`` on the
   provider-neutral ``fakes.scenario``): a real daemon driven by the Python client with the build's REST token;
   10,000 results with 300 failures in batches of 100, a sticky PR comment updated once, 20 artifacts, two status
   contexts; against the fake TeamCity (service messages over REST, status text, tags) and the fake GitHub. One
   fault-free run, then one run per seed with the given share of faults, all in this process. Prints API calls
   to both (artifacts cost none: they are staged in the checkout and published by a service message), wall time
   (first write to last delivery) with faults against fault-free, and whether every faulty run ends as the
   fault-free one did.
2. The stream tier: ``ci-sidecar exec`` over a command that reports the same 10,000 results in batches of 100,
   in a TeamCity build without a token (exec prints the run as service messages on its stdout while the command
   runs), against the baseline of the same exec outside any CI (no stream). Rounds alternate the two so that load
   hits both alike. Prints the median wall time of each, their ratio, the stream's size, and checks that the log
   holds every test exactly once on one valid flow.

Asserts no goal.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_github import ROOT, main  # noqa: E402  (it puts tests/ and the Python client on sys.path)
from fakes.scenario import Plan  # noqa: E402
from fakes.teamcity_messages import check_flows, parse_stream  # noqa: E402
from fakes.teamcity_scenario import World  # noqa: E402
from helpers import scrubbed_env  # noqa: E402

REPORTER = textwrap.dedent("""\
    import json, os, sys
    from ci_sidecar_client import Client

    run = os.environ["CI_SIDECAR_RUN_ID"]
    with Client.connect(client_name="reporter") as c:
        for batch in json.load(open(sys.argv[1])):
            c.request("report_results", {"test_run_id": run, "results": batch})
    sys.exit(1)  # some failed
""")


def _teamcity_build(job: Path) -> dict[str, str]:
    """A TeamCity build's variables, no token: exec's service-message stream is the only way results go."""
    config = job / "config.properties"
    config.write_text("teamcity.build.branch=main\nteamcity.serverUrl=http\\://127.0.0.1\\:9\n", encoding="latin-1")
    build = job / "build.properties"
    build.write_text(f"teamcity.configuration.properties.file={str(config).replace(':', chr(92) + ':')}\n"
                     "teamcity.build.id=4711\nteamcity.buildConfName=Unit tests\n", encoding="latin-1")
    return {"TEAMCITY_VERSION": "2024.03 (build 156364)", "TEAMCITY_BUILD_PROPERTIES_FILE": str(build)}


def _exec(job: Path, env: dict[str, str], batches: Path) -> tuple[float, str]:
    argv = [sys.executable, "-m", "ci_sidecar", "exec", "--private", "--name", "unit tests", "--",
            sys.executable, "reporter.py", str(batches)]
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=job, env=env, capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - start
    if done.returncode != 1:
        raise SystemExit(f"exec exited {done.returncode}: {done.stderr[-2000:]}")
    return seconds, done.stdout


def stream_tier(plan: Plan, rounds: int) -> None:
    """The stream tier's wall time against exec without a CI, in the same run."""
    with tempfile.TemporaryDirectory(prefix="csb", dir="/tmp") as tmp:
        base = Path(tmp)
        job = base / "job"
        job.mkdir()
        (job / "reporter.py").write_text(REPORTER)
        batches = base / "batches.json"
        batches.write_text(json.dumps(plan.batches()))
        env = scrubbed_env(base, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "clients" / "python")]))
        ways = {"exec, no CI (baseline)": env, "exec, TeamCity stream": dict(env, **_teamcity_build(job))}
        times: dict[str, list[float]] = {name: [] for name in ways}
        stream = ""
        for _ in range(rounds):
            for name, way_env in ways.items():
                seconds, out = _exec(job, way_env, batches)
                times[name].append(seconds)
                if way_env is not env:
                    stream = out
    flows = check_flows(parse_stream(stream))  # a valid order on every flow, or it raises
    tests = [name for report in flows.values() for name, _, _ in report.tests]
    once = len(tests) == len(set(tests)) == plan.results
    base_s = statistics.median(times["exec, no CI (baseline)"])
    print(f"stream tier: {plan.results} results through exec, {rounds} rounds, load average "
          f"{os.getloadavg()[0]:.2f}")
    for name, got in times.items():
        med = statistics.median(got)
        print(f"  {name:24} median {med:6.2f} s   ratio {med / base_s:5.2f}×")
    print(f"  the stream: {len(stream.splitlines())} lines, {len(stream.encode()) / 1e6:.1f} MB, "
          f"{len(flows)} flow(s); every test exactly once: {'yes' if once else 'NO'}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--results", type=int, default=10_000)
    mine, rest = ap.parse_known_args()
    sys.argv = [sys.argv[0], *rest, "--results", str(mine.results)]
    main(World, "github/api.github.com.ci-subset.json", __doc__)
    stream_tier(Plan(results=mine.results, failures=min(300, mine.results)), mine.rounds)
