"""Artifacts end to end: the real daemon, driven through the Python client, publishing to `local`."""

from __future__ import annotations

import base64
import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pytest

from ci_sidecar_client import Client, RpcError
from helpers import DaemonProcess


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def local_path(url: str) -> Path:
    assert url.startswith("file://")
    return Path(unquote(urlparse(url).path))


def blobs(state: Path) -> list[Path]:
    return [p for p in (state / "cas" / "blobs").rglob("*") if p.is_file()]


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "out"


@pytest.fixture
def client(daemon: DaemonProcess, out: Path) -> Client:
    return daemon.client(config={"output_dir": str(out)})


@pytest.fixture
def run_id(client: Client) -> str:
    return client.request("create_test_run", {"name": "artifacts"})["id"]


@pytest.fixture
def limited(short_tmp: Path, env: dict[str, str]) -> Iterator[DaemonProcess]:
    d = DaemonProcess.start(short_tmp / "l.sock", dict(env, CI_SIDECAR_ARTIFACT_MAX_FILE_BYTES="1000",
                                                       CI_SIDECAR_ARTIFACT_MAX_RUN_BYTES="2500",
                                                       CI_SIDECAR_ARTIFACT_STREAM_IDLE_S="0.4"))
    try:
        yield d
    finally:
        d.stop()


def rpc_error(c: Client, method: str, params: dict[str, Any]) -> RpcError:
    with pytest.raises(RpcError) as e:
        c.request(method, params)
    return e.value


