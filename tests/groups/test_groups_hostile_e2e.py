"""Sharded groups against hostile input: keys that look like paths stay inside ``groups/<slug>/``, one key in two
repositories makes two groups, and objects in the store that no shard of this version wrote (damaged, another
version's, hostile) never stop the daemon."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from ci_sidecar.service.groups.model import slug
from ci_sidecar.service.groups.spec import scoped_key
from fakes.shards import RUN, Shards, connect, wait_final
from helpers import wait_for
from s3_fixtures import DUMMY_KEY, REGION, Moto, moto  # noqa: F401


def test_hostile_keys_stay_in_their_own_folder(moto: Moto, short_tmp: Path) -> None:  # noqa: F811
    """Keys made of ``..``, ``/``, NUL and unicode each get one folder directly under ``groups/`` (no dot segment,
    no slash of their own), and two different keys never share one."""
    bucket = moto.bucket()
    shards = Shards(short_tmp, moto.url, bucket, None, region=REGION, key=DUMMY_KEY)
    keys = ["../../outside", "/", "..", "a/../../b", "nul\x00byte", "ünï\u202ecode", "%2e%2e/x"]
    try:
        d = shards.start("hostile")
        c = connect(d, shards.job_env("hostile"))
        for key in keys:
            run = c.request("create_test_run", {"name": RUN, "group": {"key": key, "shard": 0, "total": 1}})
            c.request("report_results", {"test_run_id": run["id"], "results": [{"name": "t", "status": "passed"}]})
            c.request("complete_test_run", {"test_run_id": run["id"]})
        for key in keys:
            wait_final(moto.client(), bucket, f"groups/{slug(key)}", 30)
        folders = {k.split("/")[1] for k in moto.objects(bucket)}
        assert folders == {slug(k) for k in keys} and len(folders) == len(keys)
        assert all(k.startswith("groups/") and ".." not in k.split("/") for k in moto.objects(bucket))
    finally:
        shards.stop()


def test_unreadable_objects_in_the_store_never_stop_the_daemon(moto: Moto, short_tmp: Path) -> None:  # noqa: F811
    """Another shard's state.json with wrong types, one whose run id climbs out of the group's folder, and a
    damaged group.json of another group: the daemon logs them, keeps serving, and still publishes the group it
    can read (its own shard) as final."""
    bucket = moto.bucket()
    s3 = moto.client()
    good, broken = "wf-1:unit", "wf-2:unit"
    s3.put_object(Bucket=bucket, Key=f"groups/{slug(good)}/1/state.json", Body=b'{"shard": "one"}')
    s3.put_object(Bucket=bucket, Key=f"groups/{slug(good)}/2/state.json", Body=json.dumps({
        "shard": 2, "run_id": "../../../" + slug(broken), "name": RUN, "status": "finished",
        "segments": [[0, 1]], "start_wall": 1.0, "updated_wall": 1.0}).encode())
    s3.put_object(Bucket=bucket, Key=f"groups/{slug(broken)}/group.json", Body=b"\x00not json")
    shards = Shards(short_tmp, moto.url, bucket, None, region=REGION, key=DUMMY_KEY)
    try:
        d = shards.start("shard0")
        c = connect(d, shards.job_env("shard0"))
        other = c.request("create_test_run", {"name": RUN, "group": {"key": broken, "shard": 0}})
        run = c.request("create_test_run", {"name": RUN, "group": {"key": good, "shard": 0}})
        c.request("report_results", {"test_run_id": run["id"], "results": [{"name": "t", "status": "passed"}]})
        c.request("complete_test_run", {"test_run_id": run["id"]})
        doc = wait_final(s3, bucket, f"groups/{slug(good)}", 30)
        assert set(doc["shards"]) == {"0"} and doc["conclusion"] == "success"
        wait_for(lambda: "is not a group object" in d.log(), what="the damaged group.json logged")
        assert d.proc.poll() is None
        assert c.request("get_test_run_status", {"test_run_id": other["id"]})["status"] == "running"
        assert "not readable" in d.log() and "Traceback" not in d.log()
        d.proc.kill()  # a clean stop would wait its flush timeout for the broken group's shard to hand over
    finally:
        shards.stop()


def _repository(path: Path, origin: str) -> Path:
    path.mkdir()
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    subprocess.run(["git", "-C", str(path), "remote", "add", "origin", origin], check=True)
    return path


def test_one_key_in_two_repositories_is_two_groups(moto: Moto, short_tmp: Path) -> None:  # noqa: F811
    """Jobs of two repositories that share a bucket and a daemon and both say key "unit": two runs, two folders,
    each group holding only its own repository's test."""
    bucket = moto.bucket()
    shards = Shards(short_tmp, moto.url, bucket, None, region=REGION, key=DUMMY_KEY)
    try:
        d = shards.start("shared")
        runs = {}
        for name in ("one", "two"):
            cwd = _repository(short_tmp / name, f"https://git.example.test/team/{name}.git")
            c = connect(d, {**shards.job_env("shared"), "CI": "false"}, cwd=str(cwd))
            run = c.request("create_test_run", {"name": RUN, "group": {"key": "unit", "shard": 0, "total": 1}})
            c.request("report_results", {"test_run_id": run["id"], "results": [{"name": f"t_{name}", "status": "passed"}]})
            c.request("complete_test_run", {"test_run_id": run["id"]})
            runs[name] = run["id"]
        assert runs["one"] != runs["two"]
        for name in ("one", "two"):
            doc = wait_final(moto.client(), bucket, f"groups/{slug(scoped_key(f'team/{name}', 'unit'))}", 30)
            assert doc["shards"]["0"]["run_id"] == runs[name] and doc["shards"]["0"]["counts"]["total"] == 1
    finally:
        shards.stop()
