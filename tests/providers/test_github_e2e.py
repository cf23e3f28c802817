"""GitHub end to end: the real daemon (a subprocess) driven by the Python client from a job that looks like a
GitHub Actions ``pull_request`` build, publishing to the spec-validating loopback fake.

What a person would see on the PR is asserted on the fake (check runs, statuses, comments), and what the
job sees on the client side (targets, capabilities, errors, log messages, the job summary file).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ci_sidecar_client import Client, RpcError
from fakes.github import FakeGitHub
from fakes.spec import OpenApiSpec
from helpers import DaemonProcess, daemon_argv, wait_for

HEAD = "a1" * 20  # the PR's head commit: what check runs and statuses must be on
MERGE = "b2" * 20  # GITHUB_SHA on a pull_request build: the synthetic merge commit
PR = 7
APP_TOKEN = "ghs_e2eAppT0kenNeverShown"
PAT = "ghp_e2eClassicPatNeverShown"
BAD_TOKEN = "ghs_e2eRevokedT0kenNeverShown"
READONLY = "ghs_e2eForkReadOnlyT0ken"  # what Actions gives a pull_request job from a fork


@pytest.fixture
def fake(gh_spec: OpenApiSpec) -> Iterator[FakeGitHub]:
    tokens = {APP_TOKEN: "app", PAT: "pat", READONLY: "readonly"}
    with FakeGitHub(gh_spec, tokens=tokens) as gh:
        yield gh
    assert len(gh.violations) == gh.expected_violations, gh.violations


@pytest.fixture
def daemon(short_tmp: Path, env: dict[str, str]) -> Iterator[DaemonProcess]:
    """A socket daemon; its log is printed at teardown (pytest shows it when the test failed)."""
    d = DaemonProcess.start(short_tmp / "d.sock", env)
    try:
        yield d
    finally:
        d.stop()
        print(d.log())


class Job:
    """The environment of one GitHub Actions job; ``apply`` puts it into this process's environment,
    which is what the Python client sends at ``initialize``."""

    def __init__(self, root: Path, api_url: str, token: str | None, *, fork: bool = False) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.event_path = root / "event.json"
        self.summary_path = root / "step_summary.md"
        self.summary_path.write_text("")
        head_repo = "forker/repo" if fork else "octo/repo"
        self.event_path.write_text(json.dumps({"pull_request": {
            "number": PR,
            "head": {"sha": HEAD, "ref": "feature", "repo": {"full_name": head_repo}},
            "base": {"ref": "main", "repo": {"full_name": "octo/repo"}},
        }}))
        self.env = {
            "CI": "true", "GITHUB_ACTIONS": "true", "GITHUB_REPOSITORY": "octo/repo",
            "GITHUB_EVENT_NAME": "pull_request", "GITHUB_EVENT_PATH": str(self.event_path),
            "GITHUB_SHA": MERGE, "GITHUB_REF": f"refs/pull/{PR}/merge", "GITHUB_HEAD_REF": "feature",
            "GITHUB_BASE_REF": "main", "GITHUB_RUN_ID": "4242", "GITHUB_JOB": "test",
            "GITHUB_API_URL": api_url, "GITHUB_STEP_SUMMARY": str(self.summary_path),
        }
        if token is not None:
            self.env["GITHUB_TOKEN"] = token

    def apply(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for name, value in self.env.items():
            monkeypatch.setenv(name, value)


@pytest.fixture
def job(tmp_path: Path, fake: FakeGitHub, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Job]:
    def make(token: str | None = APP_TOKEN, *, fork: bool = False, name: str = "job") -> Job:
        j = Job(tmp_path / name, fake.url, token, fork=fork)
        j.apply(monkeypatch)
        return j

    return make


def results(n: int, status: str = "passed", suite: str = "pkg.mod") -> list[dict[str, Any]]:
    return [{"name": f"test_{status}_{i}", "suite": suite, "classname": "C", "status": status,
             "duration": 0.01, "file": "tests/test_mod.py", "line": 10 + i,
             **({"message": f"assert {i} == {i + 1}"} if status == "failed" else {})} for i in range(n)]


def logs_of(client: Client) -> list[str]:
    return [n["params"]["message"] for n in list(client.notifications) if n.get("method") == "window/logMessage"]


def github_target(run: dict[str, Any]) -> dict[str, Any]:
    return next(t for t in run["targets"] if t["provider"] == "github")


def files_containing(root: Path, needle: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


# --- 1. check run lifecycle on the head SHA --------------------------------------------------------------


def test_check_run_lifecycle_on_head_sha(daemon: DaemonProcess, fake: FakeGitHub, job: Callable[..., Job]) -> None:
    job()
    c = daemon.client()
    assert c.initialize_result["ci"]["head_sha"] == HEAD
    caps = c.initialize_result["capabilities"]["roles"]["ci"]
    assert caps["provider"] == "github" and caps["test_run"] == {"kind": "native", "via": "check run"}

    run = c.request("create_test_run", {"name": "unit tests", "wait": True})
    [check] = fake.check_runs()
    assert check["head_sha"] == HEAD and check["head_sha"] != MERGE
    assert check["status"] == "in_progress" and check["external_id"] == run["id"] and check["name"] == "unit tests (test)"
    target = github_target(run)
    assert target["kind"] == "native" and target["url"] == check["html_url"]
    assert target["delivery"]["state"] == "delivered" and "check run" in (target.get("note") or "")

    c.request("report_results", {"test_run_id": run["id"], "results": results(5)})
    c.request("report_results", {"test_run_id": run["id"], "results": results(2, "failed")})
    done = c.request("complete_test_run", {"test_run_id": run["id"], "wait": True})
    assert done["conclusion"] == "failure" and done["delivery"] == {"pending": 0, "failed": 0}
    [check] = fake.check_runs()
    assert check["status"] == "completed" and check["conclusion"] == "failure"
    assert check["output"]["title"] == "5 passed, 2 failed, 0 skipped"
    summary = check["output"]["summary"]
    assert "test\\_failed\\_1" in summary and "assert 1 == 2" in summary  # names are Markdown-escaped
    notes = fake.annotations(check["id"])
    assert sorted((a["path"], a["start_line"], a["annotation_level"]) for a in notes) == [
        ("tests/test_mod.py", 10, "failure"), ("tests/test_mod.py", 11, "failure")]
    assert len(fake.calls("POST", "/check-runs$")) == 1  # one check run, updated in place
    assert github_target(done)["url"] == check["html_url"]


def test_status_reads_the_check_run_back(daemon: DaemonProcess, fake: FakeGitHub, job: Callable[..., Job]) -> None:
    job()
    c = daemon.client()
    run = c.request("create_test_run", {"name": "read back", "wait": True})
    c.request("report_results", {"test_run_id": run["id"], "results": results(2, "failed")})
    c.request("complete_test_run", {"test_run_id": run["id"], "wait": True})
    [check] = fake.check_runs()
    status = github_target(c.request("get_test_run_status", {"test_run_id": run["id"]}))
    assert (status["remote_status"], status["remote_conclusion"]) == ("completed", "failure")
    assert status["url"] == check["html_url"]
    reads = len(fake.calls("GET", r"/check-runs/\d+$"))
    assert reads == 1
    for _ in range(5):  # a job polling its run does not spend the token's rate limit
        c.request("get_test_run_status", {"test_run_id": run["id"]})
    assert len(fake.calls("GET", r"/check-runs/\d+$")) == reads
    fake.inject("503", method="GET", path="/check-runs/", times=5)
    other = c.request("create_test_run", {"name": "unreadable", "wait": True})
    view = github_target(c.request("get_test_run_status", {"test_run_id": other["id"]}))
    assert view.get("remote_status") is None and view["delivery"]["state"] == "delivered"  # local view stays


# --- 2. wait semantics and a refused token ------------------------------------------------------------


def test_wait_answers_after_the_check_run_is_completed(daemon: DaemonProcess, fake: FakeGitHub,
                                                       job: Callable[..., Job]) -> None:
    job()
    c = daemon.client()
    run = c.request("create_test_run", {"name": "waited", "wait": True})
    c.request("report_results", {"test_run_id": run["id"], "results": results(3)})
    fake.inject("503", method="PATCH", path="/check-runs/", times=1)  # the final write needs a retry (~1 s)
    started = time.monotonic()
    done = c.request("complete_test_run", {"test_run_id": run["id"], "wait": True})
    [check] = fake.check_runs()  # read at once: the answer came only after the fake had it
    assert check["status"] == "completed" and check["conclusion"] == "success"
    assert done["delivery"]["pending"] == 0 and github_target(done)["delivery"]["state"] == "delivered"
    assert time.monotonic() - started >= 0.4
    assert [r.status for r in fake.calls("PATCH")][-2:] == [503, 200]


def test_refused_token_answers_31003_and_never_leaks(daemon: DaemonProcess, fake: FakeGitHub,
                                                     job: Callable[..., Job], env: dict[str, str]) -> None:
    job(BAD_TOKEN)
    c = daemon.client()
    run = c.request("create_test_run", {"name": "refused"})
    with pytest.raises(RpcError) as e:
        c.request("complete_test_run", {"test_run_id": run["id"], "wait": True})
    assert e.value.code == -31003
    assert {k: v for k, v in e.value.data.items() if k != "message"} == {"provider": "github", "status": 401}
    assert e.value.data["message"].startswith("Bad credentials: the token is invalid, expired or revoked")
    after = c.request("get_test_run_status", {"test_run_id": run["id"]})
    assert after["delivery"]["failed"] >= 1 and "Bad credentials" in after["delivery"]["last_error"]
    assert github_target(after)["delivery"]["state"] == "failed"
    assert fake.check_runs() == []
    # the token reached the fake (so it was really used) ...
    assert any(r.headers.get("authorization") == f"Bearer {BAD_TOKEN}" for r in fake.requests)
    # ... and nowhere else: not in the error, the daemon log, or any state file
    secret = BAD_TOKEN.encode()
    assert BAD_TOKEN not in json.dumps([e.value.message, e.value.data, after, logs_of(c)])
    c.request("sidecar/status", {})
    assert secret not in daemon.log_path.read_bytes()
    state_dir = Path(env["CI_SIDECAR_STATE_DIR"])
    assert any(state_dir.rglob("*")) and files_containing(state_dir, secret) == []
    output = Path(after["output_dir"])
    assert (output / "run.json").is_file() and files_containing(output, secret) == []


# --- 3. an outage: 503, then 429 with Retry-After -----------------------------------------------------


def test_outage_retries_tells_the_user_and_shows_rate_limits(daemon: DaemonProcess, fake: FakeGitHub,
                                                             job: Callable[..., Job]) -> None:
    job()
    c = daemon.client()
    run = c.request("create_test_run", {"name": "outage", "wait": True})
    fake.inject("503", method="PATCH", times=1)
    fake.inject("429", method="PATCH", times=1, retry_after=5)  # long enough for the outbox to say it waits
    c.request("report_results", {"test_run_id": run["id"], "results": results(2, "failed")})
    done = c.request("complete_test_run", {"test_run_id": run["id"]})
    assert github_target(done)["delivery"]["state"] == "pending"
    status = wait_for(lambda: (s := c.request("sidecar/status", {}))["providers"].get("github", {}).get(
        "rate_limit", {}).get("limited_at") and s, what="the 429 in sidecar/status")
    assert status["outbox"]["pending"] >= 1
    limits = status["providers"]["github"]["rate_limit"]
    assert limits["limit"] == 5000 and 0 < limits["remaining"] < 5000 and limits["resource"] == "core"
    assert limits["limited_retry_after"] == 5 and limits["limited_at"] <= time.time()

    check = wait_for(lambda: [x for x in fake.check_runs() if x["status"] == "completed"], timeout=30,
                     what="the completed check run")[0]
    assert check["conclusion"] == "failure" and len(fake.annotations(check["id"])) == 2
    assert [r.status for r in fake.calls("PATCH")][-3:] == [503, 429, 200]
    logs = logs_of(c)
    assert any("rate limit" in m for m in logs), logs
    assert any("retrying in 5 s" in m for m in logs), logs
    final = wait_for(lambda: (r := c.request("get_test_run_status", {"test_run_id": run["id"]}))["delivery"][
        "pending"] == 0 and r, what="nothing pending")
    assert github_target(final)["delivery"]["state"] == "delivered"
    assert c.request("sidecar/status", {})["outbox"] == {"pending": 0, "failed": 0}


# --- 4. kill -9 with a write pending -------------------------------------------------------------------


def test_kill_9_pending_write_waits_for_the_token_then_delivers_once(
        short_tmp: Path, env: dict[str, str], fake: FakeGitHub, job: Callable[..., Job],
        monkeypatch: pytest.MonkeyPatch) -> None:
    job()
    d = DaemonProcess.start(short_tmp / "k.sock", env)
    try:
        c = d.client()
        fake.inject("lost", method="POST", path="/check-runs$", times=1)  # created, but the answer is lost
        run = c.request("create_test_run", {"name": "durable"})
        wait_for(lambda: fake.calls("POST", "/check-runs$"), what="the lost create")
        fake.inject("503", times=10_000)  # ... and then GitHub is down (the retry comes >= 0.5 s later)
        c.request("report_results", {"test_run_id": run["id"], "results": results(3) + results(2, "failed")})
        c.request("complete_test_run", {"test_run_id": run["id"]})
        wait_for(lambda: any(r.status == 503 for r in fake.calls()), what="a failed retry")
        assert len(fake.check_runs()) == 1
    finally:
        d.proc.kill()
        d.proc.wait()
        d.stop()  # closes the client of the dead daemon
        print(d.log())
    with fake.lock:
        fake.faults.clear()  # GitHub is back
    seen = len(fake.requests)

    monkeypatch.delenv("GITHUB_TOKEN")
    d2 = DaemonProcess.start(short_tmp / "k.sock", env)
    try:
        anonymous = d2.client()
        time.sleep(1.0)
        assert anonymous.request("sidecar/status", {})["outbox"]["pending"] >= 1
        pending = anonymous.request("get_test_run_status", {"test_run_id": run["id"]})
        assert pending["status"] == "finished" and pending["delivery"]["pending"] >= 1
        assert len(fake.requests) == seen  # nobody had the token: nothing was sent

        monkeypatch.setenv("GITHUB_TOKEN", APP_TOKEN)
        c2 = d2.client()
        check = wait_for(lambda: [x for x in fake.check_runs() if x["status"] == "completed"],
                         what="the completed check run")[0]
        assert len(fake.check_runs()) == 1 and check["external_id"] == run["id"]
        assert check["conclusion"] == "failure" and len(fake.annotations(check["id"])) == 2
        assert [r.status for r in fake.calls("POST", "/check-runs$")] == [-1]  # only the lost create
        wait_for(lambda: c2.request("sidecar/status", {})["outbox"]["pending"] == 0, what="an empty outbox")
        assert github_target(c2.request("get_test_run_status", {"test_run_id": run["id"]}))["url"] == \
            check["html_url"]
    finally:
        d2.stop()
        print(d2.log())


# --- 5. lower tiers: classic PAT, tokenless fork PR -----------------------------------------------------


def test_classic_pat_falls_back_to_commit_status(daemon: DaemonProcess, fake: FakeGitHub,
                                                 job: Callable[..., Job]) -> None:
    job(PAT)
    c = daemon.client()
    tier = c.initialize_result["capabilities"]["roles"]["ci"]["test_run"]
    assert tier["kind"] == "fallback" and tier["via"] == "commit status"
    run = c.request("create_test_run", {"name": "pat run", "wait": True})
    target = github_target(run)
    assert target["kind"] == "fallback" and target["note"].startswith("via commit status")
    assert [(s["state"], s["context"]) for s in fake.statuses(HEAD)] == [("pending", "pat run (test)")]
    c.request("report_results", {"test_run_id": run["id"], "results": results(3) + results(1, "failed")})
    done = c.request("complete_test_run", {"test_run_id": run["id"], "wait": True})
    latest = fake.statuses(HEAD)[0]
    assert latest["state"] == "failure" and latest["description"] == "3 passed, 1 failed, 0 skipped"
    assert fake.statuses(MERGE) == [] and fake.check_runs() == []
    assert fake.calls("POST", "/check-runs") == []  # a classic PAT never tries the Checks API
    assert github_target(done)["delivery"]["state"] == "delivered"


JUNIT = """<?xml version="1.0" encoding="UTF-8"?>
<testsuite name="pkg.mod" tests="2" failures="1">
  <testcase classname="pkg.mod.C" name="test_ok" file="tests/test_mod.py" line="3" time="0.1"/>
  <testcase classname="pkg.mod.C" name="test_broken" file="tests/test_mod.py" line="12" time="0.2">
    <failure message="expected 3, got 4">Traceback: boom</failure>
  </testcase>