def test_upload_by_path_materialises_a_local_copy(client: Client, run_id: str, tmp_path: Path, daemon: DaemonProcess,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "x_perf.json"
    src.write_text('{"throughput": 12}')
    art = client.request("upload_artifact", {"test_run_id": run_id, "path": str(src), "labels": ["perf"],
                                             "metadata": {"board": "rev-b"}, "wait": True})
    assert art["name"] == "x_perf.json" and art["type"] == "performance_report"
    assert art["mime_type"] == "application/json" and art["size"] == src.stat().st_size
    assert art["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert art["upload"] == {"state": "local", "action": "created", "provider": "local"}
    assert art["labels"] == ["perf"] and art["metadata"] == {"board": "rev-b"}
    copy = local_path(art["url"])
    assert copy == tmp_path / "out" / run_id / "artifacts" / "x_perf.json" and copy.read_bytes() == src.read_bytes()
    assert Path(art["stored_path"]).read_bytes() == src.read_bytes()
    assert client.request("get_artifact_url", {"test_run_id": run_id, "name": "x_perf.json"}) == {"url": art["url"]}
    assert client.request("get_artifact_by_name", {"test_run_id": run_id, "name": "x_perf.json"}) == art
    assert client.request("get_artifact_by_name", {"test_run_id": run_id, "name": "nope"}) is None
    assert client.request("get_artifacts_for_test_run", {"test_run_id": run_id}) == [art]
    # the type is the client's to override; a relative path is relative to the session's cwd
    monkeypatch.chdir(tmp_path)
    other = daemon.client().request("upload_artifact", {"test_run_id": run_id, "path": "x_perf.json",
                                                        "name": "raw/p.json", "type": "raw_numbers"})
    assert other["type"] == "raw_numbers" and other["name"] == "raw/p.json"


def test_upload_by_content_for_clients_that_cannot_share_files(client: Client, run_id: str) -> None:
    data = b"line 1\nline 2\n"
    art = client.request("upload_artifact", {"test_run_id": run_id, "content_base64": b64(data),
                                             "name": "logs/run_summary.txt", "wait": True})
    assert art["type"] == "test_summary" and art["size"] == len(data)
    assert local_path(art["url"]).read_bytes() == data
    assert rpc_error(client, "upload_artifact", {"test_run_id": run_id, "content_base64": b64(data)}).code == -32602
    both = rpc_error(client, "upload_artifact", {"test_run_id": run_id, "content_base64": b64(data), "path": "x",
                                                 "name": "x"})
    assert both.code == -32602
    bad = rpc_error(client, "upload_artifact", {"test_run_id": run_id, "content_base64": "%%%", "name": "x"})
    assert bad.code == -32602 and bad.data["path"] == "$.content_base64"


@pytest.mark.parametrize("name", ["../escape.txt", "a/../../escape.txt", "/abs/escape.txt", "a\x00b", "..\\x",
                                  "C:\\temp\\x"])
def test_names_that_leave_the_run_are_refused(client: Client, run_id: str, out: Path, name: str) -> None:
    e = rpc_error(client, "upload_artifact", {"test_run_id": run_id, "content_base64": b64(b"x"), "name": name})
    assert e.code == -31005 and e.data["path"] == name and e.data["reason"]
    assert client.request("get_artifacts_for_test_run", {"test_run_id": run_id}) == []
    assert not any(p.name.startswith("escape") for p in out.parent.rglob("escape*"))


def test_source_paths_and_symlinks_are_confined(client: Client, run_id: str, tmp_path: Path) -> None:
    escape = tmp_path / "innocent.log"
    escape.symlink_to("/etc/passwd")
    for path in ("/etc/passwd", str(escape)):
        e = rpc_error(client, "upload_artifact", {"test_run_id": run_id, "path": path})
        assert e.code == -31005 and e.data["path"] == path and "outside" in e.data["reason"]
    e = rpc_error(client, "upload_artifact", {"test_run_id": run_id, "path": str(tmp_path)})
    assert e.code == -31005 and "regular file" in e.data["reason"]
    e = rpc_error(client, "upload_artifact", {"test_run_id": run_id, "path": str(tmp_path / "missing")})
    assert e.code == -31005 and "no such file" in e.data["reason"]
    real = tmp_path / "real.log"
    real.write_text("inside")
    (tmp_path / "alias.log").symlink_to(real)  # a link that stays inside the roots is fine
    art = client.request("upload_artifact", {"test_run_id": run_id, "path": str(tmp_path / "alias.log")})
    assert art["name"] == "alias.log" and art["size"] == 6


def test_symlinked_output_folder_fails_the_upload_visibly(client: Client, run_id: str, out: Path,
                                                          tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (out / run_id / "artifacts").mkdir(parents=True)
    (out / run_id / "artifacts" / "sub").symlink_to(outside)
    e = rpc_error(client, "upload_artifact", {"test_run_id": run_id, "content_base64": b64(b"x"),
                                              "name": "sub/x.txt", "wait": True})
    assert e.code == -31003  # the provider refused: not a success
    art = client.request("get_artifact_by_name", {"test_run_id": run_id, "name": "sub/x.txt"})
    assert art["upload"]["state"] == "failed" and art["upload"]["error"]["code"] == -31003
    assert "url" not in art and list(outside.iterdir()) == []
    assert client.request("get_artifact_url", {"test_run_id": run_id, "name": "sub/x.txt"}) == {"url": None}
    run = client.request("get_test_run_status", {"test_run_id": run_id})
    assert run["delivery"]["failed"] == 1


def test_size_limits(limited: DaemonProcess, tmp_path: Path) -> None:
    c = limited.client(config={"output_dir": str(tmp_path / "out")})
    rid = c.request("create_test_run", {"name": "limits"})["id"]
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * 1001)
    e = rpc_error(c, "upload_artifact", {"test_run_id": rid, "path": str(big)})
    assert e.code == -31006 and e.data == {"limit": 1000, "actual": 1001}
    e = rpc_error(c, "upload_artifact", {"test_run_id": rid, "content_base64": b64(b"y" * 1001), "name": "y"})
    assert e.code == -31006 and e.data == {"limit": 1000, "actual": 1001}
    for i in range(2):
        c.request("upload_artifact", {"test_run_id": rid, "content_base64": b64(bytes([i]) * 900), "name": f"f{i}"})
    c.request("upload_artifact", {"test_run_id": rid, "content_base64": b64(b"z" * 900), "name": "f1"})  # replaces
    e = rpc_error(c, "upload_artifact", {"test_run_id": rid, "content_base64": b64(b"w" * 900), "name": "f2"})
    assert e.code == -31006 and e.data == {"limit": 2500, "actual": 2700}
    e = rpc_error(c, "open_artifact_stream", {"test_run_id": rid, "name": "s", "size": 5000})
    assert e.code == -31006
    h = c.request("open_artifact_stream", {"test_run_id": rid, "name": "s"})["handle"]
    c.request("write_artifact_stream", {"test_run_id": rid, "handle": h, "offset": 0, "chunk_base64": b64(b"a" * 600)})
    e = rpc_error(c, "write_artifact_stream", {"test_run_id": rid, "handle": h, "offset": 600,
                                               "chunk_base64": b64(b"a" * 600)})
    assert e.code == -31006 and e.data == {"limit": 1000, "actual": 1200}
    e = rpc_error(c, "close_artifact_stream", {"test_run_id": rid, "handle": h})
    assert e.code == -32602  # discarded with its partial content
    assert [a["name"] for a in c.request("get_artifacts_for_test_run", {"test_run_id": rid})] == ["f0", "f1"]


def test_streams_ignore_resent_chunks_and_check_the_digest(client: Client, run_id: str) -> None:
    data = os.urandom(300_000)
    h = client.request("open_artifact_stream", {"test_run_id": run_id, "name": "trace/rig.pcap",
                                                "size": len(data), "labels": ["rig"]})["handle"]
    w = lambda off, chunk: client.request("write_artifact_stream", {  # noqa: E731
        "test_run_id": run_id, "handle": h, "offset": off, "chunk_base64": b64(chunk)})
    assert w(0, data[:100_000]) == {"written": 100_000}
    assert w(0, data[:100_000]) == {"written": 100_000}  # a resend after a lost answer
    assert w(50_000, data[50_000:200_000]) == {"written": 200_000}  # overlapping
    gap = rpc_error(client, "write_artifact_stream", {"test_run_id": run_id, "handle": h, "offset": 250_000,
                                                      "chunk_base64": b64(b"x")})
    assert gap.code == -32602 and gap.data["path"] == "$.offset" and "200000" in gap.data["reason"]
    early = rpc_error(client, "close_artifact_stream", {"test_run_id": run_id, "handle": h})
    assert early.code == -32602 and "200000 of 300000" in early.data["reason"]  # still open: finish it
    assert w(200_000, data[200_000:]) == {"written": 300_000}
    art = client.request("close_artifact_stream", {"test_run_id": run_id, "handle": h,
                                                   "sha256": hashlib.sha256(data).hexdigest().upper(), "wait": True})
    assert art["size"] == len(data) and art["type"] == "trace" and art["labels"] == ["rig"]
    assert local_path(art["url"]).read_bytes() == data
    again = rpc_error(client, "write_artifact_stream", {"test_run_id": run_id, "handle": h, "offset": 0,
                                                        "chunk_base64": b64(b"x")})
    assert again.code == -32602 and again.data["path"] == "$.handle"
    # a wrong digest discards the upload
    h2 = client.request("open_artifact_stream", {"test_run_id": run_id, "name": "bad.bin"})["handle"]
    client.request("write_artifact_stream", {"test_run_id": run_id, "handle": h2, "offset": 0,
                                             "chunk_base64": b64(b"corrupted")})
    e = rpc_error(client, "close_artifact_stream", {"test_run_id": run_id, "handle": h2,
                                                    "sha256": hashlib.sha256(b"intended").hexdigest()})
    assert e.code == -32602 and e.data["path"] == "$.sha256"
    assert client.request("get_artifact_by_name", {"test_run_id": run_id, "name": "bad.bin"}) is None
    big = rpc_error(client, "write_artifact_stream", {"test_run_id": run_id, "handle": h2, "offset": 0,
                                                      "chunk_base64": b64(b"x" * (8 * 1024 * 1024 + 1))})
    assert big.code == -32602 and big.data["path"] == "$.chunk_base64"


def test_streams_die_with_their_session_or_when_idle(limited: DaemonProcess, env: dict[str, str]) -> None:
    state = Path(env["CI_SIDECAR_STATE_DIR"]) / "private"
    a = limited.client()
    rid = a.request("create_test_run", {"name": "streams"})["id"]
    h = a.request("open_artifact_stream", {"test_run_id": rid, "name": "s.log"})["handle"]
    a.request("write_artifact_stream", {"test_run_id": rid, "handle": h, "offset": 0, "chunk_base64": b64(b"part")})
    a.close()
    b = limited.client()
    deadline = time.monotonic() + 5
    while list((state / "cas" / "tmp").iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    e = rpc_error(b, "write_artifact_stream", {"test_run_id": rid, "handle": h, "offset": 4,
                                               "chunk_base64": b64(b"more")})
    assert e.code == -32602 and list((state / "cas" / "tmp").iterdir()) == []
    h2 = b.request("open_artifact_stream", {"test_run_id": rid, "name": "idle.log"})["handle"]
    time.sleep(1.2)  # idle limit 0.4 s in this daemon
    e = rpc_error(b, "close_artifact_stream", {"test_run_id": rid, "handle": h2})
    assert e.code == -32602 and list((state / "cas" / "tmp").iterdir()) == []


def test_same_bytes_are_stored_once_and_cost_nothing(client: Client, run_id: str, env: dict[str, str]) -> None:
    state = Path(env["CI_SIDECAR_STATE_DIR"]) / "private"
    data = os.urandom(10_000)
    a = client.request("upload_artifact", {"test_run_id": run_id, "content_base64": b64(data), "name": "a.bin"})
    b = client.request("upload_artifact", {"test_run_id": run_id, "content_base64": b64(data), "name": "b.bin",
                                           "wait": True})
    assert a["sha256"] == b["sha256"] and a["stored_path"] == b["stored_path"] and len(blobs(state)) == 1
    same = client.request("upload_artifact", {"test_run_id": run_id, "content_base64": b64(data), "name": "a.bin",
                                              "metadata": {"k": 1}})
    assert same["upload"]["action"] == "unchanged" and same["created_at"] == a["created_at"]
    assert same["metadata"] == {"k": 1} and same["upload"]["state"] in ("local", "pending")
    changed = client.request("upload_artifact", {"test_run_id": run_id, "content_base64": b64(b"new"),
                                                 "name": "a.bin", "wait": True})
    assert changed["upload"]["action"] == "replaced" and changed["size"] == 3
    assert local_path(changed["url"]).read_bytes() == b"new"
    assert len(blobs(state)) == 2  # the old content is still b.bin's
    client.request("upload_artifact", {"test_run_id": run_id, "content_base64": b64(b"other"), "name": "b.bin",
                                       "wait": True})
    assert sorted(p.name for p in blobs(state)) == sorted([hashlib.sha256(b"new").hexdigest(),
                                                           hashlib.sha256(b"other").hexdigest()])
    names = [x["name"] for x in client.request("get_artifacts_for_test_run", {"test_run_id": run_id})]
    assert names == ["a.bin", "b.bin"]  # replaced, never duplicated


def test_update_metadata_and_unknown_names(client: Client, run_id: str) -> None:
    client.request("upload_artifact", {"test_run_id": run_id, "content_base64": b64(b"x"), "name": "m.txt",
                                       "metadata": {"keep": 1, "drop": 2}})
    art = client.request("update_artifact_metadata", {"test_run_id": run_id, "name": "m.txt",
                                                      "metadata": {"drop": None, "new": {"n": [1]}},
                                                      "labels": ["a", "a", "b"]})
    assert art["metadata"] == {"keep": 1, "new": {"n": [1]}} and art["labels"] == ["a", "b"]
    e = rpc_error(client, "update_artifact_metadata", {"test_run_id": run_id, "name": "ghost", "metadata": {}})
    assert e.code == -31002 and e.data == {"test_run_id": run_id, "name": "ghost"}
    e = rpc_error(client, "get_artifact_url", {"test_run_id": run_id, "name": "ghost"})
    assert e.code == -31002
    e = rpc_error(client, "get_artifacts_for_test_run", {"test_run_id": "no-such-run"})
    assert e.code == -31001 and e.data == {"test_run_id": "no-such-run"}
    e = rpc_error(client, "upload_artifact", {"test_run_id": "no-such-run", "content_base64": b64(b"x"), "name": "x"})
    assert e.code == -31001
    e = rpc_error(client, "upload_artifact", {"test_run_id": run_id, "content_base64": b64(b"x"), "name": "m.txt/in"})
    assert e.code == -31005 and "conflicts" in e.data["reason"]


def test_purge_removes_the_runs_artifacts_and_unshared_content(client: Client, env: dict[str, str]) -> None:
    state = Path(env["CI_SIDECAR_STATE_DIR"]) / "private"
    r1 = client.request("create_test_run", {"name": "one"})["id"]
    r2 = client.request("create_test_run", {"name": "two"})["id"]
    shared, own = b"shared content", b"only in run one"
    a = client.request("upload_artifact", {"test_run_id": r1, "content_base64": b64(shared), "name": "s", "wait": True})
    client.request("upload_artifact", {"test_run_id": r1, "content_base64": b64(own), "name": "d/o", "wait": True})
    b = client.request("upload_artifact", {"test_run_id": r2, "content_base64": b64(shared), "name": "s", "wait": True})
    assert len(blobs(state)) == 2
    assert client.request("purge_artifacts_for_test_run", {"test_run_id": r1}) == {"removed": 2}
    assert client.request("get_artifacts_for_test_run", {"test_run_id": r1}) == []
    assert not local_path(a["url"]).exists() and local_path(b["url"]).read_bytes() == shared
    assert [p.name for p in blobs(state)] == [hashlib.sha256(shared).hexdigest()]
    assert client.request("purge_artifacts_for_test_run", {"test_run_id": r1}) == {"removed": 0}
    assert client.request("purge_artifacts_for_test_run", {"test_run_id": r2}) == {"removed": 1}
    assert blobs(state) == []


def test_uploads_to_a_finished_run_work(client: Client, run_id: str) -> None:
    client.request("complete_test_run", {"test_run_id": run_id})
    art = client.request("upload_artifact", {"test_run_id": run_id, "content_base64": b64(b"last log"),
                                             "name": "console.log", "wait": True})
    assert art["upload"]["state"] == "local"


def test_upload_artifacts_concurrently_with_per_item_answers_and_progress(client: Client, run_id: str,
                                                                         tmp_path: Path) -> None:
    items: list[dict[str, Any]] = []
    for i in range(30):
        p = tmp_path / f"f{i}.log"
        p.write_text(f"log {i}\n" * (i + 1))
        items.append({"path": str(p), "labels": [str(i)]})
    items.insert(5, {"path": "/etc/passwd"})
    items.insert(9, {"path": str(tmp_path / "f1.log"), "name": "../../x"})
    items.insert(12, {"path": str(tmp_path / "nope.log")})
    res = client.request("upload_artifacts", {"test_run_id": run_id, "items": items, "workDoneToken": "tok"})
    assert len(res) == 33
    assert [r["ok"] for r in res].count(False) == 3
    assert res[5] == {"name": "passwd", "ok": False, "error": res[5]["error"]} and res[5]["error"]["code"] == -31005
    assert res[9]["name"] == "../../x" and res[9]["error"]["code"] == -31005
    assert res[12]["name"] == "nope.log" and "no such file" in res[12]["error"]["data"]["reason"]
    oks = [r for r in res if r["ok"]]
    assert [r["name"] for r in oks] == [f"f{i}.log" for i in range(30)]  # answers keep the items' order
    assert all(r["artifact"]["labels"] == [r["name"][1:-4]] for r in oks)
    progress = [n["params"] for n in client.notifications if n["method"] == "$/progress"]
    assert all(p["token"] == "tok" for p in progress)
    kinds = [p["value"]["kind"] for p in progress]
    assert kinds[0] == "begin" and kinds[-1] == "end" and kinds.count("report") >= 10
    pcts = [p["value"]["percentage"] for p in progress if p["value"]["kind"] == "report"]
    assert pcts == sorted(pcts) and pcts[-1] == 100
    assert "30 uploaded, 3 failed" in progress[-1]["value"]["message"]
    listed = client.request("get_artifacts_for_test_run", {"test_run_id": run_id})
    assert len(listed) == 30


def test_kill_9_keeps_artifacts_and_urls_and_never_a_torn_one(short_tmp: Path, env: dict[str, str],
                                                              tmp_path: Path) -> None:
    state = Path(env["CI_SIDECAR_STATE_DIR"]) / "private"
    d = DaemonProcess.start(short_tmp / "k.sock", env)
    c = d.client(config={"output_dir": str(tmp_path / "out")})
    rid = c.request("create_test_run", {"name": "durable"})["id"]
    data = os.urandom(200_000)
    art = c.request("upload_artifact", {"test_run_id": rid, "content_base64": b64(data), "name": "keep.bin",
                                        "metadata": {"a": 1}, "wait": True})
    c.request("update_artifact_metadata", {"test_run_id": rid, "name": "keep.bin", "metadata": {"b": 2}})
    h = c.request("open_artifact_stream", {"test_run_id": rid, "name": "torn.bin", "size": 1_000_000})["handle"]
    c.request("write_artifact_stream", {"test_run_id": rid, "handle": h, "offset": 0, "chunk_base64": b64(data)})
    d.proc.kill()
    d.proc.wait()
    d.stop()  # closes the client of the dead daemon
    d2 = DaemonProcess.start(short_tmp / "k.sock", env)
    try:
        c2 = d2.client()
        listed = c2.request("get_artifacts_for_test_run", {"test_run_id": rid})
        assert [a["name"] for a in listed] == ["keep.bin"]  # the torn stream left nothing behind
        assert listed[0]["sha256"] == art["sha256"] and listed[0]["metadata"] == {"a": 1, "b": 2}
        assert listed[0]["upload"]["state"] == "local"
        assert c2.request("get_artifact_url", {"test_run_id": rid, "name": "keep.bin"}) == {"url": art["url"]}
        assert local_path(art["url"]).read_bytes() == data
        assert list((state / "cas" / "tmp").iterdir()) == [] and len(blobs(state)) == 1
        again = c2.request("upload_artifact", {"test_run_id": rid, "content_base64": b64(data), "name": "keep.bin"})
        assert again["upload"]["action"] == "unchanged"
    finally:
        d2.stop()
    # and once more through a snapshot (a clean stop checkpoints)
    d3 = DaemonProcess.start(short_tmp / "k.sock", env)
    try:
        listed = d3.client().request("get_artifacts_for_test_run", {"test_run_id": rid})
        assert [a["name"] for a in listed] == ["keep.bin"] and listed[0]["url"] == art["url"]
    finally:
        d3.stop()


def test_methods_are_advertised(client: Client) -> None:
    methods = set(client.initialize_result["capabilities"]["methods"])
    assert {"upload_artifact", "upload_artifacts", "open_artifact_stream", "write_artifact_stream",
            "close_artifact_stream", "get_artifact_url", "get_artifacts_for_test_run", "get_artifact_by_name",
            "update_artifact_metadata", "purge_artifacts_for_test_run"} <= methods
