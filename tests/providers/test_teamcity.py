"""TeamCity: the catalog line's contract, the tiers, and ``ci-sidecar exec`` printing a run as service messages
while the tests run — every test exactly once, in a valid order on the run's flow, artifacts published."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import msgspec
import pytest
from collections.abc import Callable
from helpers import DaemonProcess

from ci_sidecar.protocol.records import CIContext
from ci_sidecar.providers.base import (
    ProviderEnv,
    PublishRun,
    RunSnapshot,
    SetStatus,
    StreamsJobLog,
    UploadArtifact,
)
from ci_sidecar.providers.catalog import by_name
from ci_sidecar.protocol.records import Counts
from ci_sidecar.providers.teamcity import TeamCityProvider
from fakes.teamcity import FakeTeamCity
from fakes.teamcity_messages import check_flows, parse_stream

from .contract import check_credentials, check_provider, check_settings

PY = sys.executable


def _env(config: dict | None = None) -> ProviderEnv:
    return ProviderEnv(ci=CIContext(provider="teamcity", sources={}), config=config or {})


def _snapshot() -> RunSnapshot:
    return RunSnapshot(id="r1", name="unit", status="running", start_time="2026-01-01T00:00:00Z", counts=Counts(),
                       output_dir="/tmp/none")


class TestContract:
    def test_the_catalog_line_holds(self) -> None:
        """The line's credentials, settings and provider satisfy the contract; it streams into the job log."""
        spec = by_name("teamcity")
        assert spec is not None
        check_credentials(spec)
        check_settings(spec)
        assert isinstance(check_provider(spec), StreamsJobLog)


class TestTiers:
    def test_under_exec_the_run_streams_into_the_build_log(self) -> None:
        """A session whose client prints the job log gets the service-message tier, and its runs are delivered."""
        provider = TeamCityProvider()
        caps = provider.capabilities(_env({"job_log": "client"}))
        assert ("native", "service messages (ci-sidecar exec)") == (caps.test_run.kind, caps.test_run.via)
        assert "staged" == caps.artifacts.kind
        out = trio_run(provider.deliver(PublishRun(run=_snapshot()), _env({"job_log": "client"}), {}))
        assert "delivered" == out.kind

    def test_a_command_under_exec_reports_exec_s_run_without_a_refusal(self) -> None:
        """The test command's own session (CI_SIDECAR_RUN_ID from exec) delivers exec's run, and only that run."""
        provider = TeamCityProvider()
        inside = _env({"exec_run_id": "r1"})
        assert "delivered" == trio_run(provider.deliver(PublishRun(run=_snapshot()), inside, {})).kind
        other = msgspec.structs.replace(_snapshot(), id="r2")
        assert "unsupported" == trio_run(provider.deliver(PublishRun(run=other), inside, {})).kind

    def test_without_exec_nothing_pretends_to_carry_the_results(self) -> None:
        """Outside exec a run is refused as unsupported with the way to get it, and statuses point to the code host."""
        provider = TeamCityProvider()
        caps = provider.capabilities(_env())
        assert "none" == caps.test_run.kind and "ci-sidecar exec" in (caps.test_run.note or "")
        out = trio_run(provider.deliver(PublishRun(run=_snapshot()), _env(), {}))
        assert ("unsupported", True) == (out.kind, "ci-sidecar exec" in out.message)
        status = trio_run(provider.deliver(SetStatus(state="success", context="c"), _env(), {}))
        assert "unsupported" == status.kind and "code host" in status.message