</testsuite>
"""


def test_tokenless_fork_pr_gets_job_summary_and_exec_annotations(daemon: DaemonProcess, fake: FakeGitHub,
                                                                  job: Callable[..., Job]) -> None:
    j = job(None, fork=True)
    c = daemon.client()
    assert c.initialize_result["ci"]["is_fork"] is True
    tier = c.initialize_result["capabilities"]["roles"]["ci"]["test_run"]
    assert tier["kind"] == "fallback" and tier["via"] == "job summary"
    run = c.request("create_test_run", {"name": "fork run", "wait": True})
    assert github_target(run)["kind"] == "fallback" and j.summary_path.read_text() == ""
    c.request("report_results", {"test_run_id": run["id"], "results": results(1, "failed")})
    done = c.request("complete_test_run", {"test_run_id": run["id"], "wait": True})
    assert github_target(done)["delivery"]["state"] == "delivered"
    summary = j.summary_path.read_text()
    assert "fork run" in summary and "test\\_failed\\_0" in summary and "assert 0 == 1" in summary
    assert fake.requests == []  # nothing to send without a token

    # `ci-sidecar exec` in the same job prints workflow-command annotations
    (j.root / "write_junit.py").write_text(
        f"import sys, pathlib\npathlib.Path('junit.xml').write_text({JUNIT!r})\nsys.exit(1)\n")
    proc = subprocess.run(
        daemon_argv("exec", "--junit", "junit.xml", "--name", "exec run", "--", sys.executable, "write_junit.py"),
        env=dict(os.environ, CI_SIDECAR_SOCKET=str(daemon.path)), cwd=j.root, capture_output=True, text=True,
        timeout=60)
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stdout.splitlines() if line.startswith("::error ")]
    assert len(errors) == 1 and "file=tests/test_mod.py" in errors[0] and "line=12" in errors[0], proc.stdout
    assert "expected 3, got 4" in errors[0]
    assert "exec run" in j.summary_path.read_text() and fake.requests == []


def test_read_only_token_on_a_fork_falls_down_to_the_job_summary(daemon: DaemonProcess, fake: FakeGitHub,
                                                                   job: Callable[..., Job]) -> None:
    j = job(READONLY, fork=True)
    c = daemon.client()
    run = c.request("create_test_run", {"name": "fork ro", "wait": True})
    target = github_target(run)
    assert target["kind"] == "fallback" and target["note"] == "via job summary"
    assert target["delivery"]["state"] == "delivered"
    assert [r.status for r in fake.requests if r.method != "GET"] == [403, 403]  # check run, then status
    c.request("report_results", {"test_run_id": run["id"], "results": results(2) + results(1, "failed")})
    done = c.request("complete_test_run", {"test_run_id": run["id"], "wait": True})
    assert github_target(done)["delivery"]["state"] == "delivered"
    assert "fork ro" in j.summary_path.read_text() and "assert 0 == 1" in j.summary_path.read_text()
    assert len([r for r in fake.requests if r.method != "GET"]) == 2  # the tier was remembered


# --- 6. sticky PR comment -----------------------------------------------------------------------------


def test_sticky_comment_is_edited_in_place(daemon: DaemonProcess, fake: FakeGitHub, job: Callable[..., Job]) -> None:
    job()
    fake.add_comment(PR, "LGTM", login="reviewer")
    c = daemon.client()
    first = c.request("add_pr_comment", {"body": "coverage 80%", "key": "coverage", "wait": True})
    second = c.request("add_pr_comment", {"body": "coverage 85%", "key": "coverage", "wait": True})
    assert first["action"] == "created" and second["action"] == "updated"
    assert first["id"] == second["id"] and second["delivery"]["state"] == "delivered"
    ours = [x for x in fake.comments(PR) if x["body"] != "LGTM"]
    assert len(ours) == 1 and str(ours[0]["id"]) == second["id"]
    assert ours[0]["body"].startswith("<!-- ci-sidecar:key=coverage -->") and ours[0]["body"].endswith("coverage 85%")
    assert len(fake.comments(PR)) == 2  # the reviewer's comment is untouched
    assert len(fake.calls("POST", "/comments$")) == 1 and len(fake.calls("PATCH", "/comments/")) == 1


# --- token binding ------------------------------------------------------------------------------------


def test_daemon_held_token_never_follows_a_session_base_url(short_tmp: Path, env: dict[str, str], fake: FakeGitHub,
                                                          gh_spec: OpenApiSpec, job: Callable[..., Job],
                                                          tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "github-token").write_text(APP_TOKEN + "\n")
    config = tmp_path / "daemon.toml"
    config.write_text(f'[providers.github]\nbase_url = "{fake.url}"\n')
    with FakeGitHub(gh_spec, tokens={APP_TOKEN: "app"}) as elsewhere:
        j = job(None)
        j.env["GITHUB_API_URL"] = elsewhere.url
        os.environ["GITHUB_API_URL"] = elsewhere.url  # restored by monkeypatch (job() set it)
        d = DaemonProcess.start(short_tmp / "b.sock", dict(env, CREDENTIALS_DIRECTORY=str(creds)),
                               extra=["--config", str(config)])
        try:
            c = d.client(config={"providers": {"github": {"base_url": elsewhere.url}}})
            run = c.request("create_test_run", {"name": "bound", "wait": True})
            assert github_target(run)["delivery"]["state"] == "delivered"
            assert [x["external_id"] for x in fake.check_runs()] == [run["id"]]
            assert elsewhere.requests == []  # the daemon's token went only to the URL it is bound to
        finally:
            d.stop()
            print(d.log())


def test_absolute_paths_under_the_session_checkout_are_linked(daemon: DaemonProcess, fake: FakeGitHub,
                                                              job: Callable[..., Job], tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A job that checks out outside GITHUB_WORKSPACE: absolute paths under the client's git checkout (its cwd
    is a subfolder) and under a plain cwd become repository paths GitHub links."""
    j = job()
    (j.root / "workspace").mkdir()
    monkeypatch.setenv("GITHUB_WORKSPACE", str(j.root / "workspace"))
    checkout = tmp_path / "elsewhere" / "repo"
    (checkout / ".git").mkdir(parents=True)
    (checkout / "sub").mkdir()
    plain = tmp_path / "plain"
    plain.mkdir()
    for cwd, path, expected in ((checkout / "sub", checkout / "tests" / "test_x.py", "tests/test_x.py"),
                                (plain, plain / "pkg" / "test_y.py", "pkg/test_y.py")):
        monkeypatch.chdir(cwd)  # the client sends its cwd at initialize; the daemon runs elsewhere
        c = daemon.client()
        run = c.request("create_test_run", {"name": f"paths {cwd.name}"})
        failed = [{"name": "t", "status": "failed", "file": str(path), "line": 3, "message": "boom"}]
        c.request("report_results", {"test_run_id": run["id"], "results": failed})
        c.request("complete_test_run", {"test_run_id": run["id"], "wait": True})
        check = next(ch for ch in fake.check_runs() if ch["external_id"] == run["id"])
        assert [a["path"] for a in fake.annotations(check["id"])] == [expected]
        assert fake.unlinked_annotations(check["id"]) == []
        c.close()


def test_a_configured_knob_reaches_the_provider_through_the_session(daemon: DaemonProcess, fake: FakeGitHub,
                                                                    job: Callable[..., Job]) -> None:
    """``[providers.github] max_annotations`` (a knob of GitHub's settings type) caps the check run's annotations
    of a real session; the job's ``GITHUB_STEP_SUMMARY`` still gets the report."""
    j = job()
    c = daemon.client(config={"providers": {"github": {"max_annotations": 3}}})
    run = c.request("create_test_run", {"name": "capped", "wait": True})
    c.request("report_results", {"test_run_id": run["id"], "results": results(5, "failed")})
    c.request("complete_test_run", {"test_run_id": run["id"], "wait": True})
    [check] = fake.check_runs()
    assert "completed" == check["status"] and 3 == len(fake.annotations(check["id"]))
    assert "Showing 3 of 5 failure annotations" in check["output"]["summary"]
    assert "capped" in j.summary_path.read_text()
