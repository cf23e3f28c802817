"""The CircleCI provider against the spec-validating fake CircleCI API v2: the JUnit report staged for
``store_test_results``, artifacts staged for ``store_artifacts`` (parallel nodes apart), their URLs read back through
``GET /project/{slug}/{job-number}/artifacts`` once the job's step stored them, the project slug, and statuses and
comments that belong to the code host."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from ci_sidecar import cienv
from ci_sidecar.credentials import CredentialRef
from ci_sidecar.protocol.records import Counts, TestResult
from ci_sidecar.providers.base import Outcome, PostComment, ProviderEnv, PublishRun, RunSnapshot, SetStatus
from ci_sidecar.providers.base import UploadArtifact
from ci_sidecar.providers.circleci import CircleCIProvider
from ci_sidecar.providers.circleci.staging import project_slug
from ci_sidecar.providers.settings import session_settings
from fakes.circleci import FakeCircleCI
from fakes.spec import OpenApiSpec, require_spec

TOKEN = "circle-personal-token-1"
SLUG = "gh/octo/repo"
JOB = 412
HEAD = "ab" * 20


@pytest.fixture
def cc_spec() -> OpenApiSpec:
    return require_spec("circleci/circleci-api-v2-openapi.json")


@pytest.fixture
def fake(cc_spec: OpenApiSpec) -> Iterator[FakeCircleCI]:
    with FakeCircleCI(cc_spec, tokens={TOKEN}, projects={SLUG, "bb/team/repo", "circleci/org-1/proj-2"},
                      page_size=2) as circle:
        yield circle
    assert len(circle.violations) == circle.expected_violations, circle.violations


def job_env(work: Path, **extra: str) -> dict[str, str]:
    """The variables of a CircleCI job building PR 9 of a GitHub repository."""
    return {"CI": "true", "CIRCLECI": "true", "CIRCLE_PROJECT_USERNAME": "octo", "CIRCLE_PROJECT_REPONAME": "repo",
            "CIRCLE_REPOSITORY_URL": "git@github.com:octo/repo.git", "CIRCLE_SHA1": HEAD, "CIRCLE_BRANCH": "feature",
            "CIRCLE_PULL_REQUEST": "https://github.com/octo/repo/pull/9", "CIRCLE_BUILD_NUM": str(JOB),
            "CIRCLE_JOB": "test", "CIRCLE_WORKFLOW_ID": "wf-1",
            "CIRCLE_BUILD_URL": f"https://circleci.com/gh/octo/repo/{JOB}",
            "CIRCLE_WORKING_DIRECTORY": str(work), "CIRCLE_NODE_INDEX": "0", "CIRCLE_NODE_TOTAL": "1", **extra}


class Envs:
    """ProviderEnvs built the way a session builds them (detection, then the settings from the job's variables)."""

    def __init__(self, fake: FakeCircleCI) -> None:
        self.fake = fake
        self.results: list[TestResult] = []

    def __call__(self, variables: dict[str, str], token: str | None = TOKEN, **knobs: Any) -> ProviderEnv:
        ci = cienv.detect(variables)
        section = type("Section", (), {"base_url": None, "options": knobs})()
        config = {"trust_env": False, **session_settings("circleci", section=section, env=variables,
                                                           credential_urls={"circleci": self.fake.url})}
        cred = CredentialRef(provider="circleci", base_url=self.fake.url, source="env:CIRCLE_TOKEN", fingerprint="f") \
            if token else None
        return ProviderEnv.build(ci, config, cred, token, read_results=self.read_results)

    async def read_results(self, run_id: str, start: int, end: int) -> AsyncIterator[bytes]:
        for result in self.results[start:end]:
            yield msgspec.msgpack.encode(result)


@pytest.fixture
def envs(fake: FakeCircleCI) -> Envs:
    return Envs(fake)


async def deliver(op: Any, env: ProviderEnv, remote: dict[str, Any] | None = None) -> Outcome:
    provider = CircleCIProvider()
    try:
        return await provider.deliver(op, env, remote or {})
    finally:
        await provider.aclose()


async def lookup(op: UploadArtifact, env: ProviderEnv, remote: dict[str, Any]) -> Outcome | None:
    provider = CircleCIProvider()
    try:
        return await provider.lookup_artifact(op, env, remote)
    finally:
        await provider.aclose()


def run_op(run_id: str, *, final: bool, results: int = 0) -> PublishRun:
    run = RunSnapshot(id=run_id, name="unit tests", status="finished" if final else "running",
                      start_time="2026-01-01T00:00:00Z", counts=Counts(total=results), output_dir="/nonexistent",
                      conclusion="failure" if final else None, results_end=results)
    return PublishRun(run=run, final=final)


def artifact(tmp: Path, run_id: str, data: bytes, name: str = "logs/shard-1.log") -> UploadArtifact:
    stored = tmp / f"blob-{hashlib.sha256(data).hexdigest()[:8]}"
    stored.write_bytes(data)
    return UploadArtifact(run_id=run_id, name=name, stored_path=str(stored), sha256=hashlib.sha256(data).hexdigest(),
                          size=len(data), mime_type="text/plain")


# --- tiers and the project slug -------------------------------------------------------------------


def test_the_tiers_say_what_is_staged_for_which_step_and_that_statuses_go_to_the_code_host(envs: Envs,
                                                                                             tmp_path: Path) -> None:
    """In a job the run and artifacts are staged for store_test_results/store_artifacts; statuses and comments are
    not CircleCI's (the code host takes them); without a working directory nothing is pretended."""
    caps = CircleCIProvider().capabilities(envs(job_env(tmp_path)))
    assert (caps.test_run.kind, caps.test_run.via) == ("staged", "store_test_results")
    assert (caps.artifacts.kind, caps.artifacts.via) == ("staged", "store_artifacts")
    assert "after the job's store_artifacts step" in (caps.artifacts.note or "")
    assert caps.build_status.kind == caps.pr_comment.kind == "none"
    assert "code host" in (caps.build_status.note or "")
    anonymous = CircleCIProvider().capabilities(envs(job_env(tmp_path), token=None))
    assert "cannot read it without CIRCLE_TOKEN" in (anonymous.artifacts.note or "")
    outside = envs({k: v for k, v in job_env(tmp_path).items() if k != "CIRCLE_WORKING_DIRECTORY"})
    outside.config.pop("session_cwd", None)
    assert CircleCIProvider().capabilities(outside).test_run.kind == "none"


@pytest.mark.parametrize(("variables", "knobs", "slug"), [
    ({}, {}, "gh/octo/repo"),
    ({"CIRCLE_REPOSITORY_URL": "git@bitbucket.org:octo/repo.git"}, {}, "bb/octo/repo"),
    ({"CIRCLE_PROJECT_USERNAME": "", "CIRCLE_PROJECT_REPONAME": "", "CIRCLE_ORGANIZATION_ID": "org-1",
      "CIRCLE_PROJECT_ID": "proj-2", "CIRCLE_REPOSITORY_URL": "https://gitlab.com/octo/repo.git"}, {},
     "circleci/org-1/proj-2"),
    ({}, {"project_slug": "circleci/org-9/proj-9"}, "circleci/org-9/proj-9"),
    ({"CIRCLE_PROJECT_USERNAME": "", "CIRCLE_PROJECT_REPONAME": "",
      "CIRCLE_REPOSITORY_URL": "https://gitlab.com/octo/repo.git"}, {}, None),
])
def test_the_project_slug_follows_the_code_host_and_the_projects_ids(envs: Envs, tmp_path: Path,
                                                                     variables: dict[str, str], knobs: dict[str, str],
                                                                     slug: str | None) -> None:
    """gh/ and bb/ slugs for GitHub OAuth and Bitbucket projects, circleci/<org-id>/<project-id> for the others,
    a configured slug over both, and none when nothing names the project."""
    assert project_slug(envs({**job_env(tmp_path), **variables}, **knobs)) == slug


async def test_the_working_directory_is_found_under_the_jobs_home(envs: Envs, tmp_path: Path) -> None:
    """CircleCI's default ``~/project`` is the job's HOME/project (where its collect steps look)."""
    env = envs(job_env(tmp_path, CIRCLE_WORKING_DIRECTORY="~/project", HOME=str(tmp_path)))
    done = await deliver(run_op("run-h", final=True), env)
    assert done.kind == "delivered" and done.remote
    assert (tmp_path / "project" / done.remote["junit_staged"]).is_file()


# --- the staged tiers -------------------------------------------------------------------------------


async def test_the_junit_report_is_staged_when_the_run_completes_and_store_test_results_reads_it(
        envs: Envs, fake: FakeCircleCI, tmp_path: Path) -> None:
    """A running run stages nothing yet; the completed run is one JUnit file every test and failure of which
    CircleCI's store_test_results step (the fake's) reads back."""
    envs.results = [TestResult(name=f"t{i}", status="failed" if i % 4 == 0 else "passed", classname="pkg.Case",
                               file="tests/test_pkg.py", duration=0.01, message="boom" if i % 4 == 0 else None)
                    for i in range(12)]
    env = envs(job_env(tmp_path))
    early = await deliver(run_op("run-a", final=False, results=5), env)
    assert (early.kind, early.action) == ("delivered", "deferred") and not (tmp_path / "ci-sidecar-staged").exists()
    done = await deliver(run_op("run-a", final=True, results=12), env, early.remote)
    assert (done.kind, done.action, done.tier) == ("delivered", "staged", "store_test_results")
    assert done.remote and done.remote["junit_staged"].startswith("ci-sidecar-staged/junit/")
    assert fake.store_test_results(SLUG, JOB, tmp_path / "ci-sidecar-staged" / "junit") == 12
    tests = fake.job(SLUG, JOB).tests
    assert sorted(t["result"] for t in tests).count("failure") == 3
    assert {t["file"] for t in tests} == {"tests/test_pkg.py"}
    assert fake.calls() == []  # staging talks to nobody


async def test_parallel_nodes_stage_apart_and_each_finds_its_own_url(envs: Envs, fake: FakeCircleCI,
                                                                     tmp_path: Path) -> None:
    """Two nodes of one job stage an artifact of the same name; each node's lookup finds its own file among pages
    of the job's artifacts, and the URL serves that node's bytes."""
    outcomes, ops, remotes = [], [], []
    for node in (0, 1):
        work = tmp_path / f"node{node}"
        work.mkdir()
        env = envs(job_env(work, CIRCLE_NODE_INDEX=str(node), CIRCLE_NODE_TOTAL="2"))
        op = artifact(tmp_path, f"run-{node}", f"node {node} log\n".encode())
        out = await deliver(op, env)
        assert (out.kind, out.tier, out.url) == ("delivered", "staged", None)  # no URL before the step
        assert await lookup(op, env, out.remote or {}) is None  # listed nowhere yet
        outcomes.append(env), ops.append(op), remotes.append(out.remote or {})
    for node in (0, 1):
        folder = tmp_path / f"node{node}" / "ci-sidecar-staged" / "artifacts"
        (folder / "other").mkdir()
        for i in range(3):  # more of the job's artifacts: the page size is 2
            (folder / "other" / f"f{i}.txt").write_text("x")
        fake.store_artifacts(SLUG, JOB, folder, destination="ci-sidecar", node_index=node)
    for node in (0, 1):
        found = await lookup(ops[node], outcomes[node], remotes[node])
        assert found is not None and found.url is not None
        assert fake.content(found.url) == f"node {node} log\n".encode()
    pages = fake.calls("GET", "/artifacts$")
    assert any("page-token" in r.query for r in pages)
    assert all(r.headers.get("circle-token") == TOKEN for r in pages)
    assert all(r.path == f"/api/v2/project/gh%2Focto%2Frepo/{JOB}/artifacts" for r in pages)


async def test_an_artifact_replaced_in_the_job_gets_no_url_that_could_be_the_old_content(
        envs: Envs, fake: FakeCircleCI, tmp_path: Path) -> None:
    """CircleCI lists no digest: once two contents were staged under one name, no listed URL is trusted for it."""
    env = envs(job_env(tmp_path))
    first = await deliver(artifact(tmp_path, "run-r", b"one\n"), env)
    second_op = artifact(tmp_path, "run-r", b"two\n")
    second = await deliver(second_op, env, first.remote)
    fake.store_artifacts(SLUG, JOB, tmp_path / "ci-sidecar-staged" / "artifacts", destination="ci-sidecar")
    assert await lookup(second_op, env, second.remote or {}) is None


async def test_no_lookup_without_a_token_and_a_failed_lookup_is_no_url(envs: Envs, fake: FakeCircleCI,
                                                                       tmp_path: Path) -> None:
    """Without CIRCLE_TOKEN nothing is asked; a 503 or a token CircleCI does not know answers no URL (never a
    guessed one)."""
    env = envs(job_env(tmp_path))
    op = artifact(tmp_path, "run-t", b"data\n")
    out = await deliver(op, env)
    fake.store_artifacts(SLUG, JOB, tmp_path / "ci-sidecar-staged" / "artifacts", destination="ci-sidecar")
    assert await lookup(op, envs(job_env(tmp_path), token=None), out.remote or {}) is None
    assert fake.calls() == []
    fake.inject("503", "GET", "/artifacts$")
    assert await lookup(op, env, out.remote or {}) is None
    assert await lookup(op, envs(job_env(tmp_path), token="not-known"), out.remote or {}) is None
    found = await lookup(op, env, out.remote or {})
    assert found is not None and fake.content(found.url or "") == b"data\n"


async def test_a_name_leaving_the_folder_is_refused_and_statuses_without_a_code_host_are_unsupported(
        envs: Envs, tmp_path: Path) -> None:
    """``../`` names never leave the staging folder; a status or comment that reached CircleCI (no code host token
    in the job) answers unsupported with where it belongs."""
    env = envs(job_env(tmp_path))
    bad = await deliver(artifact(tmp_path, "run-x", b"x", name="../../etc/passwd"), env)
    assert bad.kind == "unsupported" and "leave the staging folder" in bad.message
    status = await deliver(SetStatus(state="success", context="lint", sha=HEAD), env)
    comment = await deliver(PostComment(body="hi", mode="create", pr_number=9), env)
    assert status.kind == comment.kind == "unsupported"
    assert "code host" in status.message and "PR comments" in comment.message


async def test_doctor_shows_the_staging_folder_and_reads_the_job_through_api_v2(fake: FakeCircleCI,
                                                                                 tmp_path: Path) -> None:
    """``doctor --check`` names the staging folder, proves CIRCLE_TOKEN reads the job (Circle-Token, escaped slug),
    says what a missing token or slug costs, and never shows the token."""
    from ci_sidecar.credentials import Credential, Secret

    variables = job_env(tmp_path)
    ci = cienv.detect(variables)
    fake.job(SLUG, JOB)

    def cred(token: str) -> Credential:
        return Credential(provider="circleci", base_url=fake.url, source="env:CIRCLE_TOKEN", fingerprint="f",
                          secret=Secret(token))

    provider = CircleCIProvider()
    ok = await provider.probe_access(ci, variables, cred(TOKEN), write=True, trust_env=False)
    bad = await provider.probe_access(ci, variables, cred("tok-unknown"), write=False, trust_env=False)
    none = await provider.probe_access(ci, variables, None, write=False, trust_env=False)
    await provider.aclose()
    results = {i.name: (i.result, i.detail) for i in ok.items}
    assert results["staging folder"][0] == "proven" and str(tmp_path) in results["staging folder"][1]
    assert results["api v2"][0] == "proven" and f"job {JOB} of {SLUG} is running" in results["api v2"][1]
    assert results["write"][0] == "skipped"
    failed = next(i for i in bad.items if i.name == "api v2")
    assert failed.result == "failed" and "Project not found" in failed.detail and "tok-unknown" not in failed.detail
    assert next(i for i in none.items if i.name == "api v2").result == "skipped"
    (call, *_) = fake.calls("GET", "/job/")
    assert call.path == f"/api/v2/project/gh%2Focto%2Frepo/job/{JOB}" and call.headers["circle-token"] == TOKEN


# --- the example configuration ---------------------------------------------------------------------

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "circleci" / "config.yml"


def test_the_example_config_runs_real_commands_and_stores_what_is_staged() -> None:
    """examples/circleci: every ci-sidecar command parses with the real CLI, exec's JUnit glob matches what the
    suite writes, and the job stores the staged folders where the provider puts them by default."""
    import fnmatch
    import shlex

    import yaml

    from ci_sidecar.cli import build_parser
    from ci_sidecar.providers.circleci.settings import CircleCISettings

    config = yaml.safe_load(EXAMPLE.read_text())
    steps = config["jobs"]["test"]["steps"]
    commands = [line.strip() for step in steps if isinstance(step, dict) and "run" in step
                for line in step["run"]["command"].splitlines()]
    lines = [line for line in commands if line.startswith("ci-sidecar ")]
    assert [shlex.split(line)[1] for line in lines] == ["doctor", "exec"]
    for line in lines:
        build_parser().parse_args(shlex.split(line)[1:])  # SystemExit on an unknown command or option
    exec_args = build_parser().parse_args(shlex.split(lines[-1])[1:])
    wrapped = exec_args.cmd[1:] if exec_args.cmd[:1] == ["--"] else exec_args.cmd
    written = next(a.split("=", 1)[1] for a in wrapped if a.startswith("--junitxml="))
    assert any(fnmatch.fnmatch(written, glob) for glob in exec_args.junit), (written, exec_args.junit)
    staged = CircleCISettings().staged_dir
    stores = [step for step in steps
              if isinstance(step, dict) and {"store_test_results", "store_artifacts"} & set(step)]
    assert {"store_test_results": {"path": f"{staged}/junit"}} in stores
    assert {"store_artifacts": {"path": f"{staged}/artifacts", "destination": "ci-sidecar"}} in stores
    assert config["workflows"]["test"]["jobs"][0]["test"]["context"] == "ci-sidecar"
