"""``get_artifact_url`` when the provider URL is not known: a lookup through the provider's API that checks the
content, per provider (local, S3 against moto, GitHub against the fake REST list), and through the daemon
(a pending upload, the answer cached and persisted); null when nothing is verifiable, never an invented URL."""

from __future__ import annotations

import base64
import hashlib
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import msgspec
import pytest

from ci_sidecar.protocol.records import CIContext
from ci_sidecar.providers.base import ProviderEnv
from ci_sidecar.providers.github import GitHubProvider
from ci_sidecar.providers.local import LocalProvider
from ci_sidecar.providers.s3 import S3Provider
from ci_sidecar_client import Client
from helpers import DaemonProcess
from s3_fixtures import Fault, FaultProxy, Moto, moto, proxy  # noqa: F401
from test_s3 import SECRET, make_env, op_for, session_env, store_env  # noqa: F401

SERVER = "https://github.example"


def get(url: str) -> httpx.Response:
    with httpx.Client(trust_env=False) as c:
        return c.get(url)


# --- providers -------------------------------------------------------------------------------------


async def test_local_lookup_checks_the_file_holds_the_content(tmp_path: Path) -> None:
    local = LocalProvider()
    op = op_for(tmp_path, b"content", name="sub/x.txt")
    op = msgspec.structs.replace(op, output_dir=str(tmp_path / "o"))
    env = ProviderEnv(ci=CIContext(provider="local", sources={}))
    assert await local.lookup_artifact(op, env, {}) is None  # not materialised (yet)
    assert (await local.deliver(op, env, {})).kind == "delivered"
    found = await local.lookup_artifact(op, env, {})
    assert found is not None and found.url == (tmp_path / "o" / "artifacts" / "sub" / "x.txt").as_uri()
    copy = tmp_path / "o" / "artifacts" / "sub" / "x.txt"
    copy.unlink()
    copy.write_bytes(b"content")  # a copy, not the hard link: still this content
    assert (await local.lookup_artifact(op, env, {})) is not None
    copy.unlink()
    copy.write_bytes(b"CONTENT")  # same size, other bytes
    assert await local.lookup_artifact(op, env, {}) is None


@pytest.fixture
async def s3() -> AsyncIterator[S3Provider]:
    provider = S3Provider()
    yield provider
    await provider.aclose()


async def test_s3_lookup_heads_the_key_and_checks_the_digest(s3: S3Provider, moto: Moto, tmp_path: Path) -> None:
    bucket = moto.bucket()
    env = make_env(moto.url, bucket)
    small = op_for(tmp_path, b"small object", name="a.txt")
    assert await s3.lookup_artifact(small, env, {}) is None  # nothing there
    assert (await s3.deliver(small, env, {})).kind == "delivered"
    found = await s3.lookup_artifact(small, env, {})  # without the remote state: the key follows from the name
    assert found is not None and found.remote and found.remote["expires_at"] and get(found.url).content == b"small object"
    data = os.urandom(6 * 1024 * 1024)  # multipart: no whole-object checksum, the sha256 metadata says it
    big = op_for(tmp_path, data, name="big.bin")
    out = await s3.deliver(big, make_env(moto.url, bucket, multipart_threshold=5 << 20, part_size=5 << 20), {})
    assert out.kind == "delivered"
    found = await s3.lookup_artifact(big, env, out.remote or {})
    assert found is not None and get(found.url).content == data
    # other bytes under the key (an older upload, a hand-made object): not this artifact's URL
    moto.client().put_object(Bucket=bucket, Key="ci/artifacts/run1/a.txt", Body=b"something else")
    assert await s3.lookup_artifact(small, env, {}) is None
    wrong = make_env("http://127.0.0.1:9", bucket)  # nothing listens: not verifiable, no exception
    assert await s3.lookup_artifact(big, wrong, {}) is None


