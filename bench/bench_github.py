"""GitHub end to end: what one pull-request build costs in API calls, and what 30% injected faults cost in time.

    python bench/bench_github.py [--faults 0.3] [--seeds 1,2,3,4,5] [--results 10000]

The scenario of ``tests/providers/test_github_scenario.py`` (``tests/fakes/github_scenario.py``): a real
daemon driven by the Python client; 10,000 results with 300 failures in batches of 100, a sticky comment
updated once, 20 artifacts through the Actions artifact service, two status contexts; against the loopback
fakes. One fault-free run, then one run per seed with the given share of faults (502/503/429/secondary
limits/resets, lost answers to creates), all in this process.

Prints: REST calls of the run excluding artifact uploads (goal <= 25, live updates included; EM-style
one-shot reporting needs about 9, one call per failure >= 300), calls per artifact (goal <= 3), wall time
(first write to last delivery) with faults against fault-free. Checks that every faulty run ends with what
the fault-free run shows on the PR; asserts no goal.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "clients" / "python"))

from fakes.github_scenario import JobResult, Plan, World, run_scenario  # noqa: E402
from fakes.spec import load_spec, spec_path  # noqa: E402
from helpers import DaemonProcess, scrubbed_env  # noqa: E402


def one_run(spec: object, plan: Plan, rate: float, seed: int, world_type: Any = World) -> tuple[JobResult, Any]:
    with tempfile.TemporaryDirectory(prefix="csb", dir="/tmp") as tmp:
        base = Path(tmp)
        env = scrubbed_env(base)
        with world_type(spec, fault_rate=rate, seed=seed) as world:
            out = run_scenario(world, lambda: DaemonProcess.start(base / "d.sock", env), base / "job", plan,
                               timeout=300)
            if world.violations():
                raise SystemExit(f"spec violations: {world.violations()}")
    return out, world


def describe(world: Any) -> str:
    ops = collections.Counter(f"{r.method} {r.operation or r.path}" for r in world.rest_calls())
    return ", ".join(f"{op} ×{n}" for op, n in sorted(ops.items()))


def main(world_type: Any = World, spec_file: str = "github/api.github.com.ci-subset.json", doc: str = __doc__,
         pr: str = "PR") -> None:
    """The benchmark for one provider's scenario world (GitLab's bench calls it with its own)."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--faults", type=float, default=0.3)
    ap.add_argument("--seeds", default="1,2,3,4,5")
    ap.add_argument("--results", type=int, default=10_000)
    args = ap.parse_args()
    path = spec_path(spec_file)
    if path is None:
        raise SystemExit(f"{spec_file} is missing (set CI_SIDECAR_SPECS to the shared/specs directory)")
    spec = load_spec(str(path))
    plan = Plan(results=args.results, failures=min(300, args.results))

    clean, world = one_run(spec, plan, 0.0, 1, world_type)
    rest = len(world.rest_calls())
    per_artifact = len(world.artifact_calls()) / plan.artifacts
    print(f"scenario: {plan.results} results ({plan.failures} failed) in batches of {plan.batch}, "
          f"{len(plan.comments)} comment updates, {plan.artifacts} artifacts, 2 status contexts × 2")
    print(f"fault-free: REST calls {rest} (goal <= 25): {describe(world)}")
    print(f"fault-free: calls per artifact {per_artifact:.2f} (goal <= 3)")
    print(f"fault-free: wall time {clean.seconds:.2f} s")

    times = []
    for seed in [int(s) for s in args.seeds.split(",") if s]:
        try:
            out, fw = one_run(spec, plan, args.faults, seed, world_type)
        except AssertionError as exc:  # a write failed for good, or never finished: say so, go on
            print(f"faults {args.faults:.0%} seed {seed}: NOT DELIVERED: {str(exc)[:300]}")
            continue
        same = out.view == clean.view
        rest_calls, art_calls = fw.rest_calls(), fw.artifact_calls()
        rest_faults = sum(r.status in (-1, 403, 429, 502, 503) for r in rest_calls)
        art_faults = sum(r.status in (-1, 429, 503) for r in art_calls)
        times.append(out.seconds)
        print(f"faults {args.faults:.0%} seed {seed}: wall {out.seconds:.2f} s ({out.seconds / clean.seconds:.1f}× "
              f"fault-free); REST calls {len(rest_calls)} ({rest_faults} faulted); artifact calls "
              f"{len(art_calls) / plan.artifacts:.2f} per artifact ({art_faults} faulted); "
              f"{pr} {'identical' if same else 'DIFFERENT: ' + '; '.join(out.view.differences(clean.view))}")
    if times:
        median = statistics.median(times)
        print(f"with faults: median wall {median:.2f} s, max {max(times):.2f} s; ratio to fault-free "
              f"{median / clean.seconds:.1f}× (median), {max(times) / clean.seconds:.1f}× (max)")


if __name__ == "__main__":
    main()
