"""``ci-sidecar exec`` on a machine with a service: it joins the running daemon instead of starting one
(``--private`` forces its own), survives its daemon dying under the command, and at the end shows what it
is still waiting for (a line every 5 s in a CI log, a live line on a terminal) before it lists what was not
delivered."""

from __future__ import annotations

import re
import socket
import subprocess
import textwrap
import time
from pathlib import Path

from helpers import DaemonProcess, main_taken, run_on_terminal
from test_exec_e2e import PY, cli, closed_port, github_env, junit  # noqa: F401 - closed_port is a fixture

from ci_sidecar_client import Client


def runs_of(daemon: DaemonProcess) -> list[str]:
    with Client.connect(str(daemon.path)) as c:
        return [r["name"] for r in c.request("list_test_runs", {})["runs"]]


def test_exec_joins_the_daemon_at_ci_sidecar_socket_or_the_default_socket(tmp_path: Path, short_tmp: Path,
                                                                         env: dict[str, str]) -> None:
    """With a service listening, exec's run lands in it and no private daemon or instance is made;
    --private starts its own all the same."""
    env.pop("CI_SIDECAR_OUTPUT_DIR", None)
    env["XDG_RUNTIME_DIR"] = str(short_tmp / "rt")  # a socket path must stay under 108 bytes
    (short_tmp / "rt").mkdir(mode=0o700)
    job = tmp_path / "job"
    job.mkdir()
    service_env = dict(env, CI_SIDECAR_STATE_DIR=str(tmp_path / "service-state"))
    default_socket = Path(subprocess.run(
        [PY, "-c", "from ci_sidecar.paths import default_socket_path; print(default_socket_path())"],
        env=env, capture_output=True, text=True, check=True).stdout.strip())
    assert default_socket.is_relative_to(short_tmp)
    default_socket.parent.mkdir(mode=0o700, exist_ok=True)
    service = DaemonProcess.start(default_socket, service_env)
    other = DaemonProcess.start(short_tmp / "other.sock", service_env | {"CI_SIDECAR_STATE_DIR": str(
        tmp_path / "other-state")})
    try:
        by_default = cli("exec", "--name", "joined by default", "--", "true", cwd=job, env=env)
        assert by_default.returncode == 0, by_default.stderr
        by_variable = cli("exec", "--name", "joined by variable", "--", "true", cwd=job,
                          env=dict(env, CI_SIDECAR_SOCKET=str(other.path)))
        assert by_variable.returncode == 0, by_variable.stderr
        private = cli("exec", "--private", "--name", "private", "--", "true", cwd=job, env=env)
        assert private.returncode == 0, private.stderr
        assert runs_of(service) == ["joined by default"]
        assert runs_of(other) == ["joined by variable"]
        assert "run 'private': success" in private.stderr  # in a daemon of its own, on exec's state root
        assert (Path(env["CI_SIDECAR_STATE_DIR"]) / "private").is_dir()
    finally:
        service.stop()
        other.stop()


def test_a_stale_socket_file_does_not_stop_exec(tmp_path: Path, short_tmp: Path, env: dict[str, str]) -> None:
    """A socket file nobody listens on (a daemon killed earlier): exec starts its own daemon."""
    job = tmp_path / "job"
    job.mkdir()
    stale = short_tmp / "stale.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(stale))
    s.close()  # bound, never listening: connections are refused
    done = cli("exec", "--", "true", cwd=job, env=dict(env, CI_SIDECAR_SOCKET=str(stale)))
    assert done.returncode == 0, done.stderr
    assert "run 'true': success" in done.stderr


def test_a_daemon_killed_under_the_command_leaves_the_commands_status_and_an_orphan_to_adopt(
        tmp_path: Path, env: dict[str, str]) -> None:
    """kill -9 of exec's private daemon while the tests run: the tests finish, exec exits with their status
    and says the run was not completed; the next daemon adopts the instance and closes the run as cancelled."""
    job = tmp_path / "job"
    job.mkdir()
    script = job / "t.py"
    script.write_text(textwrap.dedent("""\
        import os, signal, sys
        from ci_sidecar_client import Client
        with Client.connect() as c:
            c.request("report_results", {"test_run_id": os.environ["CI_SIDECAR_RUN_ID"],
                                         "results": [{"name": "a", "status": "passed"}]})
            pid = c.request("sidecar/status", {})["pid"]
            os.kill(pid, signal.SIGKILL)
        print("tests went on")
        sys.exit(4)
        """))
    root = Path(env["CI_SIDECAR_STATE_DIR"])
    with main_taken(root):  # a service holds the main instance: exec's daemon gets one of its own
        done = cli("exec", "--", PY, str(script), cwd=job, env=env)
        assert done.returncode == 4, done.stderr
        assert "tests went on" in done.stdout
        assert "lost the ci-sidecar daemon after the command ran" in done.stderr, done.stderr
        [orphan] = list((root / "instances").iterdir())
        assert orphan.name.startswith("exec-")
    adopter = Client.spawn([PY, "-m", "ci_sidecar", "serve", "--stdio"], env=env)
    try:
        deadline = time.monotonic() + 20
        while orphan.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not orphan.exists()
    finally:
        adopter.close(timeout=10)
    [run_json] = [p for p in Path(env["CI_SIDECAR_OUTPUT_DIR"]).rglob("run.json")]
    assert '"conclusion":"cancelled"' in run_json.read_text().replace(" ", "")


def test_in_a_ci_log_the_wait_shows_one_line_per_5_s(tmp_path: Path, env: dict[str, str],
                                                     closed_port: int) -> None:  # noqa: F811
    """Waiting 7 s for a GitHub that does not answer prints at most two progress lines, then the list."""
    job = tmp_path / "job"
    job.mkdir()
    junit(job / "out.xml", '<testcase classname="m" name="ok"/>')
    done = cli("exec", "--junit", "out.xml", "--wait-s", "7", "--", "true", cwd=job,
               env=github_env(env, closed_port))
    assert done.returncode == 0, done.stderr
    waiting = [line for line in done.stderr.splitlines() if line.startswith("ci-sidecar: waiting for ")]
    assert 1 <= len(waiting) <= 2, done.stderr
    assert re.match(r"ci-sidecar: waiting for 1 write\(s\), \d+ s left: github run:\w+ \(PublishRun", waiting[0])
    assert "not delivered in time: 1 write(s)" in done.stderr


def test_on_a_terminal_the_wait_is_a_live_line(tmp_path: Path, env: dict[str, str],
                                               closed_port: int) -> None:  # noqa: F811
    """On a terminal the pending writes are redrawn in place every second."""
    job = tmp_path / "job"
    job.mkdir()
    code, text = run_on_terminal([PY, "-m", "ci_sidecar", "exec", "--wait-s", "3.5", "--", "true"], job,
                                 github_env(env, closed_port))
    assert code == 0, text
    redrawn = re.findall(r"\r\x1b\[2Kci-sidecar: waiting for 1 write\(s\), (\d+) s left", text)
    assert len(redrawn) >= 2 and len(set(redrawn)) >= 2, text  # the same line, counting down
    assert "not delivered in time: 1 write(s)" in text
