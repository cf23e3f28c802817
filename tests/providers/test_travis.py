"""The Travis CI provider: nothing native (Travis takes no writes from a job), statuses and comments through the code
host, artifacts in the ``[artifact_store]`` with its presigned URLs and, without one, -31007 saying what to
configure; API v3 (the fake Travis) read by ``doctor --check`` for the build's state and link. Through the daemon: a
pull-request build, and the 10,000-result scenario with 30% faults and a kill -9 on the shared harness."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from artifacts.s3_fixtures import Moto, moto  # noqa: F401 - the moto S3 server fixture
from ci_sidecar.credentials import Credential, Secret
from ci_sidecar.protocol.records import CIContext
from ci_sidecar.providers.base import PostComment, ProviderEnv, SetStatus, UploadArtifact
from ci_sidecar.providers.travis import TravisProvider
from ci_sidecar_client import RpcError
from fakes.scenario import Plan, assert_faults_change_nothing, assert_kill_9_changes_nothing, connect
from fakes.scenario import wait_delivered
from fakes.spec import OpenApiSpec, require_spec
from fakes.travis import Build, FakeTravis
from fakes.travis_scenario import BUILD, GITHUB_TOKEN, HEAD, PR, TRAVIS_TOKEN, World
from helpers import DaemonProcess, scrubbed_env

MARKER = "<!-- ci-sidecar:key=coverage -->\n"


@pytest.fixture
def travis() -> Iterator[FakeTravis]:
    with FakeTravis(tokens={"tok-1"}) as fake:
        fake.add_build(Build(id=11, number="5", state="passed", slug="octo/repo", sha="a" * 40, jobs=(12,)))
        yield fake
    assert len(fake.violations) == fake.expected_violations, fake.violations


@pytest.fixture
def gh_spec() -> OpenApiSpec:
    return require_spec("github/api.github.com.ci-subset.json")


def env() -> ProviderEnv:
    return ProviderEnv(ci=CIContext(provider="travis", sources={}), config={})


async def test_travis_takes_no_writes_and_each_answer_says_where_it_belongs(tmp_path: Path) -> None:
    """Capabilities name no native tier; a status or comment that reached Travis points at the code host, an
    artifact at the [artifact_store] — each unsupported (-31007), none pretended."""
    provider = TravisProvider()
    caps = provider.capabilities(env())
    assert caps.test_run.kind == caps.build_status.kind == caps.pr_comment.kind == "none"
    assert (caps.artifacts.kind, caps.artifacts.via) == ("fallback", "artifact_store")
    stored = tmp_path / "blob"
    stored.write_bytes(b"x")
    art = UploadArtifact(run_id="r", name="a.log", stored_path=str(stored), sha256=hashlib.sha256(b"x").hexdigest(),
                         size=1, mime_type="text/plain")
    outs = [await provider.deliver(op, env(), {}) for op in (
        art, SetStatus(state="success", context="lint", sha="a" * 40), PostComment(body="b", mode="create"))]
    await provider.aclose()
    assert [o.kind for o in outs] == ["unsupported"] * 3
    assert "[artifact_store]" in outs[0].message and "code host" in outs[1].message and "PR comments" in outs[2].message


async def test_doctor_reads_the_build_through_api_v3(travis: FakeTravis) -> None:
    """``doctor --check`` reads the job's build with Travis-API-Version: 3 and ``Authorization: token``, shows its
    state and web link; a token Travis does not know fails with Travis' words and never shows the token."""
    provider = TravisProvider()
    job = {"TRAVIS_BUILD_ID": "11"}

    def cred(token: str) -> Credential:
        return Credential(provider="travis", base_url=travis.url, source="env:TRAVIS_TOKEN", fingerprint="f",
                          secret=Secret(token))

    ok = await provider.probe_access(CIContext(provider="travis", sources={}), job, cred("tok-1"), write=False,
                                     trust_env=False)
    bad = await provider.probe_access(CIContext(provider="travis", sources={}), job, cred("tok-wrong"), write=True,
                                      trust_env=False)
    none = await provider.probe_access(CIContext(provider="travis", sources={}), job, None, write=False,
                                       trust_env=False)
    await provider.aclose()
    (item,) = ok.items
    assert item.result == "proven" and "build 5 is passed" in item.detail
    assert item.detail.endswith("/octo/repo/builds/11")
    assert bad.items[0].result == "failed" and "login required" in bad.items[0].detail
    assert "tok-wrong" not in bad.items[0].detail
    assert none.items[0].result == "skipped"
    first = travis.calls()[0]
    assert (first.headers["travis-api-version"], first.headers["authorization"]) == ("3", "token tok-1")


