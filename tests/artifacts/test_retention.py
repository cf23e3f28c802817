"""Retention of the artifact store, end to end: a size limit applied oldest first right after uploads, an age
limit on a schedule; removed artifacts are gone from the lists, the URLs and the disk, and stay gone."""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ci_sidecar.config import ConfigError, load_config
from ci_sidecar_client import Client, RpcError
from helpers import DaemonProcess


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def blob_names(env: dict[str, str]) -> set[str]:
    root = Path(env["CI_SIDECAR_STATE_DIR"]) / "private" / "cas" / "blobs"
    return {p.name for p in root.rglob("*") if p.is_file()}


def names(c: Client, run: str) -> list[str]:
    return [a["name"] for a in c.request("get_artifacts_for_test_run", {"test_run_id": run})]


def rpc_error(c: Client, method: str, params: dict[str, Any]) -> RpcError:
    with pytest.raises(RpcError) as e:
        c.request(method, params)
    return e.value


@pytest.fixture
def sized(short_tmp: Path, env: dict[str, str]) -> Iterator[tuple[DaemonProcess, dict[str, str]]]:
    env = dict(env, CI_SIDECAR_ARTIFACT_RETENTION_MAX_BYTES="2500")
    d = DaemonProcess.start(short_tmp / "r.sock", env)
    try:
        yield d, env
    finally:
        d.stop()


def test_size_limit_removes_the_oldest_and_keeps_shared_content(sized: tuple[DaemonProcess, dict[str, str]],
                                                                 short_tmp: Path, tmp_path: Path) -> None:
    d, env = sized
    c = d.client(config={"output_dir": str(tmp_path / "out")})
    r1 = c.request("create_test_run", {"name": "one"})["id"]
    r2 = c.request("create_test_run", {"name": "two"})["id"]
    shared, only, newest = b"A" * 1000, b"B" * 1000, b"D" * 1000
    up = lambda run, name, data: c.request("upload_artifact", {  # noqa: E731
        "test_run_id": run, "name": name, "content_base64": b64(data), "wait": True})
    a = up(r1, "a.log", shared)
    b = up(r1, "b.log", only)
    up(r2, "c.log", shared)  # the same content: 2000 distinct bytes in the store
    assert names(c, r1) == ["a.log", "b.log"] and names(c, r2) == ["c.log"]
    d_art = up(r1, "d.log", newest)  # 3000 > 2500: the oldest go until it fits
    assert d_art["upload"]["state"] == "local"
    assert names(c, r1) == ["d.log"] and names(c, r2) == ["c.log"]
    # a.log went first, but its content is still c.log's: b.log had to go too, and only its blob was deleted
    assert blob_names(env) == {hashlib.sha256(shared).hexdigest(), hashlib.sha256(newest).hexdigest()}
    for gone in (a, b):
        assert c.request("get_artifact_by_name", {"test_run_id": r1, "name": gone["name"]}) is None
        e = rpc_error(c, "get_artifact_url", {"test_run_id": r1, "name": gone["name"]})
        assert e.code == -31002 and e.data == {"test_run_id": r1, "name": gone["name"]}
        assert not (tmp_path / "out" / r1 / "artifacts" / gone["name"]).exists()  # no dangling local copy
    assert (tmp_path / "out" / r1 / "artifacts" / "d.log").read_bytes() == newest
    # one artifact larger than the whole store is refused up front instead of emptying it
    e = rpc_error(c, "upload_artifact", {"test_run_id": r2, "name": "huge", "content_base64": b64(b"h" * 2600)})
    assert e.code == -31006 and e.data == {"limit": 2500, "actual": 2600}
    # upload_artifacts applies the limit once for the batch, never removing what it just stored
    files = []
    for i in range(3):
        p = tmp_path / f"batch{i}.bin"
        p.write_bytes(bytes([i]) * 800)
        files.append({"path": str(p)})
    res = c.request("upload_artifacts", {"test_run_id": r2, "items": files})
    assert [r["ok"] for r in res] == [True, True, True]
    assert names(c, r1) == [] and sorted(names(c, r2)) == ["batch0.bin", "batch1.bin", "batch2.bin"]
    d.stop()
    # the removals were journaled: a restart (through the snapshot a clean stop writes) does not bring them back
    d2 = DaemonProcess.start(short_tmp / "r2.sock", env)
    try:
        c2 = d2.client()
        assert names(c2, r1) == [] and sorted(names(c2, r2)) == ["batch0.bin", "batch1.bin", "batch2.bin"]
        assert len(blob_names(env)) == 3
    finally:
        d2.stop()


def test_age_limit_is_applied_on_a_schedule(short_tmp: Path, env: dict[str, str], tmp_path: Path) -> None:
    """Past the age limit an artifact goes on its own (list, URL, blob, local copy), a younger one stays until
    its own age is reached."""
    # 6 s, checked every 1.5 s; the uploads are 3 s apart, so the old one cannot age out before the new one is
    # listed beside it, and at least one check falls between the two ages even when the machine is loaded
    env = dict(env, CI_SIDECAR_ARTIFACT_RETENTION_DAYS=str(6.0 / 86400))
    d = DaemonProcess.start(short_tmp / "a.sock", env)
    try:
        c = d.client(config={"output_dir": str(tmp_path / "out")})
        run = c.request("create_test_run", {"name": "aging"})["id"]
        old = c.request("upload_artifact", {"test_run_id": run, "name": "old.txt", "content_base64": b64(b"old"),
                                            "wait": True})
        time.sleep(3.0)
        c.request("upload_artifact", {"test_run_id": run, "name": "new.txt", "content_base64": b64(b"new"),
                                      "wait": True})
        assert names(c, run) == ["old.txt", "new.txt"]
        old_copy = tmp_path / "out" / run / "artifacts" / "old.txt"
        deadline = time.monotonic() + 30
        while names(c, run) != ["new.txt"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert names(c, run) == ["new.txt"]  # the old one went on its own, the younger one not yet
        assert blob_names(env) == {hashlib.sha256(b"new").hexdigest()}
        assert rpc_error(c, "get_artifact_url", {"test_run_id": run, "name": old["name"]}).code == -31002
        # the local copy is deleted after the removal is journaled (the list already says so): wait for it
        while old_copy.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not old_copy.exists()
        while names(c, run) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert names(c, run) == [] and blob_names(env) == set()
    finally:
        d.stop()


def test_retention_keys_are_daemon_settings(tmp_path: Path) -> None:
    loaded = load_config(env={"CI_SIDECAR_ARTIFACT_RETENTION_DAYS": "7",
                              "CI_SIDECAR_ARTIFACT_RETENTION_MAX_BYTES": "1000000"}, cwd=str(tmp_path))
    assert loaded.config.artifact_retention_days == 7 and loaded.config.artifact_retention_max_bytes == 1_000_000
    assert load_config(env={}, cwd=str(tmp_path)).config.artifact_retention_max_bytes is None
    for key in ("artifact_retention_days", "artifact_retention_max_bytes"):
        with pytest.raises(ConfigError, match="daemon setting"):
            load_config(env={}, cwd=str(tmp_path), session_config={key: 1})
    with pytest.raises(ConfigError):
        load_config(env={"CI_SIDECAR_ARTIFACT_RETENTION_MAX_BYTES": "0"}, cwd=str(tmp_path))
