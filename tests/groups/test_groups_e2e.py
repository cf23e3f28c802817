"""Sharded runs end to end: shard daemons as separate processes merge through moto's S3 server into one run on
the fake GitHub (30% faults), survive kill -9, report a shard that never comes back as missing, and never mix
two groups.

Size: the issue's scenario is 8 shards × 5,000 results; the suite runs the same structure with 4 × 600 (the
suite-time budget), and ``bench/bench_shards.py`` runs the full size.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ci_sidecar.service.groups.model import group_run_id, slug
from fakes.github_scenario import HEAD, PR, World
from fakes.scenario import connect
from fakes.spec import OpenApiSpec, require_spec
from helpers import DaemonProcess, scrubbed_env
from s3_fixtures import DUMMY_KEY, REGION, FaultProxy, Moto, moto  # noqa: F401

RUN = "unit tests"


@pytest.fixture(scope="module")
def gh_spec() -> OpenApiSpec:
    return require_spec("github/api.github.com.ci-subset.json")


@pytest.fixture
def store(moto: Moto) -> Iterator[tuple[FaultProxy, str]]:  # noqa: F811
    """A fresh bucket behind the fault proxy (which makes moto's conditional PUTs atomic, as S3's are)."""
    with FaultProxy(moto.url) as proxy:
        yield proxy, moto.bucket()


def shard_results(shard: int, count: int) -> list[dict[str, Any]]:
    """``count`` tests of one shard, every 20th failing (names unique across shards)."""
    out = []
    for i in range(count):
        failed = i % 20 == 7
        r: dict[str, Any] = {"name": f"test_{shard}_{i:05d}", "suite": f"pkg.shard{shard}",
                             "classname": f"pkg.shard{shard}.Case", "file": f"tests/test_shard{shard}.py",
                             "line": 10 + i, "duration": 0.001, "status": "failed" if failed else "passed"}
        if failed:
            r["message"] = f"assert {i} == {i + 1}"
        out.append(r)
    return out


class Shards:
    """One daemon per shard, each with its own state dir, all on one bucket and one fake GitHub."""

    def __init__(self, base: Path, proxy: FaultProxy, bucket: str, world: World | None) -> None:
        self.base, self.proxy, self.bucket, self.world = base, proxy, bucket, world
        self.daemons: dict[str, DaemonProcess] = {}

    def env(self, name: str) -> dict[str, str]:
        return scrubbed_env(self.base / name, CI_SIDECAR_ARTIFACT_STORE_BUCKET=self.bucket,
                            CI_SIDECAR_ARTIFACT_STORE_ENDPOINT_URL=self.proxy.url,
                            CI_SIDECAR_ARTIFACT_STORE_REGION=REGION, NO_PROXY="127.0.0.1,localhost")

    def start(self, name: str) -> DaemonProcess:
        (self.base / name).mkdir(parents=True, exist_ok=True)
        d = self.daemons[name] = DaemonProcess.start(self.base / name / "d.sock", self.env(name))
        return d

    def job_env(self, name: str) -> dict[str, str]:
        env = self.world.job_env(self.base / name / "job") if self.world else {"CI": "true"}
        return dict(env, AWS_ACCESS_KEY_ID=DUMMY_KEY[0], AWS_SECRET_ACCESS_KEY=DUMMY_KEY[1],
                    RUNNER_NAME=f"runner-{name}")

    def stop(self) -> None:
        for d in self.daemons.values():
            d.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {n}\n{d.log()[-4000:]}" for n, d in self.daemons.items())


def group_doc(moto: Moto, bucket: str, key: str) -> dict[str, Any] | None:  # noqa: F811
    try:
        body = moto.client().get_object(Bucket=bucket, Key=f"groups/{slug(key)}/group.json")["Body"].read()
    except Exception:
        return None
    return json.loads(body)


def wait_final(moto: Moto, bucket: str, key: str, timeout: float) -> dict[str, Any]:  # noqa: F811
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        doc = group_doc(moto, bucket, key)
        if doc and doc.get("final"):
            return doc
        time.sleep(0.2)
    raise AssertionError(f"group {key} not final after {timeout} s: {group_doc(moto, bucket, key)}")


def run_shard(shards: Shards, key: str, shard: int, total: int, results: list[dict[str, Any]], *,
              kill_halfway: bool = False, delay: float = 0.0, deadline_s: float = 120.0) -> None:
    """One CI job: create the shard's run, report in batches of 100 (killed -9 and restarted halfway when
    asked: the restarted job joins its run again and resends everything), complete."""
    time.sleep(delay)
    name = f"{key}-{shard}"
    d = shards.start(name)
    group = {"key": key, "shard": shard, "total": total, "deadline_s": deadline_s}
    c = connect(d, shards.job_env(name))
    run_id = c.request("create_test_run", {"name": RUN, "group": group})["id"]
    batches = [results[i:i + 100] for i in range(0, len(results), 100)]
    for n, batch in enumerate(batches):
        c.request("report_results", {"test_run_id": run_id, "results": batch})
        if kill_halfway and n == len(batches) // 2:
            time.sleep(0.3)  # segments and the shard state go out meanwhile
            d.proc.kill()
            d.proc.wait()
            d.stop()
            d = shards.start(name)
            c = connect(d, shards.job_env(name))
            again = c.request("create_test_run", {"name": RUN, "group": group})["id"]
            assert again == run_id  # the restarted job joins its run (journaled by the killed daemon)
            for b in batches:
                c.request("report_results", {"test_run_id": run_id, "results": b})
            break
    c.request("complete_test_run", {"test_run_id": run_id})


def run_group(shards: Shards, key: str, total: int, per_shard: int, *, kill: tuple[int, ...] = (),
              never: tuple[int, ...] = (), deadline_s: float = 120.0, seed: int = 1) -> None:
    rng = random.Random(seed)
    errors: list[BaseException] = []

    def job(shard: int) -> None:
        try:
            run_shard(shards, key, shard, total, shard_results(shard, per_shard), kill_halfway=shard in kill,
                      delay=rng.uniform(0, 1.0), deadline_s=deadline_s)
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)

    threads = [threading.Thread(target=job, args=(s,)) for s in range(total) if s not in never]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    if errors:
        raise errors[0]


def test_shards_under_faults_and_kill_9_publish_one_exact_run(gh_spec: OpenApiSpec, moto: Moto,  # noqa: F811
                                                             store: tuple[FaultProxy, str], short_tmp: Path) -> None:
    """Four shard daemons (two killed -9 and restarted mid-run) under 30% GitHub faults publish one check run whose
    counts are the exact sum, with an annotation per failure, one sticky comment, and one final conclusion."""
    proxy, bucket = store
    total, per_shard = 4, 600
    with World(gh_spec, fault_rate=0.3, seed=5) as world:
        shards = Shards(short_tmp, proxy, bucket, world)
        key = "wf-4242:test"
        try:
            run_group(shards, key, total, per_shard, kill=(1, 2))
            doc = wait_final(moto, bucket, key, 90)
            checks = world.rest.check_runs()
            assert len(checks) == 1, checks
            check = checks[0]
            assert (check["head_sha"], check["status"], check["conclusion"]) == (HEAD, "completed", "failure")
            failures = total * len([i for i in range(per_shard) if i % 20 == 7])
            assert check["output"]["title"] == f"{total * per_shard - failures} passed, {failures} failed, 0 skipped"
            notes = {(a["path"], a["start_line"]) for a in world.rest.annotations(check["id"])}
            assert len(world.rest.annotations(check["id"])) == failures  # no duplicates
            assert notes == {(f"tests/test_shard{s}.py", 10 + i) for s in range(total) for i in range(per_shard)
                             if i % 20 == 7}
            comments = world.rest.comments(PR)
            assert len(comments) == 1 and "| 3 | finished |" in comments[0]["body"], comments
            assert doc["conclusion"] == "failure" and doc["missing"] == []
            assert sum(s["counts"]["total"] for s in doc["shards"].values()) == total * per_shard
            assert world.violations() == []
            completions = [r for r in world.rest_calls() if r.method == "PATCH" and "/check-runs/" in r.path
                           and isinstance(r.body, dict) and r.body.get("conclusion") and 200 <= r.status < 300]
            assert len(completions) == 1, completions  # the final conclusion went out once
        except BaseException:
            print(shards.logs())
            raise
        finally:
            shards.stop()


def test_a_shard_that_never_comes_back_is_missing_and_groups_never_mix(moto: Moto,  # noqa: F811
                                                                       store: tuple[FaultProxy, str],
                                                                       short_tmp: Path) -> None:
    """Two groups with the same shard numbers on one bucket stay apart; the one whose shard 2 never starts
    concludes at its deadline as a failure naming shard 2 missing, never as passed."""
    proxy, bucket = store
    shards = Shards(short_tmp, proxy, bucket, None)
    try:
        a = threading.Thread(target=run_group, args=(shards, "pipeline-1:rspec", 3, 50),
                             kwargs={"never": (2,), "deadline_s": 6.0})
        a.start()
        run_group(shards, "pipeline-2:rspec", 3, 70, seed=2)
        a.join(60)
        done = wait_final(moto, bucket, "pipeline-2:rspec", 30)
        assert done["conclusion"] == "failure" and done["missing"] == []  # every 20th test fails
        assert {n: s["counts"]["total"] for n, s in done["shards"].items()} == {"0": 70, "1": 70, "2": 70}
        late = wait_final(moto, bucket, "pipeline-1:rspec", 30)
        assert late["missing"] == [2] and late["conclusion"] == "failure"
        assert {n: s["counts"]["total"] for n, s in late["shards"].items()} == {"0": 50, "1": 50}
        assert group_run_id("pipeline-1:rspec") != group_run_id("pipeline-2:rspec")
    except BaseException:
        print(shards.logs())
        raise
    finally:
        shards.stop()