class TestRest:
    """The REST tier against the spec-validating fake TeamCity."""

    def _env(self, fake: FakeTeamCity, token: str = "tc-token") -> ProviderEnv:
        ci = CIContext(provider="teamcity", sources={}, build_id="4711", build_url=f"{fake.url}/viewLog.html?buildId=4711")
        return ProviderEnv(ci=ci, config={"trust_env": False}, base_url=fake.url, token=token)

    def test_an_artifact_is_found_only_with_its_content(self) -> None:
        """get_artifact_url's lookup answers the build artifact's REST URL when TeamCity holds exactly its bytes."""
        import hashlib

        data = b"the log\n"
        op = UploadArtifact(run_id="r1", name="logs/a b.log", stored_path="/nowhere", sha256=hashlib.sha256(data).hexdigest(),
                            size=len(data), mime_type="text/plain")
        with FakeTeamCity() as fake:
            provider = TeamCityProvider()
            assert trio_run(provider.lookup_artifact(op, self._env(fake), {})) is None  # not published yet
            fake.publish("ci-sidecar/r1/logs/a b.log", b"other bytes")
            assert trio_run(provider.lookup_artifact(op, self._env(fake), {})) is None
            fake.publish("ci-sidecar/r1/logs/a b.log", data)
            found = trio_run(provider.lookup_artifact(op, self._env(fake), {}), provider)
            assert f"{fake.url}/app/rest/builds/id:4711/artifacts/content/ci-sidecar/r1/logs/a%20b.log" == found.url
            assert [] == fake.violations

    def test_a_final_run_sets_status_text_and_tag_and_closes_its_flow(self) -> None:
        """A finished run with no results still opens and closes its suite, sets the status text and the tag."""
        snapshot = RunSnapshot(id="r2", name="unit", status="finished", conclusion="success", counts=Counts(passed=0),
                               start_time="2026-01-01T00:00:00Z", output_dir="/tmp/none")
        with FakeTeamCity() as fake:
            provider = TeamCityProvider()
            out = trio_run(provider.deliver(PublishRun(run=snapshot, final=True), self._env(fake), {}), provider)
            assert ("delivered", "service messages (REST)") == (out.kind, out.tier), out.message
            assert ["unit"] == check_flows(fake.messages)["r2"].suites
            assert "unit: 0 passed, 0 failed, 0 skipped" == fake.status_text
            assert ["ci-sidecar-r2-done", "ci-sidecar-success"] == fake.tags
            assert [] == fake.violations

    def test_a_log_chunk_stored_before_a_restart_is_not_sent_again(self) -> None:
        """TeamCity took a log chunk, the answer was lost and the daemon restarted with nothing journaled about the
        attempt: the new daemon reads the receipt tag and sends only the rest, each test once."""
        from ci_sidecar.protocol.records import TestResult

        results = [TestResult(name=f"test_{i:04d}", classname="pkg.Case", status="passed") for i in range(1200)]

        async def read(run_id: str, start: int, end: int):  # noqa: ANN202 - an async generator
            for result in results[start:end]:
                yield msgspec.msgpack.encode(result)

        run = msgspec.structs.replace(_snapshot(), status="finished", conclusion="success", results_end=1200,
                                      counts=Counts(total=1200, passed=1200))
        with FakeTeamCity() as fake:
            env = self._env(fake)
            env.read_results = read
            fake.inject("lost", "POST", "/log$")
            first = TeamCityProvider()
            env.never_sent = True  # the write's first attempt in the daemon that took it
            assert "retry" == trio_run(first.deliver(PublishRun(run=run, final=True), env, {}), first).kind
            env.never_sent = False
            resumed = TeamCityProvider()  # a new daemon: no remote state
            out = trio_run(resumed.deliver(PublishRun(run=run, final=True), env, {}), resumed)
            assert "delivered" == out.kind, out.message
            started = [m.attrs.get("name") for m in fake.messages if m.name == "testStarted"]
            assert sorted(started) == [f"pkg.Case.{r.name}" for r in results]
            assert [] == fake.violations

    def test_a_wrong_token_is_refused_and_never_shown(self) -> None:
        """TeamCity's 401 is a final refusal whose message holds no token."""
        with FakeTeamCity() as fake:
            fake.expect_violations()
            provider = TeamCityProvider()
            out = trio_run(provider.deliver(PublishRun(run=_snapshot()), self._env(fake, "wrong-secret"), {}), provider)
            assert "refused" == out.kind and "wrong-secret" not in out.message

    def test_doctor_check_proves_the_token_reads_the_build(self) -> None:
        """doctor --check reads the build and its tags with the token and says the log write is not tried."""
        from ci_sidecar.credentials import Credential, Secret

        with FakeTeamCity() as fake:
            cred = Credential(provider="teamcity", base_url=fake.url, source="env:TEAMCITY_TOKEN", fingerprint="x",
                              secret=Secret("tc-token"))
            ci = CIContext(provider="teamcity", sources={}, build_id="4711")
            provider = TeamCityProvider()
            report = trio_run(provider.probe_access(ci, {}, cred, write=False, trust_env=False), provider)
            assert [("build", "proven"), ("build log", "unproven")] == [(i.name, i.result) for i in report.items]
            assert report.ok


