"""GitHub Actions artifacts (v4) against the fake results service: what ends up on the run, and what never leaks."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import subprocess
import tracemalloc
import zipfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from ci_sidecar.config import Config
from ci_sidecar.protocol.records import CIContext
from ci_sidecar.providers._http import HttpConfig, HttpLayer
from ci_sidecar.providers.base import Outcome, ProviderEnv, UploadArtifact
from ci_sidecar.providers.github import GitHubProvider
from ci_sidecar.providers.github._zip import ZipLayout
from ci_sidecar.providers.github.artifact_lookup import find_run_artifact
from ci_sidecar.providers.github.runtime import (
    ACTIONS_RUNTIME,
    artifact_prefix,
    find_actions_runtime,
    github_artifact_name,
    parse_runtime_token,
)
from ci_sidecar.service.session_context import SessionContext

from fakes.github_artifacts import MAX_PER_JOB, TOO_MANY, FakeArtifact, FakeGitHubArtifacts, FakeResults, make_runtime_token
from fakes.spec import OpenApiSpec, require_spec
from helpers import missing

SERVER = "https://github.example"


@pytest.fixture
def results() -> Iterator[FakeResults]:
    with FakeResults() as fake:
        yield fake
    assert len(fake.violations) == fake.expected_violations, fake.violations


@pytest.fixture
async def gh() -> AsyncIterator[GitHubProvider]:
    provider = GitHubProvider()
    yield provider
    await provider.aclose()


class Job:
    """One job run of the workflow run: its runtime token and the ProviderEnv its uploads get."""

    def __init__(self, results: FakeResults, job_id: str = "job-uuid-1", *, job: str = "test",
                 matrix: str | None = None, **config: Any) -> None:
        self.token = results.token("run-uuid-1", job_id)
        self.logs: list[str] = []
        cfg: dict[str, Any] = {"trust_env": False, "actions_results_url": results.url,
                               "actions_runtime_token_present": True, "github_job": job, **config}
        if matrix is not None:
            cfg["artifact_matrix"] = matrix
        self.env = ProviderEnv(
            ci=CIContext(provider="github", sources={}, repository="octo/repo", build_id="4242", job=job,
                         server_url=SERVER, commit_sha="a" * 40),
            config=cfg, base_url=results.url.rstrip("/"), token=self.token, log=self.logs.append)


def stored(tmp_path: Path, name: str, data: bytes) -> UploadArtifact:
    path = tmp_path / hashlib.sha256(data).hexdigest()
    path.write_bytes(data)
    return UploadArtifact(run_id="run-1", name=name, stored_path=str(path), sha256=hashlib.sha256(data).hexdigest(),
                          size=len(data), mime_type="text/plain")


def unzip(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.testzip() is None
        return {info.filename: zf.read(info) for info in zf.infolist()}


async def until_delivered(gh: GitHubProvider, op: UploadArtifact, env: ProviderEnv,
                          remote: dict[str, Any] | None = None, attempts: int = 5) -> tuple[Outcome, list[Outcome]]:
    """What the outbox does, minus the waiting: retry with the remote state of the last attempt."""
    seen: list[Outcome] = []
    state = dict(remote or {})
    for _ in range(attempts):
        out = await gh.deliver(op, env, state)
        seen.append(out)
        if out.remote is not None:
            state = out.remote
        if out.kind != "retry":
            return out, seen
    return out, seen


async def test_small_file_is_one_zip_in_three_calls(gh: GitHubProvider, results: FakeResults, tmp_path: Path) -> None:
    job = Job(results)
    data = b"<testsuite tests='1'/>\n" * 100
    out = await gh.deliver(stored(tmp_path, "reports/junit.xml", data), job.env, {})
    assert out.kind == "delivered" and out.tier == "actions artifact" and out.action == "created", out
    [art] = results.finalized()
    assert art.name == "test-reports_junit.xml"
    assert unzip(results.content(art)) == {"reports/junit.xml": data}
    assert art.digest == "sha256:" + hashlib.sha256(results.content(art)).hexdigest()
    assert out.url == f"{SERVER}/octo/repo/actions/runs/4242/artifacts/{art.id}"
    assert [r.operation for r in results.calls()] == ["CreateArtifact", "blob", "FinalizeArtifact"]
    create, blob, finalize = results.calls()
    assert create.body["version"] == 4 and create.headers["authorization"] == f"Bearer {job.token}"
    assert "authorization" not in blob.headers and blob.headers["x-ms-blob-type"] == "BlockBlob"
    assert finalize.body["size"] == str(art.size) and finalize.body["hash"] == art.digest


async def test_large_file_goes_in_blocks_with_constant_memory(gh: GitHubProvider, results: FakeResults,
                                                              tmp_path: Path) -> None:
    block = 256 * 1024
    job = Job(results, artifact_block_bytes=block)
    peaks = []
    for name, size in (("small.bin", 1024 * 1024 + 7), ("big.bin", 8 * 1024 * 1024 + 12345)):
        data = os.urandom(size)
        op = stored(tmp_path, name, data)
        tracemalloc.start()
        try:
            out = await gh.deliver(op, job.env, {})
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        assert out.kind == "delivered", out
        [art] = [a for a in results.finalized() if a.name == f"test-{name}"]
        assert unzip(results.content(art)) == {name: data}
    blocks = [r for r in results.calls("blob") if r.query.get("comp") == ["block"]]
    lists = [r for r in results.calls("blob") if r.query.get("comp") == ["blocklist"]]
    assert len(lists) == 2 and len(blocks) == sum(-(-a.size // block) for a in results.finalized())
    # memory is a few blocks and reads whatever the size: 7 MiB more file, well under 1 MiB more memory
    assert peaks[1] - peaks[0] < 1024 * 1024, peaks


async def test_zip64_archive_is_readable(gh: GitHubProvider, results: FakeResults, tmp_path: Path) -> None:
    job = Job(results, artifact_zip64=True, artifact_block_bytes=4096)
    data = b"x" * 10000
    out = await gh.deliver(stored(tmp_path, "z.txt", data), job.env, {})
    assert out.kind == "delivered", out
    assert unzip(results.content(results.finalized()[0])) == {"z.txt": data}


def test_zip_layout_is_deterministic() -> None:
    a = ZipLayout("a.txt", 5, 123, 1_700_000_000.0)
    b = ZipLayout("a.txt", 5, 123, 1_700_000_000.0)
    assert (a.header, a.trailer, a.size) == (b.header, b.trailer, b.size)


async def test_matrix_legs_get_their_own_names(gh: GitHubProvider, results: FakeResults, tmp_path: Path) -> None:
    legs = [Job(results, f"job-{i}", matrix=json.dumps({"os": "ubuntu-latest", "python": py}))
            for i, py in enumerate(["3.11", "3.12"])]
    for i, leg in enumerate(legs):
        out = await gh.deliver(stored(tmp_path, "report.html", f"leg {i}".encode()), leg.env, {})
        assert out.kind == "delivered", out
    names = sorted(a.name for a in results.finalized())
    assert names == ["test-ubuntu-latest-3.11-report.html", "test-ubuntu-latest-3.12-report.html"]


async def test_another_jobs_artifact_is_never_replaced(gh: GitHubProvider, results: FakeResults,
                                                       tmp_path: Path) -> None:
    first, second = Job(results, "job-a"), Job(results, "job-b")  # a matrix without the matrix input
    assert (await gh.deliver(stored(tmp_path, "r.txt", b"one"), first.env, {})).kind == "delivered"
    out = await gh.deliver(stored(tmp_path, "r.txt", b"two"), second.env, {})
    assert out.kind == "refused" and "another job" in out.message and "matrix" in out.message
    [art] = results.finalized()
    assert unzip(results.content(art)) == {"r.txt": b"one"}


async def test_reupload_same_content_is_a_no_op_and_new_content_replaces(gh: GitHubProvider, results: FakeResults,
                                                                         tmp_path: Path) -> None:
    job = Job(results)
    first = await gh.deliver(stored(tmp_path, "r.txt", b"v1"), job.env, {})
    calls = len(results.calls())
    again = await gh.deliver(stored(tmp_path, "r.txt", b"v1"), job.env, first.remote or {})
    assert again.kind == "delivered" and again.action == "skipped" and again.url == first.url
    assert len(results.calls()) == calls
    newer = await gh.deliver(stored(tmp_path, "r.txt", b"v2"), job.env, first.remote or {})
    assert newer.kind == "delivered" and newer.action == "replaced"
    [art] = results.finalized()
    assert unzip(results.content(art)) == {"r.txt": b"v2"} and newer.url and newer.url.endswith(f"/{art.id}")


async def test_reupload_after_lost_state_finds_the_artifact(gh: GitHubProvider, results: FakeResults,
                                                            tmp_path: Path) -> None:
    job = Job(results)
    op = stored(tmp_path, "r.txt", b"same bytes")
    first = await gh.deliver(op, job.env, {})
    out = await gh.deliver(op, job.env, {})  # e.g. a restart that lost the remote state
    assert out.kind == "delivered" and out.url == first.url
    assert [r.operation for r in results.calls()][3:] == ["CreateArtifact", "ListArtifacts"]
    assert len(results.finalized()) == 1


async def test_lost_create_response_does_not_duplicate(gh: GitHubProvider, results: FakeResults,
                                                       tmp_path: Path) -> None:
    job = Job(results)
    results.inject("lost", "CreateArtifact")
    out, seen = await until_delivered(gh, stored(tmp_path, "r.txt", b"data"), job.env)
    assert [o.kind for o in seen] == ["retry", "delivered"], seen
    [art] = results.finalized()
    assert unzip(results.content(art)) == {"r.txt": b"data"}


async def test_lost_finalize_response_is_recognised(gh: GitHubProvider, results: FakeResults,
                                                    tmp_path: Path) -> None:
    job = Job(results)
    results.inject("lost", "FinalizeArtifact")
    out, seen = await until_delivered(gh, stored(tmp_path, "r.txt", b"data"), job.env)
    assert [o.kind for o in seen] == ["retry", "delivered"], seen
    assert len(results.calls("blob")) == 1  # the second attempt did not upload again
    [art] = results.finalized()
    assert out.url and out.url.endswith(f"/{art.id}")


@pytest.mark.parametrize("kind", ["503", "reset"])
async def test_blob_outage_is_retried(gh: GitHubProvider, results: FakeResults, tmp_path: Path, kind: str) -> None:
    job = Job(results)
    results.inject(kind, "blob")
    out, seen = await until_delivered(gh, stored(tmp_path, "r.txt", b"data"), job.env)
    assert [o.kind for o in seen] == ["retry", "delivered"], seen
    assert len(results.finalized()) == 1


async def test_url_lookup_through_the_rest_list(gh: GitHubProvider, results: FakeResults, tmp_path: Path) -> None:
    spec: OpenApiSpec = require_spec("github/api.github.com.ci-subset.json")
    job = Job(results)
    out = await gh.deliver(stored(tmp_path, "r.txt", b"data"), job.env, {})
    with FakeGitHubArtifacts(spec, results) as rest:
        layer = HttpLayer("github")
        try:
            api = layer.session(HttpConfig(base_url=rest.url, trust_env=False), "app-token", None)
            found = await find_run_artifact(api, "octo/repo", 4242, "test-r.txt", server_url=SERVER)
            missing = await find_run_artifact(api, "octo/repo", 4242, "nope", server_url=SERVER)
        finally:
            await layer.aclose()
        assert rest.violations == []
    [art] = results.finalized()
    assert found is not None and found.id == art.id and found.html_url == out.url
    assert found.digest == art.digest and found.archive_download_url and found.archive_download_url.endswith("/zip")
    assert missing is None


async def test_without_the_service_artifacts_are_unsupported(gh: GitHubProvider, tmp_path: Path) -> None:
    env = ProviderEnv(ci=CIContext(provider="github", sources={}, repository="octo/repo"), config={},
                      token="ghs_installation")
    assert gh.capabilities(env).artifacts.kind == "none"
    out = await gh.deliver(stored(tmp_path, "r.txt", b"x"), env, {})
    assert out.kind == "unsupported" and "S3" in out.message and "export-runtime" in out.message


async def test_capabilities_with_the_service(gh: GitHubProvider, results: FakeResults) -> None:
    caps = gh.capabilities(Job(results, matrix='{"os": "macos-14"}').env)
    assert caps.artifacts.kind == "native" and caps.artifacts.via == "actions artifact service"
    assert "test-macos-14-" in (caps.artifacts.note or "")


async def test_expired_runtime_token_is_refused(gh: GitHubProvider, results: FakeResults, tmp_path: Path) -> None:
    job = Job(results)
    job.env.token = results.token("run-uuid-1", "job-uuid-1", exp=1_000_000_000)
    out = await gh.deliver(stored(tmp_path, "r.txt", b"x"), job.env, {})
    assert out.kind == "refused" and "expired" in out.message and results.calls() == []


async def test_runtime_token_never_leaks(gh: GitHubProvider, results: FakeResults, tmp_path: Path,
                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    job = Job(results)
    outcomes = []
    results.inject("503", "CreateArtifact")
    results.inject("lost", "FinalizeArtifact")
    outcomes += (await until_delivered(gh, stored(tmp_path, "a.txt", b"a"), job.env))[1]
    stranger = Job(results, "job-z")  # a refused upload (name taken by another job)
    outcomes.append(await gh.deliver(stored(tmp_path, "a.txt", b"b"), stranger.env, {}))
    bad = Job(results)
    bad.env.token = make_runtime_token("run-uuid-1", "job-uuid-1")  # unknown to the service: 401
    outcomes.append(await gh.deliver(stored(tmp_path, "b.txt", b"b"), bad.env, {}))
    assert [o.kind for o in outcomes] == ["retry", "retry", "delivered", "refused", "refused"], outcomes
    sigs = [r.query["sig"][0] for r in results.calls("blob")]
    text = json.dumps([o.message for o in outcomes] + [o.remote for o in outcomes]) + caplog.text
    text += "\n".join(job.logs + stranger.logs + bad.logs)
    for secret in [job.token, stranger.token, bad.env.token or "", *sigs]:
        assert secret not in text


def test_names_and_prefixes() -> None:
    env = ProviderEnv(ci=CIContext(provider="github", sources={}, job="build"), config={})
    assert artifact_prefix(env) == "build"
    env.config["artifact_matrix"] = json.dumps({"python": "3.12", "os": "windows-latest"})
    assert artifact_prefix(env) == "build-windows-latest-3.12"
    env.config["artifact_matrix"] = json.dumps({"k": "v" * 200})
    long_a = artifact_prefix(env)
    env.config["artifact_matrix"] = json.dumps({"k": "v" * 199})
    assert len(long_a) <= 60 and long_a != artifact_prefix(env)
    env.config["artifact_prefix"] = "custom"
    assert artifact_prefix(env) == "custom"
    assert github_artifact_name('a/b\\c:d*e?"f', "p") == "p-a_b_c_d_e__f"


def test_parse_runtime_token() -> None:
    ids = parse_runtime_token(make_runtime_token("r1", "j1", exp=2_000_000_000))
    assert (ids.run, ids.job, ids.expires_at) == ("r1", "j1", 2_000_000_000.0)
    with pytest.raises(ValueError) as err:
        parse_runtime_token("ghs_notajwt.secretpart.x")
    assert "secretpart" not in str(err.value)


def test_runtime_token_travels_as_a_credential_never_in_config() -> None:
    token = make_runtime_token("r1", "j1")
    env = {"ACTIONS_RUNTIME_TOKEN": token, "ACTIONS_RESULTS_URL": "https://results.example/path?x=1",
           "GITHUB_JOB": "unit", "CI_SIDECAR_MATRIX": '{"os":"linux"}'}
    cred = find_actions_runtime(env)
    assert cred is not None and cred.base_url == "https://results.example" and token not in repr(cred)
    ctx = SessionContext(session_id="s", ci=CIContext(provider="github", sources={}), config=Config(), cwd="/",
                         output_root="/tmp", env=env, credentials={ACTIONS_RUNTIME: cred})
    config = ctx.provider_config("github")
    assert config["actions_results_url"] == "https://results.example" and config["github_job"] == "unit"
    assert config["artifact_matrix"] == '{"os":"linux"}' and token not in json.dumps(config)
    ref = ctx.artifact_credential_ref("github")
    assert ref is not None and ref.provider == ACTIONS_RUNTIME and ref.fingerprint == cred.fingerprint
    assert find_actions_runtime({"ACTIONS_RUNTIME_TOKEN": token}) is None


ACTION = Path(__file__).resolve().parents[2] / ".github" / "actions" / "export-runtime"


def parse_github_env(text: str) -> dict[str, str]:
    """The runner's reading of ``$GITHUB_ENV``: ``NAME=value`` and ``NAME<<DELIM`` … ``DELIM`` entries."""
    out: dict[str, str] = {}
    lines = iter(text.splitlines())
    for line in lines:
        if "<<" in line:
            name, delim = line.split("<<", 1)
            value = []
            for nxt in lines:
                if nxt == delim:
                    break
                value.append(nxt)
            out[name] = "\n".join(value)
        elif "=" in line:
            name, value = line.split("=", 1)
            out[name] = value
    return out


