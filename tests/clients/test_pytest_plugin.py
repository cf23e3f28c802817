"""The pytest plugin (clients/python/ci_sidecar_client/pytest_plugin.py), run the way users run it: a
``pytest`` subprocess over sample test files, reporting to a real daemon through CI_SIDECAR_SOCKET."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from ci_sidecar_client import Client
from ci_sidecar_client._fold import ResultFolder
from ci_sidecar_client._reporting import RunReporter
from helpers import missing

SAMPLE = '''
import sys
import pytest

def test_ok():
    print("to stdout")
    print("to stderr", file=sys.stderr)

def test_fail():
    assert 1 == 2, "one is not two"

@pytest.fixture
def broken():
    raise RuntimeError("setup boom")

def test_setup_error(broken):
    pass

@pytest.mark.skip(reason="not today")
def test_skip():
    pass

@pytest.mark.xfail(reason="known bug")
def test_xfail():
    assert False

@pytest.mark.xfail(reason="fixed now?", strict=True)
def test_xpass_strict():
    pass

class TestGroup:
    @pytest.mark.parametrize("x", [1, 2])
    def test_param(self, x):
        assert x
'''

SUMMARY = re.compile(r"ci-sidecar: run (\w+) (\w+): (.*?); report: (\S+)")


def run_pytest(tmp: Path, env: dict[str, str], files: dict[str, str], *args: str,
               timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m pytest`` in ``tmp`` over ``files``, with the plugin named explicitly (as when installed)."""
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "pytest.ini").write_text("[pytest]\n")  # a rootdir of its own, away from the project's config
    for name, text in files.items():
        (tmp / name).write_text(textwrap.dedent(text))
    env = {k: v for k, v in env.items() if not k.startswith("PYTEST_")}
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # the plugins installed here cost ~2 s per start
    argv = [sys.executable, "-m", "pytest", "-p", "ci_sidecar_client.pytest_plugin", "-p", "no:cacheprovider",
            "--strict-markers", "-rA", *args]
    return subprocess.run(argv, cwd=tmp, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout)


def results_of(client: Client, run_id: str) -> dict[str, dict[str, Any]]:
    """The run's results by name, read from its JSON report."""
    rendered = client.request("render_report", {"test_run_id": run_id, "format": "json"})
    data = json.loads(Path(rendered["path"]).read_text())
    return {r["name"]: r for r in data["results"]}


@pytest.fixture(scope="module")
def plugin_env(client_env: dict[str, str], shared_daemon: Any) -> dict[str, str]:
    return dict(client_env, CI_SIDECAR_SOCKET=str(shared_daemon.path))


@pytest.fixture
def client(shared_daemon: Any) -> Any:
    with Client.connect(str(shared_daemon.path)) as c:
        yield c


def test_creates_streams_and_completes_a_run(tmp_path: Path, plugin_env: dict[str, str], client: Client) -> None:
    files = {"test_sample.py": SAMPLE, "test_broken.py": "def test_x(:\n    pass\n"}
    proc = run_pytest(tmp_path / "s", plugin_env, files, "--ci-sidecar", "--continue-on-collection-errors")
    assert proc.returncode == 1, proc.stdout
    m = SUMMARY.search(proc.stdout)
    assert m, proc.stdout
    run_id, conclusion, _, report = m.groups()
    assert conclusion == "failure"
    assert Path(report).is_file()
    assert proc.stdout.count("ci-sidecar:") == 1, proc.stdout  # one line, no warnings

    run = client.request("get_test_run_status", {"test_run_id": run_id})
    assert run["status"] == "finished" and run["conclusion"] == "failure"
    c = run["counts"]
    # passed: test_ok, test_param[1], test_param[2]; failed: test_fail, xpass strict;
    # errors: setup error, the file that does not compile; skipped: skip + xfail
    assert (c["total"], c["passed"], c["failed"], c["errors"], c["skipped"]) == (9, 3, 2, 2, 2), c

    res = results_of(client, run_id)
    fail = res["test_fail"]
    assert fail["status"] == "failed"
    assert fail["file"] == "test_sample.py" and fail["line"] == 9
    assert "one is not two" in fail["message"] and "assert 1 == 2" in fail["details"]
    assert fail["classname"] == "test_sample"
    ok = res["test_ok"]
    assert ok["stdout"] == "to stdout\n" and ok["stderr"] == "to stderr\n" and ok["duration"] >= 0
    assert res["test_setup_error"]["status"] == "error" and "setup boom" in res["test_setup_error"]["message"]
    assert res["test_xfail"]["status"] == "skipped" and "known bug" in res["test_xfail"]["message"]
    assert res["test_xpass_strict"]["status"] == "failed"
    assert res["test_param[2]"]["classname"] == "test_sample.TestGroup"
    assert res["test_broken"]["status"] == "error"