async def test_github_lookup_uses_the_rest_list_and_the_archive_digest(tmp_path: Path) -> None:
    from fakes.github_artifacts import FakeGitHubArtifacts, FakeResults
    from fakes.spec import require_spec

    spec = require_spec("github/api.github.com.ci-subset.json")
    gh = GitHubProvider()
    try:
        with FakeResults() as results:
            ci = CIContext(provider="github", sources={}, repository="octo/repo", build_id="4242", job="test",
                           server_url=SERVER, commit_sha="a" * 40)
            upload_env = ProviderEnv(ci=ci, config={"trust_env": False, "actions_results_url": results.url,
                                                    "actions_runtime_token_present": True, "github_job": "test"},
                                     base_url=results.url.rstrip("/"), token=results.token("run-uuid-1", "job-1"))
            op = op_for(tmp_path, b"junit xml", name="r.xml")
            out = await gh.deliver(op, upload_env, {})
            assert out.kind == "delivered" and out.remote
            with FakeGitHubArtifacts(spec, results) as rest:
                env = ProviderEnv(ci=ci, config={"trust_env": False}, base_url=rest.url, token="app-token")
                found = await gh.lookup_artifact(op, env, out.remote)
                assert found is not None and found.url == out.url
                # a restart between upload and finalize leaves no digest: it follows from crc32 and mtime
                partial = {k: v for k, v in out.remote.items() if k not in ("digest", "artifact_id", "url")}
                again = await gh.lookup_artifact(op, env, partial)
                assert again is not None and again.url == out.url
                other = op_for(tmp_path, b"other xml", name="r.xml")
                assert await gh.lookup_artifact(other, env, out.remote) is None  # not what we sent
                assert await gh.lookup_artifact(op, env, {}) is None  # nothing of ours to verify against
                assert await gh.lookup_artifact(op, ProviderEnv(ci=ci, config=env.config, base_url=rest.url),
                                                out.remote) is None  # no API token
                assert rest.violations == []
    finally:
        await gh.aclose()


# --- through the daemon ----------------------------------------------------------------------------


@pytest.fixture
def daemon_s3(short_tmp: Path, session_env: dict[str, str], moto: Moto,  # noqa: F811
              proxy: FaultProxy) -> Iterator[tuple[dict[str, str], str]]:  # noqa: F811
    bucket = moto.bucket()
    yield store_env(session_env, proxy.url, bucket, ("AKIDLOOKUP", SECRET)), bucket


def test_pending_upload_url_is_looked_up_verified_cached_and_persisted(
        daemon_s3: tuple[dict[str, str], str], short_tmp: Path, moto: Moto, proxy: FaultProxy,  # noqa: F811
        tmp_path: Path) -> None:
    env, bucket = daemon_s3
    proxy.faults = [Fault("PUT", "/pending.bin", 503, "SlowDown", times=10_000)]  # the upload stays pending
    data = os.urandom(5000)
    d = DaemonProcess.start(short_tmp / "l.sock", env)
    try:
        c: Client = d.client(config={"output_dir": str(tmp_path / "out")})
        run = c.request("create_test_run", {"name": "lookup"})["id"]
        art = c.request("upload_artifact", {"test_run_id": run, "name": "pending.bin", "wait": True, "wait_s": 0.5,
                                            "content_base64": base64.b64encode(data).decode()})
        assert art["upload"]["state"] == "pending" and art["upload"]["provider"] == "s3"
        local = (tmp_path / "out" / run / "artifacts" / "pending.bin").as_uri()
        ask = lambda: c.request("get_artifact_url", {"test_run_id": run, "name": "pending.bin"})  # noqa: E731
        heads = lambda: sum(1 for s in proxy.seen if s.method == "HEAD")  # noqa: E731
        assert ask() == {"url": local}  # the store has nothing yet: the local copy, never a guessed S3 URL
        assert heads() == 1
        key = f"ci/{run}/pending.bin"
        moto.client().put_object(Bucket=bucket, Key=key, Body=b"not the artifact",
                                 Metadata={"sha256": hashlib.sha256(b"not the artifact").hexdigest()})
        time.sleep(2.1)  # past the in-memory "not found" (2 s)
        assert ask() == {"url": local} and heads() == 2  # an object, but other content: not its URL
        # the object shows up (e.g. an upload by a previous daemon completed): verified, then served from cache
        moto.client().put_object(Bucket=bucket, Key=key, Body=data, Metadata={"sha256": art["sha256"]})
        time.sleep(2.1)
        found = ask()
        assert found["url"].startswith(f"{proxy.url}/{bucket}/{key}?") and found["expires_at"] and heads() == 3
        assert get(found["url"]).content == data
        assert ask() == found and heads() == 3
    finally:
        d.proc.kill()  # (a clean stop would wait for the pending upload) the answer is journaled already
        d.proc.wait()
        d.stop()
    d2 = DaemonProcess.start(short_tmp / "l.sock", env)
    try:
        c2 = d2.client()
        assert c2.request("get_artifact_url", {"test_run_id": run, "name": "pending.bin"}) == found
        assert heads() == 3  # the verified answer was persisted with its lifetime
    finally:
        d2.proc.kill()
        d2.proc.wait()
        d2.stop()