def test_the_fake_paginates_builds_like_api_v3(travis: FakeTravis) -> None:
    """The fake's build list pages with ``@pagination`` (limit/offset, a next ``@href``) as API v3 does."""
    for i in range(3):
        travis.add_build(Build(id=20 + i, number=str(20 + i), state="passed", slug="octo/repo", sha="b" * 40))
    headers = {"Travis-API-Version": "3", "Authorization": "token tok-1"}
    first = httpx.get(f"{travis.url}/repo/octo%2Frepo/builds", params={"limit": 2}, headers=headers).json()
    nxt = first["@pagination"]["next"]["@href"]
    second = httpx.get(travis.url + nxt, headers=headers).json()
    assert [b["id"] for b in first["builds"] + second["builds"]] == [22, 21, 20, 11]
    assert second["@pagination"]["is_last"] is True
    assert httpx.get(f"{travis.url}/build/11", headers={"Authorization": "token tok-1"}).status_code == 400
    travis.expect_violations(1)  # the request above went without the version header, on purpose


# --- through the daemon ---------------------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_a_pull_request_build_without_a_store_answers_31007_and_with_one_gets_a_presigned_url(
        gh_spec: OpenApiSpec, moto: Moto, short_tmp: Path, tmp_path: Path) -> None:  # noqa: F811
    """Statuses land on the PR's head commit on GitHub and the comment on the PR; an artifact upload without an
    object store answers -31007 naming [artifact_store] (the local copy kept), with one its URL is a presigned
    URL serving the bytes; no token in the log."""
    with World(gh_spec, moto) as world:
        answers: dict[str, Any] = {}
        for label in ("bare", "store"):
            (short_tmp / label).mkdir()
            daemon_env = scrubbed_env(short_tmp / label)  # a daemon (and state) of its own
            daemon = DaemonProcess.start(short_tmp / label / "d.sock",
                                         world.daemon_env(daemon_env) if label == "store" else daemon_env)
            try:
                c = connect(daemon, world.job_env(tmp_path / label))
                run_id = c.request("create_test_run", {"name": "unit tests"})["id"]
                results = Plan(results=20, failures=2).batches()[0]
                c.request("report_results", {"test_run_id": run_id, "results": results})
                try:
                    answers[label] = c.request("upload_artifact", {"test_run_id": run_id, "name": "logs/a.log",
                                                                   "content_base64": b64(b"hello\n"), "wait": True})
                except RpcError as exc:
                    answers[label] = exc
                answers[label + "-url"] = c.request("get_artifact_url", {"test_run_id": run_id, "name": "logs/a.log"})
                if label == "store":
                    c.request("add_pr_comment", {"body": "all good", "key": "coverage", "test_run_id": run_id})
                    c.request("set_build_status", {"state": "success", "context": "lint", "test_run_id": run_id})
                    c.request("complete_test_run", {"test_run_id": run_id})
                    wait_delivered(c, 60)
                    answers["run"] = c.request("get_test_run_status", {"test_run_id": run_id})
            finally:
                daemon.stop()
            assert GITHUB_TOKEN not in daemon.log() and TRAVIS_TOKEN not in daemon.log()
    bare = answers["bare"]
    assert isinstance(bare, RpcError) and bare.code == -31007 and "[artifact_store]" in str(bare)
    assert str(answers["bare-url"]["url"]).startswith("file://")  # the local output folder kept it
    assert answers["store"]["upload"]["state"] == "uploaded" and answers["store"]["upload"]["provider"] == "s3"
    url = str(answers["store-url"]["url"])
    assert "X-Amz-Signature=" in url and httpx.get(url).content == b"hello\n"
    assert [c["body"] for c in world.github.comments(PR)] == [MARKER + "all good"]
    assert [(s["context"], s["state"]) for s in world.github.statuses(HEAD)] == [("lint", "success")]
    travis = next(t for t in answers["run"]["targets"] if t["provider"] == "travis")
    assert travis["kind"] == "none" and "code host" in travis["note"]


