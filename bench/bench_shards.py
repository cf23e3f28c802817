"""Sharded runs: how long after the last shard completes the group's final result is on GitHub, and how many
object store requests each shard makes.

    python bench/bench_shards.py [--shards 8] [--results 5000] [--faults 0.3] [--seed 1]
    python bench/bench_shards.py --takeover [--shards 4] [--results 1000]

The issue's scenario (``tests/groups/test_groups_e2e.py`` runs it at 4 × 600): one ``ci-sidecar serve``
process per shard, all on one bucket of moto's S3 server (through the test suite's proxy, which makes moto's
conditional writes atomic as S3's are) and one fake GitHub with the given share of faults; shards start at
random delays within a second and report their results in batches of 100, every 20th test failing.

Baseline, in the same run: the same number of results as **one** unsharded run through one daemon against its
own fake GitHub with the same faults, timed from its ``complete_test_run`` to its check run's conclusion.

Prints: the sharded group's latency (last shard's ``complete_test_run`` answered → the check run completed),
the baseline's, their ratio, and the object store requests per shard (segments, shard state, group reads and
conditional writes). Asserts no goal.

``--takeover``: the shard publishing the group is killed -9 right after GitHub made the check run (its answer
held back until then, so the id is never recorded). Prints how long the other shards wait before one takes the
publication over (kill → ``group.json`` names another holder) and until the takeover's publication is recorded,
against the lease's TTL in the same run, and whether the group still ends with one check run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "artifacts"))
sys.path.insert(0, str(ROOT / "clients" / "python"))

from ci_sidecar.service.groups.model import slug  # noqa: E402
from ci_sidecar.service.groups.spec import scoped_key  # noqa: E402
from fakes.github_scenario import World  # noqa: E402
from fakes.shards import (  # noqa: E402
    RUN,
    CreateThenHang,
    Job,
    Shards,
    connect,
    group_doc,
    group_folder,
    run_group,
    shard_results,
    wait_doc,
    wait_final,
)
from fakes.spec import load_spec, spec_path  # noqa: E402
from helpers import DaemonProcess, scrubbed_env  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from moto.server import ThreadedMotoServer  # noqa: E402
    from s3_fixtures import DUMMY_KEY, REGION, FaultProxy, Moto  # noqa: E402


def completed_at(world: World, timeout: float = 600.0) -> float:
    """When the (only) check run shows a conclusion (monotonic), polled every 10 ms."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        checks = world.rest.check_runs()
        if checks and all(c["status"] == "completed" for c in checks):
            return time.monotonic()
        time.sleep(0.01)
    raise SystemExit(f"no completed check run after {timeout} s: {world.rest.check_runs()}")


