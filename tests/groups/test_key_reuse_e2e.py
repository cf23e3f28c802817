"""A group key reused after its group concluded, and a killed shard that resends everything, against moto's S3
server with real shard daemons: nothing is lost silently, and nothing is counted or stored twice."""

from __future__ import annotations

import json
from pathlib import Path

from ci_sidecar.service.groups.model import group_run_id, slug
from fakes.shards import RUN, Job, Shards, connect, run_group, shard_results, wait_final
from s3_fixtures import DUMMY_KEY, REGION, FaultProxy, Moto, moto  # noqa: F401


def _read_all(client, run_id: str) -> list[dict]:
    got, cursor = [], 0
    while True:
        page = client.request("read_test_results", {"test_run_id": run_id, "cursor": cursor, "limit": 1000})
        got += page["results"]
        if page["cursor"] == cursor:
            return got
        cursor = page["cursor"]


def test_reused_key_is_told_and_published_alone_and_a_resend_is_stored_once(
        moto: Moto, store: tuple[FaultProxy, str], short_tmp: Path) -> None:  # noqa: F811
    """A shard killed -9 mid-run that resends every result has each result once in its run's records, its
    results.json and the merged run; a later pipeline's shard giving the concluded group's key gets a warning and a
    note naming the key, and its 6 results are published as a run of its own instead of vanishing."""
    proxy, bucket = store
    key, per_shard = "pipeline-7:unit", 50
    with Shards(short_tmp, proxy.url, bucket, None, region=REGION, key=DUMMY_KEY) as shards:
        run_group(shards, key, 2, per_shard, kill=(1,), max_delay=0.2)  # shard 1 restarted, resending everything
        doc = wait_final(moto.client(), bucket, f"groups/{slug(key)}", 60)
        assert {n: s["counts"]["total"] for n, s in doc["shards"].items()} == {"0": per_shard, "1": per_shard}
        names = {r["name"] for r in shard_results(1, per_shard)}
        restarted = connect(shards.daemons[f"{key}-1"], shards.job_env(f"{key}-1"))
        shard_run, = (r["id"] for r in restarted.request("list_test_runs", {})["runs"] if r["id"] != group_run_id(key))
        records = _read_all(restarted, shard_run)
        assert sorted(r["name"] for r in records) == sorted(names)  # each once, though sent twice
        out = json.loads(next((short_tmp / f"{key}-1").rglob(f"{shard_run}/results.json")).read_text())
        assert sorted(r["name"] for r in out["results"]) == sorted(names)
        merged = []
        for name in (f"{key}-0", f"{key}-1"):
            c = connect(shards.daemons[name], shards.job_env(name))
            if any(r["id"] == group_run_id(key) for r in c.request("list_test_runs", {})["runs"]):
                merged = _read_all(c, group_run_id(key))
        assert len(merged) == 2 * per_shard and len({r["name"] for r in merged}) == 2 * per_shard

        # the next pipeline run reuses the key: its shard is told, and published on its own
        late = Job(shards, key, 0, 2, shard_results(0, 6))
        late.name = "pipeline-8-0"
        late.start()
        warnings = [n["params"] for n in late.client.notifications if n["method"] == "window/logMessage"]
        assert any(w["type"] == 2 and key in w["message"] and "concluded already" in w["message"] for w in warnings)
        run = late.client.request("get_test_run_status", {"test_run_id": late.run_id})
        assert key in (run.get("note") or "") and "concluded already" in run["note"], run
        assert run.get("group") is None
        late.report()
        done = late.client.request("complete_test_run", {"test_run_id": late.run_id, "wait": True})
        assert done["counts"]["total"] == 6 and key in done["note"]
        assert len(_read_all(late.client, late.run_id)) == 6
        out = json.loads(next((short_tmp / "pipeline-8-0").rglob(f"{late.run_id}/results.json")).read_text())
        assert out["run"]["name"] == RUN and len(out["results"]) == 6
        again = wait_final(moto.client(), bucket, f"groups/{slug(key)}", 5)
        assert again["shards"] == doc["shards"]  # the concluded group is left as it was