@pytest.fixture
def make_world(gh_spec: OpenApiSpec, moto: Moto) -> Callable[[float, int], World]:  # noqa: F811
    """The fakes of one Travis CI build: GitHub as the code host, Travis API v3, a bucket for artifacts."""
    return lambda rate, seed: World(gh_spec, moto, fault_rate=rate, seed=seed)


def test_thirty_percent_faults_change_nothing_on_the_pr_or_in_the_bucket(
        make_world: Callable[[float, int], World], scenario_dirs: Callable[[], Path]) -> None:
    """10,000 results, a sticky comment twice, 20 artifacts, two status contexts; with 30% of GitHub's answers
    failing the PR and the bucket end exactly as after the fault-free build."""
    plan = Plan()
    clean, _clean_world, _faulty, world = assert_faults_change_nothing(make_world, scenario_dirs, rate=0.3, seed=9,
                                                                       plan=plan)
    view = clean.view
    assert view.statuses == (("coverage", "failure", "85.5% < 90%"), ("lint", "success", "no findings"))
    assert view.comments == (MARKER + plan.comments[-1],)
    assert view.objects == tuple(sorted((plan.artifact(i)[0], len(plan.artifact(i)[1]))
                                        for i in range(plan.artifacts)))
    calls = world.github.calls()
    assert len([r for r in calls if r.status in (-1, 429, 502, 503)]) >= 0.2 * len(calls)


def test_kill_9_halfway_changes_nothing_on_the_pr_or_in_the_bucket(
        make_world: Callable[[float, int], World], scenario_dirs: Callable[[], Path]) -> None:
    """A daemon killed mid-build finishes the writes once the job's session is back: the PR and the bucket hold
    what the fault-free build left, nothing twice."""
    _clean, killed, world = assert_kill_9_changes_nothing(make_world, scenario_dirs, rate=0.3, seed=10, plan=Plan())
    assert [r.status for r in world.github.calls("POST", "/comments$")].count(201) <= 1
    assert len(killed.view.objects) == Plan().artifacts




EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "travis" / ".travis.yml"


def test_the_example_build_runs_real_commands_and_configures_a_real_store() -> None:
    """examples/travis: every ci-sidecar command parses with the real CLI, exec's JUnit glob matches what pytest
    writes, and the object store variables are keys of [artifact_store] the configuration accepts."""
    import fnmatch
    import shlex

    import yaml

    from ci_sidecar.cli import build_parser
    from ci_sidecar.config import load_config

    build = yaml.safe_load(EXAMPLE.read_text())
    lines = [line for line in build["install"] + build["script"] if line.startswith("ci-sidecar ")]
    assert [shlex.split(line)[1] for line in lines] == ["doctor", "exec"]
    for line in lines:
        build_parser().parse_args(shlex.split(line)[1:])
    exec_args = build_parser().parse_args(shlex.split(lines[-1])[1:])
    wrapped = exec_args.cmd[1:] if exec_args.cmd[:1] == ["--"] else exec_args.cmd
    written = next(a.split("=", 1)[1] for a in wrapped if a.startswith("--junitxml="))
    assert any(fnmatch.fnmatch(written, glob) for glob in exec_args.junit)
    variables = dict(item.split("=", 1) for item in build["env"]["global"])
    store = {k: v for k, v in variables.items() if k.startswith("CI_SIDECAR_ARTIFACT_STORE_")}
    loaded = load_config(env=store, cwd="/nonexistent").config.artifact_store
    assert loaded is not None and (loaded.bucket, loaded.region) == ("my-ci-artifacts", "eu-west-1")