def test_export_runtime_action_feeds_later_steps(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        missing("needs `node` (the action runs on the runner's node24)", "apt-get install nodejs")
    assert "using: node24" in (ACTION / "action.yml").read_text()
    github_env = tmp_path / "github_env"
    github_env.write_text("")
    token = make_runtime_token("r1", "j1")
    matrix = json.dumps({"os": "ubuntu-latest", "python": "3.12"}, indent=2)  # toJSON(matrix) is multi-line
    proc = subprocess.run([node, str(ACTION / "index.js")], capture_output=True, text=True, timeout=30, env={
        "PATH": os.environ.get("PATH", ""), "GITHUB_ENV": str(github_env), "ACTIONS_RUNTIME_TOKEN": token,
        "ACTIONS_RESULTS_URL": "https://results.example/", "INPUT_MATRIX": matrix, "INPUT_PREFIX": ""})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    exported = parse_github_env(github_env.read_text())
    assert exported == {"ACTIONS_RUNTIME_TOKEN": token, "ACTIONS_RESULTS_URL": "https://results.example/",
                        "CI_SIDECAR_MATRIX": matrix}
    assert f"::add-mask::{token}" in proc.stdout
    # what a later step's daemon session makes of it
    cred = find_actions_runtime(exported)
    assert cred is not None
    ctx = SessionContext(session_id="s", ci=CIContext(provider="github", sources={}, job="test"), config=Config(),
                         cwd="/", output_root="/tmp", env={**exported, "GITHUB_JOB": "test"},
                         credentials={ACTIONS_RUNTIME: cred})
    env = ProviderEnv(ci=ctx.ci, config=ctx.provider_config("github"))
    assert artifact_prefix(env) == "test-ubuntu-latest-3.12"
    # without the variables (a run: step, or a fork PR without them) it warns and exports nothing
    github_env.write_text("")
    proc = subprocess.run([node, str(ACTION / "index.js")], capture_output=True, text=True, timeout=30,
                          env={"PATH": os.environ.get("PATH", ""), "GITHUB_ENV": str(github_env)})
    assert proc.returncode == 0 and "::warning::" in proc.stdout and github_env.read_text() == ""


async def test_a_jobs_501st_artifact_is_refused_saying_why(gh: GitHubProvider, results: FakeResults,
                                                          tmp_path: Path) -> None:
    """The service refuses a job's 501st artifact: the upload fails for good with the service's reason (no retry
    loop), and another job of the run still has its own 500."""
    with results.lock:  # 500 artifacts this job already made (its own steps, earlier sessions)
        results.artifacts.extend(FakeArtifact(run="run-uuid-1", job="job-uuid-1", name=f"old-{i}", version=4,
                                              blob="", finalized=True, id=i + 1) for i in range(MAX_PER_JOB))
    op = stored(tmp_path, "one-too-many.txt", b"x")
    out, seen = await until_delivered(gh, op, Job(results).env)
    assert out.kind == "refused" and len(seen) == 1 and TOO_MANY in out.message, out
    other = await gh.deliver(op, Job(results, "job-uuid-2", job="lint").env, {})
    assert other.kind == "delivered", other