def test_off_unless_asked(tmp_path: Path, plugin_env: dict[str, str], client: Client) -> None:
    before = len(client.request("list_test_runs", {"limit": 500})["runs"])
    proc = run_pytest(tmp_path / "s", plugin_env, {"test_a.py": "def test_a():\n    pass\n"})
    assert proc.returncode == 0, proc.stdout
    assert "ci-sidecar:" not in proc.stdout and "ci-sidecar run" not in proc.stdout  # no summary, no warning
    assert len(client.request("list_test_runs", {"limit": 500})["runs"]) == before


def test_joins_the_run_in_the_environment_and_leaves_it_running(
        tmp_path: Path, plugin_env: dict[str, str], client: Client) -> None:
    run = client.request("create_test_run", {"name": "owned elsewhere"})
    env = dict(plugin_env, CI_SIDECAR_RUN_ID=run["id"])  # no --ci-sidecar: the variable enables it
    files = {"test_j.py": "def test_one():\n    pass\n\ndef test_two():\n    assert 0\n"}
    proc = run_pytest(tmp_path / "j", env, files)
    assert proc.returncode == 1, proc.stdout
    assert f"reported 2 results to run {run['id']} (joined" in proc.stdout
    status = client.request("get_test_run_status", {"test_run_id": run["id"]})
    assert status["status"] == "running"
    assert (status["counts"]["passed"], status["counts"]["failed"]) == (1, 1)
    # a second session joining the same run adds to it
    proc = run_pytest(tmp_path / "j2", env, {"test_k.py": "def test_three():\n    pass\n"})
    assert proc.returncode == 0, proc.stdout
    assert client.request("get_test_run_status", {"test_run_id": run["id"]})["counts"]["total"] == 3


def test_flaky_test_rerun_counts_as_flaky(tmp_path: Path, plugin_env: dict[str, str], client: Client) -> None:
    try:
        import pytest_rerunfailures  # noqa: F401
    except ImportError:
        missing("needs pytest-rerunfailures, which is not installed", "python3 -m pip install -e '.[test]'")
    flaky = '''
        from pathlib import Path

        def test_flaky(tmp_path_factory):
            marker = Path(__file__).with_name("ran-once")
            if not marker.exists():
                marker.write_text("x")
                assert False, "first attempt fails"

        def test_always_fails():
            assert False, "every attempt"
    '''
    proc = run_pytest(tmp_path / "f", plugin_env, {"test_f.py": flaky}, "--ci-sidecar", "-p", "pytest_rerunfailures",
                      "--reruns", "2")
    assert proc.returncode == 1, proc.stdout
    run_id = SUMMARY.search(proc.stdout).group(1)
    c = client.request("get_test_run_status", {"test_run_id": run_id})["counts"]
    assert (c["total"], c["passed"], c["failed"], c["flaky"]) == (2, 1, 1, 1), c


