"""Sharded runs end to end: shard daemons as separate processes merge through moto's S3 server into one run on
the fake GitHub (30% faults), survive kill -9, report a shard that never comes back as missing, and never mix
two groups; ``ci-sidecar merge`` of the shards' outputs counts what the live group counted.

Size: the issue's scenario is 8 shards × 5,000 results; the suite runs the same structure with 4 × 600 (the
suite-time budget), and ``bench/bench_shards.py`` runs the full size.
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from ci_sidecar.service.groups.model import group_run_id, slug
from ci_sidecar.service.groups.spec import scoped_key
from fakes.github_scenario import HEAD, PR, World
from fakes.shards import Shards, run_group, wait_final
from fakes.spec import OpenApiSpec
from helpers import scrubbed_env
from s3_fixtures import DUMMY_KEY, REGION, FaultProxy, Moto, moto  # noqa: F401


def _runs_in(db: Path) -> list[tuple[str, int]]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return con.execute("SELECT run_id, total FROM runs").fetchall()
    finally:
        con.close()


def final(moto: Moto, bucket: str, key: str, timeout: float = 60, repository: str | None = None) -> dict:  # noqa: F811
    return wait_final(moto.client(), bucket, f"groups/{slug(scoped_key(repository, key))}", timeout)


def test_shards_under_faults_and_kill_9_publish_one_exact_run(gh_spec: OpenApiSpec, moto: Moto,  # noqa: F811
                                                             store: tuple[FaultProxy, str], short_tmp: Path) -> None:
    """Four shard daemons (two killed -9 and restarted mid-run) under 30% GitHub faults publish one check run whose
    counts are the exact sum, with an annotation per failure, one sticky comment, and one final conclusion; merging
    the shards' own outputs without the store counts the same."""
    proxy, bucket = store
    total, per_shard = 4, 600
    with World(gh_spec, fault_rate=0.3, seed=5) as world:
        shards = Shards(short_tmp, proxy.url, bucket, world, region=REGION, key=DUMMY_KEY)
        key = "wf-4242:test"
        try:
            run_group(shards, key, total, per_shard, kill=(1, 2))
            doc = final(moto, bucket, key, 90, repository="octo/repo")  # the World's jobs are in octo/repo
            checks = world.rest.check_runs()
            assert len(checks) == 1, checks
            check = checks[0]
            assert (check["head_sha"], check["status"], check["conclusion"]) == (HEAD, "completed", "failure")
            failures = total * len([i for i in range(per_shard) if i % 20 == 7])
            title = f"{total * per_shard - failures} passed, {failures} failed, 0 skipped"
            assert check["output"]["title"] == title
            notes = {(a["path"], a["start_line"]) for a in world.rest.annotations(check["id"])}
            assert len(world.rest.annotations(check["id"])) == failures  # no duplicates
            assert notes == {(f"tests/test_shard{s}.py", 10 + i) for s in range(total) for i in range(per_shard)
                             if i % 20 == 7}
            per_fail = len([i for i in range(per_shard) if i % 20 == 7])
            summary = check["output"]["summary"]  # the shards section, one row per shard with its counts
            for n in range(total):
                assert re.search(rf"^\| {n} \| finished \| [^|]+ \| {per_shard} \| {per_shard - per_fail} \| "
                                 rf"{per_fail} \| 0 \| runner", summary, re.M), summary
            assert "Slowest shard: " in summary and "Balance: split by test duration" in summary
            # the merged run is in the history once (by its final publisher's daemon), the shards' runs never
            recorded = [row for db in short_tmp.rglob("history.sqlite3")
                        for row in _runs_in(db)]
            assert recorded == [(group_run_id(scoped_key("octo/repo", key)), total * per_shard)], recorded
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
    # the fan-in without a store: every shard's results.json (its own local output), one run
    outputs = sorted(str(p) for p in short_tmp.glob("*/job/ci-sidecar-out"))
    assert len(outputs) == total
    (short_tmp / "merge").mkdir()
    merged = subprocess.run([sys.executable, "-m", "ci_sidecar", "merge", "--private", *outputs],
                            env=scrubbed_env(short_tmp / "merge", CI="true"), cwd=short_tmp,
                            capture_output=True, text=True, timeout=120)
    assert merged.returncode == 1, merged.stderr  # the merged run failed, as the group did
    assert f"run 'unit tests': failure: {title}" in merged.stderr, merged.stderr
    assert f"merged {total} results.json" in merged.stderr
    assert "shard 3: finished" in merged.stderr and "slowest shard: " in merged.stderr  # one line per shard output
    assert "balance: split by test duration" in merged.stderr


def test_a_shard_that_never_comes_back_is_missing_and_groups_never_mix(moto: Moto,  # noqa: F811
                                                                       store: tuple[FaultProxy, str],
                                                                       short_tmp: Path) -> None:
    """Two groups with the same shard numbers on one bucket stay apart; the one whose shard 2 never starts
    concludes at its deadline as a failure naming shard 2 missing, never as passed."""
    proxy, bucket = store
    shards = Shards(short_tmp, proxy.url, bucket, None, region=REGION, key=DUMMY_KEY)
    try:
        a = threading.Thread(target=run_group, args=(shards, "pipeline-1:rspec", 3, 50),
                             kwargs={"never": (2,), "deadline_s": 6.0})
        a.start()
        run_group(shards, "pipeline-2:rspec", 3, 70, seed=2)
        a.join(60)
        done = final(moto, bucket, "pipeline-2:rspec", 30)
        assert done["conclusion"] == "failure" and done["missing"] == []  # every 20th test fails
        assert {n: s["counts"]["total"] for n, s in done["shards"].items()} == {"0": 70, "1": 70, "2": 70}
        late = final(moto, bucket, "pipeline-1:rspec", 30)
        assert late["missing"] == [2] and late["conclusion"] == "failure"
        assert {n: s["counts"]["total"] for n, s in late["shards"].items()} == {"0": 50, "1": 50}
        assert group_run_id("pipeline-1:rspec") != group_run_id("pipeline-2:rspec")
    except BaseException:
        print(shards.logs())
        raise
    finally:
        shards.stop()


def test_a_group_needs_the_object_store_and_a_shard_number(short_tmp: Path) -> None:
    """Without an object store, or without a shard number from the client or the CI, create_test_run says what is
    missing (-32602) and records nothing."""
    from helpers import DaemonProcess
    from ci_sidecar_client import RpcError

    d = DaemonProcess.start(short_tmp / "d.sock", scrubbed_env(short_tmp))
    try:
        c = d.client()
        with pytest.raises(RpcError) as no_store:
            c.request("create_test_run", {"name": "x", "group": {"key": "k", "shard": 0}})
        assert no_store.value.code == -32602 and "[artifact_store]" in no_store.value.message
        with pytest.raises(RpcError) as no_shard:
            c.request("create_test_run", {"name": "x", "group": {"key": "k"}})
        assert no_shard.value.code == -32602 and no_shard.value.data["path"] == "$.group.shard"
        assert c.request("list_test_runs", {})["runs"] == []
    finally:
        d.stop()