def trio_run(coro, provider: TeamCityProvider | None = None):  # noqa: ANN001, ANN201 - a coroutine's result
    """Run *coro*; then close *provider*'s connections."""
    import trio

    async def main():  # noqa: ANN202
        try:
            return await coro
        finally:
            if provider is not None:
                await provider.aclose()

    return trio.run(main)


# --- through exec ----------------------------------------------------------------------------------------------

REPORTER = textwrap.dedent("""\
    import base64, os, sys, time
    from pathlib import Path
    from ci_sidecar_client import Client

    run = os.environ["CI_SIDECAR_RUN_ID"]
    c = Client.connect(client_name="reporter")
    def batch(start, n):
        out = []
        for i in range(start, start + n):
            r = {"name": f"test_{i:03d}", "classname": "pkg.Case", "status": "passed", "duration": i / 1000}
            if i % 10 == 3:
                r.update(status="failed", message=f"assert {i} == 0 [it's] |pipe|", details="line1\\nline2")
            if i % 10 == 7:
                r.update(status="skipped", message="not today")
            out.append(r)
        return out
    c.request("report_results", {"test_run_id": run, "results": batch(0, 50)})
    # the rest only once exec printed the first half: the build log follows the run as it goes
    deadline = time.monotonic() + 30
    while not Path(sys.argv[1]).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    for attempt in range(200):  # the daemon may be restarting: connect again
        try:
            c = Client.connect(client_name="reporter")
            break
        except Exception:
            time.sleep(0.05)
    c.request("report_results", {"test_run_id": run, "results": batch(50, 70)})
    c.request("upload_artifact", {"test_run_id": run, "name": "logs/test_003.log",
                                  "content_base64": base64.b64encode(b"the log of test 3\\n").decode(),
                                  "metadata": {"test": "pkg.Case.test_003"}})
    c.close()
    sys.exit(1)
""")


def _teamcity_job(job: Path, env: dict[str, str]) -> dict[str, str]:
    config = job / "config.properties"
    config.write_text("teamcity.build.branch=main\nteamcity.serverUrl=http\\://127.0.0.1\\:9\n", encoding="latin-1")
    build = job / "build.properties"
    build.write_text(f"teamcity.configuration.properties.file={str(config).replace(':', chr(92) + ':')}\n"
                     "teamcity.build.id=4711\nteamcity.buildConfName=Unit tests\n", encoding="latin-1")
    env = dict(env, TEAMCITY_VERSION="2024.03 (build 156364)", TEAMCITY_BUILD_PROPERTIES_FILE=str(build))
    env.pop("CI_SIDECAR_OUTPUT_DIR", None)
    return env


def _exec_job(job: Path, env: dict[str, str], on_half: Callable[[], None]) -> tuple[list[str], str, int]:
    """Run exec over the reporter; *on_half* runs once exec printed the first half (then the reporter goes on).
    Returns exec's stdout lines, its stderr and its exit status."""
    (job / "reporter.py").write_text(REPORTER)
    go = job / "go"
    lines: list[str] = []
    with (job / "stderr").open("w") as err:
        proc = subprocess.Popen([PY, "-m", "ci_sidecar", "exec", "--name", "unit tests", "--", PY, "reporter.py",
                                 str(go)], cwd=job, env=env, stdout=subprocess.PIPE, stderr=err, text=True)

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "name='pkg.Case.test_049'" in line and line.startswith("##teamcity[testFinished"):
                on_half()
                go.touch()

    reader = threading.Thread(target=read)
    reader.start()
    try:
        proc.wait(timeout=90)
    finally:
        go.touch()
        reader.join(10)
        assert proc.stdout is not None
        proc.stdout.close()
    return lines, (job / "stderr").read_text(), proc.returncode