def test_marked_files_are_uploaded_as_artifacts(tmp_path: Path, plugin_env: dict[str, str],
                                                client: Client) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    sample = f'''
        import pytest

        @pytest.mark.ci_artifact("build/report.txt")
        def test_marker():
            import os
            os.makedirs("build", exist_ok=True)
            open("build/report.txt", "w").write("from the marker")

        def test_fixture(ci_artifacts):
            p = {str(outside)!r} + "/trace.log"
            open(p, "w").write("x" * 100000)
            ci_artifacts.add(p, name="traces/trace.log")

        def test_missing(ci_artifacts):
            ci_artifacts.add("never-written.png")
    '''
    # the daemon may read only the test directory: the fixture's file must travel as a stream
    env = dict(plugin_env, CI_SIDECAR_SOURCE_ROOTS=str(tmp_path / "a"))
    proc = run_pytest(tmp_path / "a", env, {"test_art.py": sample}, "--ci-sidecar")
    assert proc.returncode == 0, proc.stdout
    run_id = SUMMARY.search(proc.stdout).group(1)
    assert "artifact test_art.py/test_missing/never-written.png of test_art.py::test_missing not uploaded" \
        in proc.stdout

    arts = {a["name"]: a for a in client.request("get_artifacts_for_test_run", {"test_run_id": run_id})}
    assert set(arts) == {"test_art.py/test_marker/report.txt", "traces/trace.log"}
    assert arts["traces/trace.log"]["size"] == 100000
    assert arts["traces/trace.log"]["metadata"]["test"] == "test_art.py::test_fixture"
    url = client.request("get_artifact_url", {"test_run_id": run_id, "name": "test_art.py/test_marker/report.txt"})
    assert url["url"]
    res = results_of(client, run_id)
    assert res["test_marker"]["properties"]["artifacts"] == ["test_art.py/test_marker/report.txt"]


def test_missing_daemon_warns_once_and_tests_go_on(tmp_path: Path, plugin_env: dict[str, str]) -> None:
    env = dict(plugin_env, CI_SIDECAR_SOCKET="/tmp/csc-no-such-daemon.sock", CI_SIDECAR_PYTEST="1")
    files = {"test_m.py": "def test_a():\n    pass\n\ndef test_b():\n    pass\n"}
    proc = run_pytest(tmp_path / "m", env, files)
    assert proc.returncode == 0, proc.stdout
    assert proc.stdout.count("results are NOT being reported") == 1, proc.stdout
    assert "/tmp/csc-no-such-daemon.sock" in proc.stdout
    assert "2 passed" in proc.stdout

    strict = run_pytest(tmp_path / "m2", env, files, "--ci-sidecar-strict")
    assert strict.returncode == 4, strict.stdout
    assert "ci-sidecar: cannot report" in strict.stdout


def test_spawns_a_daemon_without_a_socket(tmp_path: Path, plugin_env: dict[str, str]) -> None:
    # a private daemon needs its own state dir (the shared daemon holds the lock on the other)
    env = {k: v for k, v in plugin_env.items() if k != "CI_SIDECAR_SOCKET"}
    env["CI_SIDECAR_STATE_DIR"] = str(tmp_path / "state")
    proc = run_pytest(tmp_path / "p", env, {"test_p.py": "def test_a():\n    pass\n"}, "--ci-sidecar",
                      "--ci-sidecar-name", "spawned")
    assert proc.returncode == 0, proc.stdout
    m = SUMMARY.search(proc.stdout)
    assert m and m.group(2) == "success" and m.group(3).startswith("1 passed"), proc.stdout
    run = json.loads((Path(m.group(4)).parent / "run.json").read_text())
    assert run.get("name", run.get("run", {}).get("name")) == "spawned"

    # a daemon that cannot start: the warning quotes why (here: a state root that cannot be created; a
    # state root another daemon uses is no reason, that one gets an instance of its own)
    (tmp_path / "a-file").write_text("")
    env["CI_SIDECAR_STATE_DIR"] = str(tmp_path / "a-file" / "state")
    proc = run_pytest(tmp_path / "q", env, {"test_q.py": "def test_a():\n    pass\n"}, "--ci-sidecar")
    assert proc.returncode == 0, proc.stdout
    assert "results are NOT being reported" in proc.stdout and "daemon said:" in proc.stdout, proc.stdout


