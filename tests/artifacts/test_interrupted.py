"""Large uploads interrupted: SIGTERM during a multipart upload to a slow S3 (the daemon still stops within its
5 s budget, and the upload completes after a restart), and kill -9 while a 200 MB artifact is stored by path or
by stream (after a restart the artifact is complete or absent, never torn, and no partial blob or temp file
is left)."""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from ci_sidecar_client import Client
from helpers import DaemonProcess
from s3_fixtures import FaultProxy, Moto, moto, proxy  # noqa: F401
from test_s3 import SECRET, session_env, store_env  # noqa: F401

MiB = 1024 * 1024


def private(env: dict[str, str]) -> Path:
    return Path(env["CI_SIDECAR_STATE_DIR"]) / "private"


def big_file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "wb") as fh:
        for _ in range(size // (8 * MiB)):
            chunk = os.urandom(8 * MiB)
            digest.update(chunk)
            fh.write(chunk)
    return digest.hexdigest()


def test_sigterm_during_a_slow_multipart_upload_stops_in_time_and_resumes_after_restart(
        short_tmp: Path, session_env: dict[str, str], moto: Moto, proxy: FaultProxy,  # noqa: F811
        tmp_path: Path) -> None:
    bucket = moto.bucket()
    env = store_env(session_env, proxy.url, bucket, ("AKIDSTOP", SECRET), multipart_threshold=str(5 * MiB),
                    part_size=str(5 * MiB))
    src = tmp_path / "trace.bin"
    digest = big_file(src, 32 * MiB)
    proxy.hold = ("PUT", "partNumber=3&")  # the store stops reading in the middle of the upload
    d = DaemonProcess.start(short_tmp / "t.sock", env)
    c: Client = d.client(config={"output_dir": str(tmp_path / "out")})
    run = c.request("create_test_run", {"name": "slow store"})["id"]
    art = c.request("upload_artifact", {"test_run_id": run, "path": str(src)})
    assert art["sha256"] == digest and art["upload"]["state"] == "pending"
    deadline = time.monotonic() + 20
    while not proxy.held and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proxy.held == 1 and len(moto.unfinished_uploads(bucket)) == 1
    started = time.monotonic()
    d.proc.send_signal(signal.SIGTERM)
    try:
        code = d.proc.wait(10)
    finally:
        d.stop()
    took = time.monotonic() - started
    print(f"stopped {took:.2f} s after SIGTERM with a part upload held by the store")
    assert took < 5.0, f"stopping took {took:.1f} s with an upload in flight"
    assert code == 0, d.log()
    assert moto.objects(bucket) == {}  # nothing reported done that was not
    proxy.hold = None
    proxy.release.set()
    d2 = DaemonProcess.start(short_tmp / "t.sock", env)
    try:
        c2 = d2.client()
        deadline = time.monotonic() + 30
        state: dict[str, Any] = {}
        while time.monotonic() < deadline:
            state = c2.request("get_artifact_by_name", {"test_run_id": run, "name": "trace.bin"})
            if state["upload"]["state"] != "pending":
                break
            time.sleep(0.1)
        assert state["upload"] == {"state": "uploaded", "action": "created", "provider": "s3"}, state
        body = moto.client().get_object(Bucket=bucket, Key=f"ci/{run}/trace.bin")["Body"].read()
        assert hashlib.sha256(body).hexdigest() == digest
        assert moto.unfinished_uploads(bucket) == []  # the interrupted one was aborted, not left to cost storage
    finally:
        d2.stop()


def _check_store(env: dict[str, str], run: str, name: str, digest: str, size: int, out: Path) -> str:
    """After a restart: the artifact is complete or absent; every blob holds the bytes its name says; no temp
    files anywhere. Returns "complete" or "absent"."""
    d = DaemonProcess.start(Path(env["SOCK"]), env)
    try:
        c = d.client()
        listed = c.request("get_artifacts_for_test_run", {"test_run_id": run})
        # the write the kill interrupted (e.g. run.json, whose temp file it left) is redelivered from the
        # journal; that redelivery clears the leftover, so wait for it rather than for a fixed time
        deadline = time.monotonic() + 30
        while c.request("sidecar/status")["outbox"]["pending"] and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        d.stop()
    cas = private(env) / "cas"
    assert list((cas / "tmp").iterdir()) == []
    for blob in (cas / "blobs").rglob("*"):
        if blob.is_file():
            h = hashlib.sha256()
            with open(blob, "rb") as fh:
                while chunk := fh.read(8 * MiB):
                    h.update(chunk)
            assert h.hexdigest() == blob.name, f"torn blob {blob}"
    leftovers = [p for p in out.rglob("*") if ".tmp" in p.name]
    assert leftovers == []
    if not listed:
        assert not any(p.is_file() for p in (cas / "blobs").rglob("*"))
        return "absent"
    [art] = listed
    assert (art["name"], art["sha256"], art["size"]) == (name, digest, size)
    assert (cas / "blobs" / digest[:2] / digest).stat().st_size == size
    return "complete"


@pytest.fixture
def crash_env(short_tmp: Path, env: dict[str, str]) -> dict[str, str]:
    return dict(env, SOCK=str(short_tmp / "c.sock"))


def _partial_upload(cas_tmp: Path, size: int) -> bool:
    for p in cas_tmp.iterdir():
        try:
            if 0 < p.stat().st_size < size:
                return True
        except FileNotFoundError:
            pass
    return False


def test_kill_9_during_a_200_mb_upload_by_path(crash_env: dict[str, str], tmp_path: Path) -> None:
    size = 200 * MiB
    src = tmp_path / "dump.bin"
    digest = big_file(src, size)
    out = tmp_path / "out"
    d = DaemonProcess.start(Path(crash_env["SOCK"]), crash_env)
    c = d.client(config={"output_dir": str(out)})
    run = c.request("create_test_run", {"name": "crash"})["id"]
    cas_tmp = private(crash_env) / "cas" / "tmp"
    errors: list[BaseException] = []

    def upload() -> None:
        try:
            c.request("upload_artifact", {"test_run_id": run, "path": str(src)}, timeout=60)
        except BaseException as exc:  # the daemon dies under it
            errors.append(exc)

    t = threading.Thread(target=upload)
    t.start()
    deadline = time.monotonic() + 30
    caught = False
    while not (caught := _partial_upload(cas_tmp, size)) and t.is_alive() and time.monotonic() < deadline:
        time.sleep(0.002)
    d.proc.kill()
    d.proc.wait()
    t.join(10)
    d.stop()
    assert caught, "the upload finished before it could be interrupted"
    assert _check_store(crash_env, run, "dump.bin", digest, size, out) == "absent"


def test_kill_9_while_a_200_mb_stream_is_closed(crash_env: dict[str, str], tmp_path: Path) -> None:
    size = 200 * MiB
    out = tmp_path / "out"
    d = DaemonProcess.start(Path(crash_env["SOCK"]), crash_env)
    c = d.client(config={"output_dir": str(out)})
    run = c.request("create_test_run", {"name": "crash"})["id"]
    h = c.request("open_artifact_stream", {"test_run_id": run, "name": "rig.pcap", "size": size})["handle"]
    digest = hashlib.sha256()
    chunk_size = 8 * MiB
    for offset in range(0, size, chunk_size):
        chunk = os.urandom(chunk_size)
        digest.update(chunk)
        c.request("write_artifact_stream", {"test_run_id": run, "handle": h, "offset": offset,
                                            "chunk_base64": base64.b64encode(chunk).decode()}, timeout=60)
    t = threading.Thread(target=lambda: _quietly(c, "close_artifact_stream", {"test_run_id": run, "handle": h}))
    t.start()
    time.sleep(0.05)  # inside close: the fsync of 200 MB, the rename, the journal record
    d.proc.kill()
    d.proc.wait()
    t.join(10)
    d.stop()
    result = _check_store(crash_env, run, "rig.pcap", digest.hexdigest(), size, out)
    assert result in ("complete", "absent")


def _quietly(c: Client, method: str, params: dict[str, Any]) -> None:
    try:
        c.request(method, params, timeout=60)
    except BaseException:
        pass