def _check_log(lines: list[str], job: Path) -> str:
    """The build log holds every test once on one valid flow, the artifact published and linked, a build
    problem; returns the flow (the run's id)."""
    messages = parse_stream("".join(lines))
    flows = check_flows(messages)
    assert 1 == len(flows), flows.keys()
    (flow, report), = flows.items()
    assert ["unit tests"] == report.suites
    assert [f"pkg.Case.test_{i:03d}" for i in range(120)] == [name for name, _, _ in report.tests]
    outcomes = {name: outcome for name, outcome, _ in report.tests}
    assert ("failed", "skipped", "passed") == (outcomes["pkg.Case.test_013"], outcomes["pkg.Case.test_017"],
                                               outcomes["pkg.Case.test_010"])
    assert "assert 13 == 0 [it's] |pipe|" == report.failures["pkg.Case.test_013"]
    assert 99 == dict((n, d) for n, _, d in report.tests)["pkg.Case.test_099"]
    staged = job / "ci-sidecar-staged" / "artifacts" / flow / "logs" / "test_003.log"
    assert [f"{staged} => ci-sidecar/{flow}/logs"] == [m.value for m in messages if m.name == "publishArtifacts"]
    assert b"the log of test 3\n" == staged.read_bytes()
    assert [{"testName": "pkg.Case.test_003", "name": "logs/test_003.log", "type": "artifact",
             "value": f"ci-sidecar/{flow}/logs/test_003.log", "flowId": flow}] \
        == [m.attrs for m in messages if m.name == "testMetadata"]
    assert ["buildProblem", "buildStatus", "addBuildTag"] == [m.name for m in messages][-3:]
    return flow


def test_exec_prints_each_test_once_as_results_arrive(tmp_path: Path, env: dict[str, str]) -> None:
    """exec prints the first results while the command still runs, then the rest, each test once in a valid
    flow, failures and skips with their messages, the staged artifact published and linked, a build problem."""
    job = tmp_path / "job"
    job.mkdir()
    lines, stderr, status = _exec_job(job, _teamcity_job(job, env), lambda: None)
    assert 1 == status, stderr
    _check_log(lines, job)
    assert "teamcity: native (via service messages (ci-sidecar exec)), delivered" in stderr


def test_a_daemon_killed_mid_run_leaves_each_test_once(short_tmp: Path, tmp_path: Path, env: dict[str, str]) -> None:
    """exec joined to the machine's daemon: a kill -9 of that daemon halfway and its restart lose no test and
    print none twice; exec reconnects, goes on from its cursor and finishes the run."""
    job = tmp_path / "job"
    job.mkdir()
    socket = short_tmp / "tc.sock"
    daemon_env = dict(env)
    daemons = [DaemonProcess.start(socket, daemon_env)]

    def kill_and_restart() -> None:
        daemons[-1].proc.kill()
        daemons[-1].proc.wait()
        daemons[-1].stop()
        daemons.append(DaemonProcess.start(socket, daemon_env))

    try:
        lines, stderr, status = _exec_job(job, dict(_teamcity_job(job, env), CI_SIDECAR_SOCKET=str(socket)),
                                          kill_and_restart)
    finally:
        for d in daemons:
            d.stop()
    assert 2 == len(daemons) and 1 == status, stderr
    _check_log(lines, job)
    assert "finishing the run through the daemon now at that socket" in stderr

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "teamcity" / "settings.kts"


def test_the_example_settings_run_commands_that_exist() -> None:
    """examples/teamcity/settings.kts: its script is POSIX sh whose ci-sidecar commands parse with the real CLI,
    its artifact rule collects the staging folder the provider uses, and exec reads the JUnit file pytest writes."""
    import re
    import shlex
    import shutil

    from ci_sidecar.cli import build_parser
    from ci_sidecar.providers._staging import DEFAULT_FOLDER
    from ci_sidecar.providers.teamcity.settings import ARTIFACT_DIR

    text = EXAMPLE.read_text()
    assert f'artifactRules = "{DEFAULT_FOLDER}/artifacts => {ARTIFACT_DIR}"' in text
    script = re.search(r'scriptContent = """(.*?)"""', text, re.S)
    assert script is not None
    body = script[1].replace("${'$'}", "$")  # Kotlin's escape of a literal $
    shell = shutil.which("dash") or "/bin/sh"
    assert 0 == subprocess.run([shell, "-n"], input=body, text=True, capture_output=True).returncode, body
    commands = [shlex.split(line.strip())[1:] for line in body.splitlines() if line.strip().startswith("ci-sidecar ")]
    assert ["doctor"] == commands[0] and "exec" == commands[1][0]
    exec_args = build_parser().parse_args(commands[1])
    assert ["reports/*.xml"] == exec_args.junit
    assert "--junitxml=reports/pytest.xml" in exec_args.cmd
    assert all(build_parser().parse_args(c) for c in commands)
