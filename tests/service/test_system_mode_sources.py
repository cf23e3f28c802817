"""System mode: what a session may make the daemon read. Settings that widen access come only from the
daemon's own configuration; the default source roots are the client's own working tree, not /tmp."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from ci_sidecar.protocol.errors import PathNotAllowed
from ci_sidecar.service.source_paths import SourcePolicy
from helpers import DaemonProcess, RawConnection


@pytest.fixture
def system_daemon(short_tmp: Path, env: dict[str, str]) -> DaemonProcess:
    d = DaemonProcess.start(short_tmp / "d.sock", env, extra=["--system"])
    yield d
    d.stop()


def _answer(raw: RawConnection, warnings: list[str]) -> dict:
    """The next response; notifications before it go to ``warnings``."""
    reply = raw.receive()
    while "method" in reply:
        warnings.append(reply["params"]["message"])
        reply = raw.receive()
    return reply


def _session(d: DaemonProcess, cwd: Path, env: dict[str, str], warnings: list[str]) -> tuple[RawConnection, str]:
    raw = RawConnection(d.path)
    raw.send({"jsonrpc": "2.0", "id": 1, "method": "initialize",
              "params": {"processId": None, "cwd": str(cwd), "env": env}})
    assert "result" in _answer(raw, warnings)
    raw.send({"jsonrpc": "2.0", "id": 2, "method": "create_test_run", "params": {"name": "sources"}})
    return raw, _answer(raw, warnings)["result"]["id"]


def _call(raw: RawConnection, rid: int, method: str, params: dict, warnings: list[str]) -> dict:
    raw.send({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
    return _answer(raw, warnings)


class TestSystemModeSources:
    def test_working_tree_and_client_env_cannot_widen_source_roots(self, system_daemon: DaemonProcess,
                                                                   env: dict[str, str], tmp_path: Path) -> None:
        """source_roots from the client's ci-sidecar.toml or environment are ignored (with a warning):
        /etc/hostname stays unreadable, the working tree stays readable."""
        work = tmp_path / "work"
        work.mkdir()
        (work / "ci-sidecar.toml").write_text('source_roots = ["/"]\n')
        (work / "log.txt").write_text("mine\n")
        warnings: list[str] = []
        raw, run = _session(system_daemon, work, {**env, "CI_SIDECAR_SOURCE_ROOTS": "/"}, warnings)
        for rid, path in enumerate(("/etc/hostname", "../../../../../etc/hostname"), 10):
            reply = _call(raw, rid, "upload_artifact", {"test_run_id": run, "path": path}, warnings)
            assert -31005 == reply["error"]["code"], reply
        reply = _call(raw, 20, "upload_artifact", {"test_run_id": run, "path": "log.txt"}, warnings)
        assert 5 == reply["result"]["size"], reply
        assert any("ignoring source_roots" in w for w in warnings), warnings
        raw.close()
        warnings.clear()
        raw, run = _session(system_daemon, work, env, warnings)  # the working tree's file alone
        reply = _call(raw, 3, "upload_artifact", {"test_run_id": run, "path": "/etc/hostname"}, warnings)
        assert -31005 == reply["error"]["code"], reply
        assert any("ci-sidecar.toml" in w for w in warnings), warnings
        raw.close()

    def test_other_temp_files_are_not_a_default_root(self, system_daemon: DaemonProcess, env: dict[str, str],
                                                     tmp_path: Path) -> None:
        """A file in the temp dir outside the client's working tree is -31005 in system mode."""
        work = tmp_path / "work"
        work.mkdir()
        fd, other = tempfile.mkstemp(prefix="cs-other-", dir="/tmp")
        os.write(fd, b"someone else's\n")
        os.close(fd)
        try:
            raw, run = _session(system_daemon, work, env, [])
            reply = _call(raw, 3, "upload_artifact", {"test_run_id": run, "path": other}, [])
            assert -31005 == reply["error"]["code"] and "outside" in reply["error"]["data"]["reason"], reply
            raw.close()
        finally:
            os.unlink(other)


class TestSourcePolicy:
    def test_system_mode_cwd_counts_only_when_the_peer_owns_it(self, tmp_path: Path) -> None:
        """A working directory the connecting user does not own (here: root's) gives no default root."""
        policy = SourcePolicy.for_session(str(tmp_path), [], [], system_mode=True, peer_uid=4242)
        (tmp_path / "f").write_text("x")
        with pytest.raises(PathNotAllowed) as e:
            policy.resolve("f")
        assert "content_base64" in e.value.data["reason"]
        own = SourcePolicy.for_session(str(tmp_path), [], [], system_mode=True, peer_uid=os.stat(tmp_path).st_uid)
        assert [str(tmp_path.resolve())] == own.roots

    def test_user_mode_keeps_cwd_and_temp_dir(self, tmp_path: Path) -> None:
        """Without system mode the defaults stay the cwd and the temp dir."""
        policy = SourcePolicy.for_session(str(tmp_path), [], [])
        assert [str(tmp_path.resolve()), str(Path(tempfile.gettempdir()).resolve())] == policy.roots
