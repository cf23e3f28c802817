"""TeamCity: the catalog line's contract, the tiers, and ``ci-sidecar exec`` printing a run as service messages
while the tests run — every test exactly once, in a valid order on the run's flow, artifacts published."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from ci_sidecar.protocol.records import CIContext
from ci_sidecar.providers.base import ProviderEnv, PublishRun, RunSnapshot, SetStatus, StreamsJobLog
from ci_sidecar.providers.catalog import by_name
from ci_sidecar.protocol.records import Counts
from ci_sidecar.providers.teamcity import TeamCityProvider
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

    def test_without_exec_nothing_pretends_to_carry_the_results(self) -> None:
        """Outside exec a run is refused as unsupported with the way to get it, and statuses point to the code host."""
        provider = TeamCityProvider()
        caps = provider.capabilities(_env())
        assert "none" == caps.test_run.kind and "ci-sidecar exec" in (caps.test_run.note or "")
        out = trio_run(provider.deliver(PublishRun(run=_snapshot()), _env(), {}))
        assert ("unsupported", True) == (out.kind, "ci-sidecar exec" in out.message)
        status = trio_run(provider.deliver(SetStatus(state="success", context="c"), _env(), {}))
        assert "unsupported" == status.kind and "code host" in status.message


def trio_run(coro):  # noqa: ANN001, ANN201 - a coroutine's result
    import trio

    async def main():  # noqa: ANN202
        return await coro

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


def test_exec_prints_each_test_once_as_results_arrive(tmp_path: Path, env: dict[str, str]) -> None:
    """exec prints the first results while the command still runs, then the rest, each test once in a valid
    flow, failures and skips with their messages, the staged artifact published and linked, a build problem."""
    job = tmp_path / "job"
    job.mkdir()
    (job / "reporter.py").write_text(REPORTER)
    go = job / "go"
    with (job / "stderr").open("w") as err:
        proc = subprocess.Popen([PY, "-m", "ci_sidecar", "exec", "--name", "unit tests", "--", PY, "reporter.py",
                                 str(go)], cwd=job, env=_teamcity_job(job, env), stdout=subprocess.PIPE, stderr=err,
                                text=True)
    lines: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "name='pkg.Case.test_049'" in line and line.startswith("##teamcity[testFinished"):
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
    stderr = (job / "stderr").read_text()
    assert 1 == proc.returncode, stderr
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
    published = [m.value for m in messages if m.name == "publishArtifacts"]
    assert [f"{job / 'ci-sidecar-staged' / 'artifacts' / flow / 'logs' / 'test_003.log'} => ci-sidecar/{flow}/logs"] \
        == published
    assert (job / "ci-sidecar-staged" / "artifacts" / flow / "logs" / "test_003.log").read_bytes() == b"the log of test 3\n"
    meta = [m.attrs for m in messages if m.name == "testMetadata"]
    assert [{"testName": "pkg.Case.test_003", "name": "logs/test_003.log", "type": "artifact",
             "value": f"ci-sidecar/{flow}/logs/test_003.log", "flowId": flow}] == meta
    names = [m.name for m in messages]
    assert names[-3:] == ["buildProblem", "buildStatus", "addBuildTag"]
    assert "teamcity: native (via service messages (ci-sidecar exec)), delivered" in stderr
