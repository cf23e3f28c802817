"""The S3 artifact store against a real S3 protocol server (moto, server mode, 127.0.0.1).

Provider-level tests drive one attempt at a time (the outbox's retries are the delivery layer's);
end-to-end tests go through the real daemon and the Python client.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import msgspec
import pytest

from ci_sidecar.config import ConfigError, load_config
from ci_sidecar.protocol.records import CIContext
from ci_sidecar.providers.base import ProviderEnv, UploadArtifact
from ci_sidecar.providers.s3 import S3Provider, S3Secret, S3Settings, find_s3_credential, object_key, store_config
from ci_sidecar_client import Client, RpcError
from helpers import DaemonProcess
from s3_fixtures import DUMMY_KEY, Fault, FaultProxy, Moto, moto, moto_auth, proxy  # noqa: F401

MiB = 1024 * 1024
SECRET = "Sup3r/Secret+Key-" + "x" * 20  # what must never leak


def blob(tmp_path: Path, data: bytes) -> tuple[str, str]:
    digest = hashlib.sha256(data).hexdigest()
    path = tmp_path / digest
    path.write_bytes(data)
    return str(path), digest


def op_for(tmp_path: Path, data: bytes, name: str = "logs/out.txt", run_id: str = "run1",
           mime: str = "text/plain") -> UploadArtifact:
    path, digest = blob(tmp_path, data)
    return UploadArtifact(run_id=run_id, name=name, stored_path=path, sha256=digest, size=len(data), mime_type=mime)


def make_env(endpoint: str, bucket: str, key: tuple[str, str] = DUMMY_KEY, **settings: Any) -> ProviderEnv:
    config = {"bucket": bucket, "endpoint_url": endpoint, "path_style": True, "region": "us-east-1",
              "prefix": "ci/artifacts", "trust_env": False, **settings}
    token = S3Secret(access_key_id=key[0], secret_access_key=key[1]).encode()
    return ProviderEnv(ci=CIContext(provider="local", sources={}), config=config, base_url=endpoint, token=token)


@pytest.fixture
async def s3() -> Any:
    provider = S3Provider()
    yield provider
    await provider.aclose()


def get(url: str) -> httpx.Response:
    with httpx.Client(trust_env=False) as c:
        return c.get(url)


# --- keys, settings, credentials -------------------------------------------------------------------


def test_keys_and_addressing() -> None:
    assert object_key("/ci/", "r1", "a b/ü+x.txt") == "ci/r1/a b/ü+x.txt"
    assert object_key("", "r1", "x") == "r1/x"
    path = S3Settings(bucket="bkt", endpoint_url="http://127.0.0.1:9000", path_style=True)
    assert path.object_url("ci/r1/a b/ü+x.txt") == "http://127.0.0.1:9000/bkt/ci/r1/a%20b/%C3%BC%2Bx.txt"
    virtual = S3Settings(bucket="bkt", endpoint_url="https://s3.eu-west-1.amazonaws.com", path_style=False)
    assert virtual.object_url("k~1") == "https://bkt.s3.eu-west-1.amazonaws.com/k~1"
    public = S3Settings(bucket="b", endpoint_url="https://x", public_base_url="https://cdn.example/art/")
    assert public.public_url("r/a b") == "https://cdn.example/art/r/a%20b"


def test_config_section_layers_and_is_daemon_only(tmp_path: Path) -> None:
    (tmp_path / "ci-sidecar.toml").write_text('[artifact-store]\nbucket = "b"\nendpoint-url = "http://127.0.0.1:9"\n')
    loaded = load_config(env={"CI_SIDECAR_ARTIFACT_STORE_PREFIX": "p", "CI_SIDECAR_ARTIFACT_STORE_PRESIGN_TTL_S": "60"},
                         cwd=str(tmp_path))
    store = store_config(loaded.config)
    assert store is not None
    assert (store["bucket"], store["endpoint_url"], store["prefix"], store["presign_ttl_s"]) == ("b", "http://127.0.0.1:9", "p", 60)
    assert store["path_style"] is True  # a custom endpoint (MinIO, Ceph) defaults to path-style
    aws = store_config(load_config(env={"CI_SIDECAR_ARTIFACT_STORE_BUCKET": "b",
                                        "CI_SIDECAR_ARTIFACT_STORE_REGION": "eu-west-1"}, cwd="/nonexistent").config)
    assert aws is not None and aws["endpoint_url"] == "https://s3.eu-west-1.amazonaws.com" and aws["path_style"] is False
    with pytest.raises(ConfigError, match="daemon setting"):
        load_config(env={}, cwd=str(tmp_path), session_config={"artifact_store": {"bucket": "mine"}})
    with pytest.raises(ConfigError, match="PART_SIZE.*>= 5242880"):
        load_config(env={"CI_SIDECAR_ARTIFACT_STORE_PART_SIZE": "1024"}, cwd=str(tmp_path))
    assert store_config(load_config(env={}, cwd="/nonexistent").config) is None


def test_credentials_lookup_order_and_no_secret_in_refs(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "s3-access-key-id").write_text("AKIDFILE\n")
    (creds / "s3-secret-access-key").write_text(SECRET + "\n")
    session = {"AWS_ACCESS_KEY_ID": "AKIDSESSION", "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_SESSION_TOKEN": "tok-" + SECRET}
    found = find_s3_credential(session, {}, str(creds), "http://127.0.0.1:9")
    assert found is not None and found.source == "env:AWS_ACCESS_KEY_ID" and found.base_url == "http://127.0.0.1:9"
    assert S3Secret.decode(found.secret.reveal()).session_token == "tok-" + SECRET
    from_dir = find_s3_credential({}, {"AWS_ACCESS_KEY_ID": "only-id"}, str(creds), "http://x")
    assert from_dir is not None and from_dir.source == "credentials:s3-access-key-id"
    assert S3Secret.decode(from_dir.secret.reveal()).access_key_id == "AKIDFILE"
    for shown in (repr(found), str(msgspec.json.encode(found.ref()))):
        assert SECRET not in shown
    assert find_s3_credential({}, {}, None, "http://x") is None


def test_object_urls_are_encoded_like_the_aws_sdk(moto: Moto) -> None:
    """The path we sign and send is the one boto3 itself builds for the same key (S3's encode-once rule)."""
    key = "ci/r 1/a b+c ü(1)&=;,$@'!*.txt"
    ours = S3Settings(bucket="bkt", endpoint_url=moto.url, path_style=True).object_url(key)
    sdk = moto.client().generate_presigned_url("get_object", Params={"Bucket": "bkt", "Key": key}, ExpiresIn=60)
    assert urlsplit(ours).path == urlsplit(sdk).path


# --- uploads against moto --------------------------------------------------------------------------


async def test_small_upload_lands_with_the_right_bytes_key_and_a_working_presigned_url(
        s3: S3Provider, moto: Moto, tmp_path: Path) -> None:
    bucket = moto.bucket()
    data = os.urandom(3000)
    name = "logs/a b+c ü.txt"
    op = op_for(tmp_path, data, name=name, mime="text/plain")
    out = await s3.deliver(op, make_env(moto.url, bucket, presign_ttl_s=120), {})
    assert out.kind == "delivered", out.message
    key = "ci/artifacts/run1/logs/a b+c ü.txt"
    assert moto.objects(bucket) == {key: data}
    head = moto.client().head_object(Bucket=bucket, Key=key)
    assert head["ContentType"] == "text/plain" and head["ContentLength"] == len(data)
    assert out.remote and out.remote["key"] == key and out.remote["sha256"] == op.sha256 and out.tier == "object store"
    # the presigned URL works with nothing but plain HTTP, and says when it stops working
    assert out.url is not None and "X-Amz-Signature=" in out.url and SECRET not in out.url
    resp = get(out.url)
    assert resp.status_code == 200 and resp.content == data
    query = parse_qs(urlsplit(out.url).query)
    assert query["X-Amz-Expires"] == ["120"]
    expires = time.mktime(time.strptime(out.remote["expires_at"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert abs(expires - (time.time() + 120)) < 5


async def test_multipart_upload_lands_in_parts(s3: S3Provider, moto: Moto, tmp_path: Path) -> None:
    bucket = moto.bucket()
    data = os.urandom(12 * MiB + 123)
    op = op_for(tmp_path, data, name="trace.bin", mime="application/octet-stream")
    env = make_env(moto.url, bucket, multipart_threshold=5 * MiB, part_size=5 * MiB)
    out = await s3.deliver(op, env, {})
    assert out.kind == "delivered", out.message
    assert moto.objects(bucket) == {"ci/artifacts/run1/trace.bin": data}
    assert out.remote["etag"].strip('"').endswith("-3")  # S3's mark of a 3-part multipart object
    assert moto.unfinished_uploads(bucket) == []
    resp = get(out.url)
    assert resp.status_code == 200 and hashlib.sha256(resp.content).hexdigest() == op.sha256


_MEMORY_PROBE = """
import hashlib, json, os, sys, trio
from ci_sidecar.providers.base import UploadArtifact, ProviderEnv
from ci_sidecar.protocol.records import CIContext
from ci_sidecar.providers.s3 import S3Provider, S3Secret

endpoint, bucket, path, digest, size = sys.argv[1:6]
config = {"bucket": bucket, "endpoint_url": endpoint, "path_style": True, "trust_env": False,
          "multipart_threshold": 16 << 20, "part_size": 16 << 20}
env = ProviderEnv(ci=CIContext(provider="local", sources={}), config=config,
                  token=S3Secret(access_key_id="k", secret_access_key="s").encode())

async def main():
    s3 = S3Provider()
    warm = UploadArtifact(run_id="warm", name="w", stored_path=path, sha256=digest, size=int(size), mime_type="x")
    small = path + ".small"
    open(small, "wb").write(b"warm-up")
    await s3.deliver(UploadArtifact(run_id="warm", name="w", stored_path=small,
                                    sha256=hashlib.sha256(b"warm-up").hexdigest(), size=7, mime_type="x"), env, {})
    # ru_maxrss survives exec (it would report pytest's own peak): reset and read the kernel's high-water mark
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    before = status_kib("VmRSS")
    out = await s3.deliver(msgspec_replace(warm), env, {})
    after = status_kib("VmHWM")
    print(json.dumps({"kind": out.kind, "message": out.message, "grew_kib": after - before}))
    await s3.aclose()

def status_kib(field):
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(field + ":"))

def msgspec_replace(op):
    import msgspec
    return msgspec.structs.replace(op, run_id="big")

trio.run(main)
"""


def test_memory_stays_flat_during_a_large_multipart_upload(moto: Moto, tmp_path: Path) -> None:
    """Peak RSS of a process uploading 48 MiB in 16 MiB parts grows by far less than one part."""
    import subprocess
    import sys

    bucket = moto.bucket()
    size = 48 * MiB
    path = tmp_path / "big"
    digest = hashlib.sha256()
    with open(path, "wb") as fh:
        for _ in range(size // MiB):
            chunk = os.urandom(MiB)
            digest.update(chunk)
            fh.write(chunk)
    proc = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, moto.url, bucket, str(path), digest.hexdigest(),
                           str(size)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["kind"] == "delivered", result["message"]
    print(f"peak RSS grew {result['grew_kib'] / 1024:.1f} MiB uploading 48 MiB")
    assert result["grew_kib"] < 8 * 1024, f"peak RSS grew {result['grew_kib'] / 1024:.1f} MiB"
    assert moto.client().head_object(Bucket=bucket, Key="big/w")["ContentLength"] == size


async def test_throttling_and_5xx_are_retried_and_a_multipart_upload_resumes(
        s3: S3Provider, moto: Moto, proxy: FaultProxy, tmp_path: Path) -> None:
    bucket = moto.bucket()
    small = op_for(tmp_path, b"hello", name="small.txt")
    env = make_env(proxy.url, bucket, multipart_threshold=5 * MiB, part_size=5 * MiB)
    proxy.faults = [Fault("PUT", "small.txt", 503, "SlowDown")]
    first = await s3.deliver(small, env, {})
    assert first.kind == "retry" and first.status == 503 and "SlowDown" in first.message
    assert (await s3.deliver(small, env, {})).kind == "delivered"

    data = os.urandom(11 * MiB)
    big = op_for(tmp_path, data, name="big.bin")
    proxy.faults = [Fault("PUT", "partNumber=2", 500, "InternalError")]
    failed = await s3.deliver(big, env, {})
    assert failed.kind == "retry" and failed.remote is not None
    assert [n for n, _ in failed.remote["parts"]] == [1]  # what to resume from
    before = len(proxy.seen)
    done = await s3.deliver(big, env, failed.remote)
    assert done.kind == "delivered", done.message
    resent = [s.target for s in proxy.seen[before:] if s.method == "PUT"]
    assert not any("partNumber=1&" in t for t in resent) and any("partNumber=2&" in t for t in resent)
    assert moto.objects(bucket)["ci/artifacts/run1/big.bin"] == data
    assert moto.unfinished_uploads(bucket) == []
    # every request carried the payload's SHA-256 (signed), and the single PUT its checksum header
    puts = [s for s in proxy.seen if s.method == "PUT"]
    assert all(len(s.headers.get("X-Amz-Content-SHA256", "")) == 64 for s in puts)
    assert puts[0].headers["x-amz-checksum-sha256"] == base64.b64encode(bytes.fromhex(small.sha256)).decode()


async def test_refused_part_aborts_and_a_fresh_attempt_cleans_up_a_crashed_one(
        s3: S3Provider, moto: Moto, proxy: FaultProxy, tmp_path: Path) -> None:
    bucket = moto.bucket()
    env = make_env(proxy.url, bucket, multipart_threshold=5 * MiB, part_size=5 * MiB)
    big = op_for(tmp_path, os.urandom(6 * MiB), name="big.bin")
    proxy.faults = [Fault("PUT", "partNumber=2", 403, "AccessDenied")]
    refused = await s3.deliver(big, env, {})
    assert refused.kind == "refused" and refused.status == 403 and "AccessDenied" in refused.message
    assert moto.unfinished_uploads(bucket) == []  # aborted, not left to cost storage
    # a crash mid-upload leaves an unfinished upload nobody remembers: the next attempt removes it
    moto.client().create_multipart_upload(Bucket=bucket, Key="ci/artifacts/run1/big.bin")
    assert len(moto.unfinished_uploads(bucket)) == 1
    assert (await s3.deliver(big, env, {})).kind == "delivered"
    assert moto.unfinished_uploads(bucket) == []


async def test_signatures_are_checked_by_the_server_and_a_wrong_secret_is_refused(
        s3: S3Provider, moto_auth: Moto, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    moto_auth.set_auth(False)
    bucket = moto_auth.bucket()
    key = moto_auth.iam_key()
    moto_auth.set_auth(True)
    env = make_env(moto_auth.url, bucket, key, multipart_threshold=5 * MiB, part_size=5 * MiB)
    ok = await s3.deliver(op_for(tmp_path, b"signed", name="dir/x y~z.txt"), env, {})
    assert ok.kind == "delivered", ok.message
    assert (await s3.deliver(op_for(tmp_path, os.urandom(6 * MiB), name="m.bin"), env, {})).kind == "delivered"

    wrong = make_env(moto_auth.url, bucket, (key[0], SECRET))
    out = await s3.deliver(op_for(tmp_path, b"nope", name="denied.txt"), wrong, {})
    assert out.kind == "refused" and out.status == 403 and "SignatureDoesNotMatch" in out.message
    assert SECRET not in out.message and SECRET not in caplog.text
    unknown = make_env(moto_auth.url, bucket, ("AKIDNOSUCHKEY0000000", SECRET))
    out = await s3.deliver(op_for(tmp_path, b"nope", name="denied.txt"), unknown, {})
    assert out.kind == "refused" and "InvalidAccessKeyId" in out.message and SECRET not in out.message


async def test_public_base_url_and_missing_settings(s3: S3Provider, moto: Moto, tmp_path: Path) -> None:
    bucket = moto.bucket()
    moto.client().put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"}]}))
    env = make_env(moto.url, bucket, public_base_url=f"{moto.url}/{bucket}")
    out = await s3.deliver(op_for(tmp_path, b"public"), env, {})
    assert out.url == f"{moto.url}/{bucket}/ci/artifacts/run1/logs/out.txt" and "expires_at" not in out.remote
    assert get(out.url).content == b"public"
    no_creds = ProviderEnv(ci=env.ci, config=env.config, token=None)
    refused = await s3.deliver(op_for(tmp_path, b"x"), no_creds, {})
    assert refused.kind == "refused" and "AWS_ACCESS_KEY_ID" in refused.message
    caps = s3.capabilities(no_creds)
    assert caps.artifacts.kind == "native" and caps.artifacts.via == "object store" and "no credentials" in caps.artifacts.note
    assert s3.capabilities(ProviderEnv(ci=env.ci, config={})).artifacts.kind == "none"
    gone = op_for(tmp_path, b"gone", name="gone.txt")
    os.unlink(gone.stored_path)
    assert (await s3.deliver(gone, env, {})).kind == "refused"


async def test_session_token_urls_are_marked_ephemeral(s3: S3Provider, moto: Moto, tmp_path: Path) -> None:
    bucket = moto.bucket()
    env = make_env(moto.url, bucket)
    env.token = S3Secret(access_key_id="AKIDTEMP", secret_access_key=SECRET, session_token="TOKEN" + SECRET).encode()
    out = await s3.deliver(op_for(tmp_path, b"temp"), env, {})
    assert out.kind == "delivered" and out.url is None and out.remote["ephemeral_url"] is True
    assert "TOKEN" not in msgspec.json.encode(out).decode()  # nothing that gets journaled carries it
    url, expires = s3.presign_url(out.remote, env)
    assert "X-Amz-Security-Token=" in url and expires and get(url).content == b"temp"


# --- end to end: the real daemon, configured by environment ----------------------------------------


def store_env(env: dict[str, str], endpoint: str, bucket: str, key: tuple[str, str], **extra: str) -> dict[str, str]:
    out = dict(env, CI_SIDECAR_ARTIFACT_STORE_BUCKET=bucket, CI_SIDECAR_ARTIFACT_STORE_ENDPOINT_URL=endpoint,
               CI_SIDECAR_ARTIFACT_STORE_PREFIX="ci", AWS_ACCESS_KEY_ID=key[0], AWS_SECRET_ACCESS_KEY=key[1],
               NO_PROXY="127.0.0.1,localhost")
    out.update({f"CI_SIDECAR_ARTIFACT_STORE_{k.upper()}": v for k, v in extra.items()})
    return out


@pytest.fixture
def session_env(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> dict[str, str]:
    """What the client sends at initialize: the scrubbed environment, no AWS keys of its own."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return env


def start(short_tmp: Path, env: dict[str, str]) -> Iterator[DaemonProcess]:
    d = DaemonProcess.start(short_tmp / "s3.sock", env)
    try:
        yield d
    finally:
        d.stop()


def test_end_to_end_upload_url_refresh_and_retry(short_tmp: Path, session_env: dict[str, str], moto: Moto,
                                                 proxy: FaultProxy, tmp_path: Path) -> None:
    bucket = moto.bucket()
    # URLs live 6 s: long enough to be used and asked for again on a loaded machine (X-Amz-Date is whole
    # seconds, so a URL may be good for 5 s only), short enough to watch one expire
    env = store_env(session_env, proxy.url, bucket, ("AKIDE2E", SECRET), presign_ttl_s="6")
    for d in start(short_tmp, env):
        c: Client = d.client(config={"output_dir": str(tmp_path / "out")})
        tier = c.initialize_result["capabilities"]["roles"]["ci"]["artifacts"]
        assert tier["kind"] == "native" and tier["via"] == "object store" and bucket in tier["note"]
        run = c.request("create_test_run", {"name": "s3"})["id"]
        proxy.faults = [Fault("PUT", "report.html", 503, "SlowDown")]  # the outbox tries again
        data = b"<html>" + os.urandom(2000)
        art = c.request("upload_artifact", {"test_run_id": run, "name": "out/report.html",
                                            "content_base64": base64.b64encode(data).decode(), "wait": True,
                                            "wait_s": 30})
        assert art["upload"] == {"state": "uploaded", "action": "created", "provider": "s3"}
        assert proxy.faults[0].times == 0  # the store did throttle the first PUT
        assert moto.objects(bucket) == {f"ci/{run}/out/report.html": data}
        assert art["url"].startswith(f"{proxy.url}/{bucket}/ci/{run}/out/report.html?") and art["url_expires_at"]
        assert get(art["url"]).content == data
        local = tmp_path / "out" / run / "artifacts" / "out" / "report.html"
        assert local.read_bytes() == data  # and the local copy as always

        first = c.request("get_artifact_url", {"test_run_id": run, "name": "out/report.html"})
        assert first == {"url": art["url"], "expires_at": art["url_expires_at"]}
        # until it has expired, for the store (X-Amz-Date + X-Amz-Expires) and for the daemon (expires_at)
        expiry = datetime.fromisoformat(first["expires_at"].replace("Z", "+00:00")).timestamp()
        time.sleep(max(0.0, expiry + 0.2 - time.time()))
        assert get(first["url"]).status_code == 403 and proxy.expired_rejections == 1  # S3 would say so too
        fresh = c.request("get_artifact_url", {"test_run_id": run, "name": "out/report.html"})
        assert fresh["url"] != first["url"] and fresh["expires_at"] > first["expires_at"]
        assert get(fresh["url"]).content == data
        listed = c.request("get_artifact_by_name", {"test_run_id": run, "name": "out/report.html"})
        assert listed["url"] == fresh["url"]  # the refreshed URL is the artifact's URL now
        state = b"".join(p.read_bytes() for p in Path(env["CI_SIDECAR_STATE_DIR"]).rglob("*") if p.is_file())
        assert SECRET.encode() not in state and b"AKIDE2E" in state  # the key id is in URLs; the secret never
    assert SECRET not in d.log()


def test_end_to_end_wrong_credentials_fail_with_31003_and_never_leak(
        short_tmp: Path, session_env: dict[str, str], moto_auth: Moto, tmp_path: Path) -> None:
    moto_auth.set_auth(False)
    bucket = moto_auth.bucket()
    key_id, _ = moto_auth.iam_key()
    moto_auth.set_auth(True)
    env = store_env(session_env, moto_auth.url, bucket, (key_id, SECRET))
    for d in start(short_tmp, env):
        c: Client = d.client(config={"output_dir": str(tmp_path / "out")})
        run = c.request("create_test_run", {"name": "s3"})["id"]
        with pytest.raises(RpcError) as e:
            c.request("upload_artifact", {"test_run_id": run, "name": "x.txt", "wait": True,
                                          "content_base64": base64.b64encode(b"x").decode()})
        assert e.value.code == -31003 and "SignatureDoesNotMatch" in e.value.message
        art = c.request("get_artifact_by_name", {"test_run_id": run, "name": "x.txt"})
        assert art["upload"]["state"] == "failed" and art["upload"]["error"]["code"] == -31003
        shown = msgspec.json.encode([e.value.message, e.value.data, art]).decode()
        state = b"".join(p.read_bytes() for p in Path(env["CI_SIDECAR_STATE_DIR"]).rglob("*") if p.is_file())
        assert SECRET not in shown and SECRET.encode() not in state
    assert SECRET not in d.log()


def test_end_to_end_temporary_credentials_keep_their_token_out_of_state(
        short_tmp: Path, session_env: dict[str, str], moto: Moto, tmp_path: Path) -> None:
    bucket = moto.bucket()
    token = "FwoGZXIvYXdzE" + "t" * 40
    env = dict(store_env(session_env, moto.url, bucket, ("ASIATEMP", SECRET)), AWS_SESSION_TOKEN=token)
    for d in start(short_tmp, env):
        c: Client = d.client(config={"output_dir": str(tmp_path / "out")})
        run = c.request("create_test_run", {"name": "s3"})["id"]
        art = c.request("upload_artifact", {"test_run_id": run, "name": "t.txt", "wait": True,
                                            "content_base64": base64.b64encode(b"temporary").decode()})
        assert art["upload"]["state"] == "uploaded" and art["upload"]["provider"] == "s3"
        found = c.request("get_artifact_url", {"test_run_id": run, "name": "t.txt"})
        assert "X-Amz-Security-Token=" in found["url"] and found["expires_at"]
        assert get(found["url"]).content == b"temporary"
        # the URL is made on demand and kept in memory: neither the token nor the secret reach the state dir
        state = b"".join(p.read_bytes() for p in Path(env["CI_SIDECAR_STATE_DIR"]).rglob("*") if p.is_file())
        assert token.encode() not in state and SECRET.encode() not in state
    assert token not in d.log() and SECRET not in d.log()