def baseline(spec: Any, total: int, rate: float, seed: int) -> float:
    """One unsharded run of ``total`` results: seconds from complete_test_run to the check run's conclusion."""
    with tempfile.TemporaryDirectory(prefix="csb", dir="/tmp") as tmp, \
            World(spec, fault_rate=rate, seed=seed) as world:
        base = Path(tmp)
        d = DaemonProcess.start(base / "d.sock", scrubbed_env(base))
        try:
            c = connect(d, world.job_env(base / "job"))
            run_id = c.request("create_test_run", {"name": RUN})["id"]
            results = [r for s in range(total // 5000 + 1) for r in shard_results(s, 5000)][:total]
            for i in range(0, total, 100):
                c.request("report_results", {"test_run_id": run_id, "results": results[i:i + 100]})
            c.request("complete_test_run", {"test_run_id": run_id})
            done = time.monotonic()
            return completed_at(world) - done
        finally:
            d.stop()


def sharded(spec: Any, moto: Moto, shards_n: int, per_shard: int, rate: float, seed: int) -> tuple[float, dict[str, int]]:
    with tempfile.TemporaryDirectory(prefix="csb", dir="/tmp") as tmp, FaultProxy(moto.url) as proxy, \
            World(spec, fault_rate=rate, seed=seed) as world:
        bucket = moto.bucket()
        shards = Shards(Path(tmp), proxy.url, bucket, world, region=REGION, key=DUMMY_KEY)
        key = f"bench-{seed}:test"
        try:
            run_group(shards, key, shards_n, per_shard, seed=seed)
            last = max(shards.finished.values())
            latency = completed_at(world) - last
            wait_final(moto.client(), bucket, f"groups/{slug(scoped_key('octo/repo', key))}", 120, poll=0.05)
        except BaseException:
            print(shards.logs())
            raise
        finally:
            shards.stop()
        if len(world.rest.check_runs()) != 1:
            raise SystemExit(f"expected one check run, got {world.rest.check_runs()}")
        return latency, shards.requests


def lease_ttl() -> float:
    try:
        from ci_sidecar.service.groups.lease import LEASE_S
    except ImportError:  # before the lease had a module of its own
        from ci_sidecar.service.groups.service import LEASE_S  # type: ignore[attr-defined,no-redef]
    return float(LEASE_S)


def takeover(spec: Any, moto: Moto, shards_n: int, per_shard: int) -> tuple[float, float]:
    """(kill → another shard holds the lease, kill → its publication recorded the check run), in seconds."""
    with tempfile.TemporaryDirectory(prefix="csb", dir="/tmp") as tmp, FaultProxy(moto.url) as proxy, \
            World(spec) as world:
        bucket, key, s3 = moto.bucket(), "bench-takeover:test", moto.client()
        hang = CreateThenHang(world.rest, "POST", r"/check-runs$")
        with Shards(Path(tmp), proxy.url, bucket, world, region=REGION, key=DUMMY_KEY) as shards:
            jobs = [Job(shards, key, n, shards_n, shard_results(n, per_shard)) for n in range(shards_n)]
            for job in jobs:
                job.start()
                job.report()
            if not hang.created.wait(60):
                raise SystemExit("no check run was created")
            folder = group_folder(s3, bucket)
            holder = (group_doc(s3, bucket, folder) or {}).get("lease_holder")
            victim = next(j for j in jobs if j.run_id == holder)
            victim.kill()
            killed = time.monotonic()
            hang.release.set()
            for job in jobs:
                if job is not victim:
                    job.complete()
            wait_doc(s3, bucket, folder, lambda d: d["lease_holder"] != victim.run_id, 300, poll=0.01)
            took = time.monotonic() - killed
            wait_doc(s3, bucket, folder, lambda d: d["remote"].get("github", {}).get("check_run_id"), 300, poll=0.01)
            recorded = time.monotonic() - killed
            victim.start()
            victim.complete()
            wait_final(s3, bucket, folder, 120, poll=0.05)
        if len(world.rest.check_runs()) != 1:
            raise SystemExit(f"expected one check run, got {world.rest.check_runs()}")
        return took, recorded


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--results", type=int, default=5000, help="results per shard")
    ap.add_argument("--faults", type=float, default=0.3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--takeover", action="store_true", help="kill -9 the publishing shard; time the takeover")
    args = ap.parse_args()
    spec = load_spec(spec_path("github/api.github.com.ci-subset.json"))
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        moto = Moto(url=f"http://{host}:{port}")
        if args.takeover:
            took, recorded = takeover(spec, moto, args.shards, args.results)
            ttl = lease_ttl()
            print(f"{args.shards} shards x {args.results} results; the publisher killed -9 after creating the check run")
            print(f"lease TTL: {ttl:.1f} s")
            print(f"kill -9 -> another shard holds the lease: {took:.2f} s (ratio to the TTL: {took / ttl:.2f})")
            print(f"kill -9 -> its publication recorded the check run it found: {recorded:.2f} s")
            print("check runs at the end: 1")
            return
        latency, requests = sharded(spec, moto, args.shards, args.results, args.faults, args.seed)
        base = baseline(spec, args.shards * args.results, args.faults, args.seed)
    finally:
        server.stop()
    per_shard = sum(requests.values()) / max(1, args.shards)
    print(f"{args.shards} shards x {args.results} results, {args.faults:.0%} GitHub faults")
    print(f"last shard complete -> final check run: {latency:.2f} s")
    print(f"one unsharded run of {args.shards * args.results} results, complete -> conclusion: {base:.2f} s")
    print(f"ratio sharded/unsharded: {latency / base:.2f}" if base > 0 else "ratio: n/a")
    print(f"object store requests per shard: {per_shard:.1f} (min {min(requests.values(), default=0)}, "
          f"max {max(requests.values(), default=0)}; {args.results / max(per_shard, 1):.0f} results per request)")


if __name__ == "__main__":
    main()