class _FakeClient:
    """Records report_results batches; answers at once (the wire is covered by the tests above)."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    def send_request(self, method: str, params: Any) -> Any:
        from concurrent.futures import Future

        self.batches.append(len(params["results"]))
        fut: Future[Any] = Future()
        fut.set_result({"accepted": len(params["results"]), "total": 0})
        return fut


def test_results_are_batched_by_count_size_and_time() -> None:
    fake = _FakeClient()
    rep = RunReporter(fake, {"id": "r"}, joined=True, batch_size=100, interval=60)  # type: ignore[arg-type]
    for i in range(250):
        rep.add({"name": f"t{i}", "status": "passed"})
    assert fake.batches == [100, 100]
    rep.drain()
    assert fake.batches == [100, 100, 50] and rep.sent == 250

    small = RunReporter(fake, {"id": "r"}, joined=True, interval=60, max_batch_bytes=1000)  # type: ignore[arg-type]
    fake.batches.clear()
    for i in range(5):
        small.add({"name": f"t{i}", "status": "failed", "details": "x" * 400})
    assert fake.batches == [2, 2]

    timed = RunReporter(fake, {"id": "r"}, joined=True, interval=0.05)  # type: ignore[arg-type]
    fake.batches.clear()
    timed.add({"name": "slow neighbour", "status": "passed"})
    deadline = time.monotonic() + 5
    while not fake.batches and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fake.batches == [1]  # sent by the timer, with no further result to trigger it


def test_daemon_dying_mid_session_does_not_break_the_tests(tmp_path: Path, client_env: dict[str, str]) -> None:
    from helpers import DaemonProcess

    d = Path(tempfile.mkdtemp(prefix="csp", dir="/tmp"))
    daemon = DaemonProcess.start(d / "d.sock", dict(client_env, CI_SIDECAR_STATE_DIR=str(d / "state")))
    try:
        sample = '''
            import os, time
            from ci_sidecar_client import Client

            def test_before():
                pass

            def test_stops_the_daemon():
                with Client.connect(os.environ["CI_SIDECAR_SOCKET"]) as c:
                    c.request("sidecar/stop")
                time.sleep(1.5)

            def test_after():
                pass
        '''
        env = dict(client_env, CI_SIDECAR_SOCKET=str(daemon.path))
        proc = run_pytest(tmp_path / "d", env, {"test_d.py": sample}, "--ci-sidecar")
        assert proc.returncode == 0, proc.stdout
        assert "3 passed" in proc.stdout
        assert proc.stdout.count("results are NOT being reported") == 1, proc.stdout
        assert "Traceback" not in proc.stdout and "INTERNALERROR" not in proc.stdout, proc.stdout
    finally:
        daemon.stop()
        shutil.rmtree(d, ignore_errors=True)


def _report(nodeid: str, when: str, outcome: str, **extra: Any) -> SimpleNamespace:
    return SimpleNamespace(nodeid=nodeid, when=when, outcome=outcome, location=("t.py", 4, "x"),
                           duration=0.5, longrepr=extra.pop("longrepr", None), **extra)


def test_folding_rules_for_teardown_and_xpass() -> None:
    folder = ResultFolder()
    nid = "t.py::test_a"
    assert folder.add(_report(nid, "setup", "passed")) is None
    assert folder.add(_report(nid, "call", "failed", longrepr="E   boom", longreprtext="E   boom")) is None
    result, _ = folder.add(_report(nid, "teardown", "failed", longrepr="E   td", longreprtext="E   td",
                                   capstdout="out"))
    # a failure stays a failure; the teardown traceback is kept with it
    assert result["status"] == "failed" and "boom" in result["details"] and "td" in result["details"]
    assert result["duration"] == 1.5 and result["line"] == 5 and result["stdout"] == "out"
    assert "attempt" not in result

    nid = "t.py::C::test_b[1]"
    folder.add(_report(nid, "setup", "passed"))
    folder.add(_report(nid, "call", "passed", wasxfail="flaky upstream"))
    result, _ = folder.add(_report(nid, "teardown", "passed"))
    assert result["status"] == "passed" and result["properties"]["xpass"] == "flaky upstream"
    assert (result["classname"], result["name"]) == ("t.C", "test_b[1]")

    # pytest-rerunfailures: a setup error that is rerun, then a pass
    nid = "t.py::test_c"
    folder.add(_report(nid, "setup", "rerun", rerun=0, longrepr="E   db down"))
    first, _ = folder.add(_report(nid, "teardown", "passed", rerun=0))
    folder.add(_report(nid, "setup", "passed", rerun=1))
    folder.add(_report(nid, "call", "passed", rerun=1))
    second, _ = folder.add(_report(nid, "teardown", "passed", rerun=1))
    assert (first["status"], first["attempt"]) == ("error", 1)
    assert (second["status"], second["attempt"]) == ("passed", 2)
