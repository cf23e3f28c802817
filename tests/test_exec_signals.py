"""``ci-sidecar exec`` under signals: the command is stopped, the run completed as cancelled, nothing left running."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import signal
import subprocess
import sys
import termios
import textwrap
import time
from pathlib import Path

import pytest

PY = sys.executable

# a command that says when it is ready, counts the signals it gets, and exits 0 after the first one
CHILD = textwrap.dedent("""
    import os, signal, sys, time
    out = sys.argv[1]
    got = []
    signal.signal(signal.SIGINT, lambda s, f: got.append(s))
    signal.signal(signal.SIGTERM, lambda s, f: got.append(s))
    signal.signal(signal.SIGHUP, lambda s, f: got.append(s))
    with open(out + ".env", "w") as fh:
        fh.write(os.environ["CI_SIDECAR_SOCKET"])
    os.rename(out + ".env", out + ".ready")
    deadline = time.monotonic() + 60
    while not got and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # a duplicate would arrive in this window
    with open(out + ".signals", "w") as fh:
        fh.write(",".join(signal.Signals(s).name for s in got))
""")


@pytest.fixture
def job(tmp_path: Path, env: dict[str, str]) -> Path:
    d = tmp_path / "job"
    d.mkdir()
    (d / "child.py").write_text(CHILD)
    env.pop("CI_SIDECAR_OUTPUT_DIR", None)  # reports in the job's cwd, as a user would have them
    return d


def _start(job: Path, env: dict[str, str], *cmd: str) -> subprocess.Popen:
    return subprocess.Popen([PY, "-m", "ci_sidecar", "exec", "--name", "sig", "--", *cmd], cwd=job, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _wait_for(path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def _daemons_on(socket_path: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if socket_path.encode() in cmdline and b"serve" in cmdline:
                pids.append(int(entry.name))
    return pids


def _run_json(job: Path) -> dict:
    (run_json,) = job.glob("ci-sidecar-out/*/run.json")
    return json.loads(run_json.read_text())


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_to_exec_stops_the_command_and_cancels_the_run(job: Path, env: dict[str, str], sig) -> None:
    """`kill -TERM <exec>` reaches the command once, the run ends cancelled, exec exits 128+N, no daemon stays."""
    proc = _start(job, env, PY, "child.py", str(job / "c"))
    _wait_for(job / "c.ready")
    socket_path = (job / "c.ready").read_text()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err
    assert (job / "c.signals").read_text() == signal.Signals(sig).name
    assert "cancelled" in err and f"received {signal.Signals(sig).name}" in err
    assert _run_json(job)["conclusion"] == "cancelled"
    assert _daemons_on(socket_path) == []


def test_ctrl_c_reaches_the_command_once(job: Path, env: dict[str, str]) -> None:
    """Ctrl-C on a terminal reaches the command once (not again from exec); the daemon survives to complete the run."""
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(
            [PY, "-m", "ci_sidecar", "exec", "--name", "sig", "--", PY, "child.py", str(job / "c")], cwd=job, env=env,
            stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),  # the pty is the job's terminal
        )
        _wait_for(job / "c.ready")
        os.write(master, b"\x03")  # the line discipline sends SIGINT to the foreground process group
        out, err = proc.communicate(timeout=60)
    finally:
        os.close(master)
        os.close(slave)
    assert proc.returncode == 130, err
    assert (job / "c.signals").read_text() == "SIGINT"
    assert "closed the connection" not in err
    assert _run_json(job)["conclusion"] == "cancelled"


def test_a_command_killed_by_a_signal_exits_128_plus_n(job: Path, env: dict[str, str]) -> None:
    """A command killed by SIGKILL makes exec exit 137, as a shell would, and fails the run."""
    proc = _start(job, env, PY, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 137, err
    assert _run_json(job)["conclusion"] == "failure"


def test_a_private_daemon_exits_when_its_exec_is_killed(job: Path, env: dict[str, str]) -> None:
    """`kill -9 <exec>` cannot clean up, so the private daemon notices its last session ended and exits."""
    proc = _start(job, env, PY, "child.py", str(job / "c"))
    _wait_for(job / "c.ready")
    socket_path = (job / "c.ready").read_text()
    assert len(_daemons_on(socket_path)) == 1
    proc.kill()
    proc.wait(30)
    os.killpg(proc.pid, signal.SIGTERM)  # the orphaned command, as a CI runner would clean it up
    proc.communicate(timeout=30)
    deadline = time.monotonic() + 30
    while _daemons_on(socket_path):
        assert time.monotonic() < deadline, "the private daemon outlived its exec"
        time.sleep(0.2)
