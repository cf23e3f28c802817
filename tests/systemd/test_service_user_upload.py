"""A job uploads what the service user cannot read, and reads what the service writes (issue 9).

The daemon runs as systemd would start it from the units: socket-activated, ``--system``, as an
unprivileged service user (``setpriv``, as ``User=``/``Group=``), with ``UMask=0027`` and
``StateDirectoryMode=0750``. The job is root here (the tests run as root), but the file it uploads is
root's and mode 0600, so the service cannot open it: by path that is a clear -31005, by
``content_base64`` or through an artifact stream it works, and the stored artifact belongs to the service
user inside its state directory. Reports land under the service's output root, readable by the service's
group (a CI user in that group reads them; a user outside it does not).
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from ci_sidecar_client import Client, RpcError

pytestmark = pytest.mark.requires_tool("systemd-socket-activate", "apt-get install systemd")

SECRET = b"calibration table: only root may read this\n" * 50
OTHER_UID = 4242  # a CI job's user: not the service user, in the service's group or not


def _service_command(source_root: Path) -> list[str]:
    from conftest import SERVICE_PYTHON

    # UMask=0027 as in the unit; exec keeps the pid the activator handed LISTEN_PID to. In system
    # mode the daemon reads jobs' files only under the source roots its administrator configured.
    return ["/bin/sh", "-c", 'umask 0027 && exec "$@"', "sh", "env", f"CI_SIDECAR_SOURCE_ROOTS={source_root}",
            SERVICE_PYTHON, "-m", "ci_sidecar", "serve", "--socket", "{socket}", "--system"]


def _as_user(uid: int, groups: list[int], *argv: str) -> subprocess.CompletedProcess:
    group_flag = f"--groups={','.join(map(str, groups))}" if groups else "--clear-groups"
    return subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={uid}", group_flag, "--", *argv],
                          capture_output=True, timeout=30, check=False, cwd="/")


@pytest.fixture
def service(activate, service_uid: int, monkeypatch: pytest.MonkeyPatch, short_tmp: Path):
    """The activated daemon as the service user (source root: the test's temp dir), and a connected
    job client (root)."""
    # the job sends its environment; local output must go to the service's output root, not a test dir
    monkeypatch.delenv("CI_SIDECAR_OUTPUT_DIR", raising=False)
    daemon = activate(_service_command(short_tmp), run_as=service_uid)
    daemon.dirs["STATE_DIRECTORY"].chmod(0o750)  # StateDirectoryMode=0750
    client = Client.connect(daemon.socket_path, timeout=10, client_name="job")
    try:
        yield daemon, client
    finally:
        client.close(timeout=5)
        assert daemon.terminate() == 0, daemon.stderr
        assert "Traceback" not in daemon.stderr, daemon.stderr


def _stored(daemon, art: dict, uid: int, data: bytes) -> None:
    """The artifact's content is in the state dir (and the local copy in the output root), the service's."""
    state = daemon.dirs["STATE_DIRECTORY"]
    stored = Path(art["stored_path"])
    assert stored.is_relative_to(state), art
    assert stored.read_bytes() == data and stored.stat().st_uid == uid
    copy = Path(unquote(urlparse(art["url"]).path))
    assert copy.is_relative_to(state / "output"), art
    assert copy.read_bytes() == data and copy.stat().st_uid == uid


def test_unreadable_files_upload_by_content_not_by_path(service, service_uid: int, short_tmp: Path) -> None:
    daemon, client = service
    secret = short_tmp / "secret.bin"
    secret.write_bytes(SECRET)
    secret.chmod(0o600)
    assert _as_user(service_uid, [], "cat", str(secret)).returncode != 0, "the service user must not read it"
    readable = short_tmp / "public.txt"
    readable.write_text("anyone may read this\n")
    readable.chmod(0o644)
    run_id = client.request("create_test_run", {"name": "service user"}, timeout=30)["id"]

    # by path: the service cannot open it, and says so
    with pytest.raises(RpcError) as refused:
        client.request("upload_artifact", {"test_run_id": run_id, "path": str(secret)}, timeout=30)
    assert refused.value.code == -31005
    assert refused.value.data["path"] == str(secret)
    assert "Permission denied" in refused.value.data["reason"], refused.value.data
    # (the same root, a readable file: it is the permission that matters, not where the file is)
    public = client.request("upload_artifact", {"test_run_id": run_id, "path": str(readable), "wait": True},
                            timeout=30)
    _stored(daemon, public, service_uid, readable.read_bytes())

    # by content: the job reads the file, the service stores the bytes as its own
    art = client.request("upload_artifact", {"test_run_id": run_id, "name": "secret.bin", "wait": True,
                                             "content_base64": base64.b64encode(secret.read_bytes()).decode()},
                         timeout=30)
    assert art["size"] == len(SECRET) and art["sha256"] == hashlib.sha256(SECRET).hexdigest()
    _stored(daemon, art, service_uid, SECRET)

    # through a stream, in chunks
    handle = client.request("open_artifact_stream", {"test_run_id": run_id, "name": "logs/secret-stream.bin",
                                                     "size": len(SECRET)}, timeout=30)["handle"]
    with secret.open("rb") as fh:
        offset = 0
        while chunk := fh.read(700):
            written = client.request("write_artifact_stream", {
                "test_run_id": run_id, "handle": handle, "offset": offset,
                "chunk_base64": base64.b64encode(chunk).decode()}, timeout=30)["written"]
            offset += len(chunk)
            assert written == offset
    streamed = client.request("close_artifact_stream", {"test_run_id": run_id, "handle": handle,
                                                        "sha256": hashlib.sha256(SECRET).hexdigest(), "wait": True},
                              timeout=30)
    _stored(daemon, streamed, service_uid, SECRET)
    names = [a["name"] for a in client.request("get_artifacts_for_test_run", {"test_run_id": run_id}, timeout=30)]
    assert sorted(names) == ["logs/secret-stream.bin", "public.txt", "secret.bin"]


def _finished_run(client: Client) -> Path:
    run_id = client.request("create_test_run", {"name": "on the rack"}, timeout=30)["id"]
    client.request("report_results", {"test_run_id": run_id, "results": [
        {"name": "boots", "status": "passed"}, {"name": "blinks", "status": "failed", "message": "led off"}]},
        timeout=30)
    done = client.request("complete_test_run", {"test_run_id": run_id, "wait": True}, timeout=60)
    return Path(done["output_dir"])


def test_system_mode_reports_land_in_the_output_root_group_readable(service, service_uid: int) -> None:
    daemon, client = service
    state = daemon.dirs["STATE_DIRECTORY"]
    out = _finished_run(client)
    assert out.parent == state / "output", out
    assert "led off" in (out / "report.html").read_text()
    files = sorted(p for p in out.rglob("*") if p.is_file())
    assert {p.name for p in files} >= {"report.html", "report.md", "junit.xml", "results.json", "badge.svg"}
    for path in files:
        st = path.stat()
        assert st.st_uid == service_uid and st.st_mode & 0o040, f"{path}: {oct(st.st_mode)} uid {st.st_uid}"
    for directory in (state / "output", out):
        assert directory.stat().st_mode & 0o050 == 0o050, f"{directory}: {oct(directory.stat().st_mode)}"


def test_a_ci_user_in_the_service_group_reads_the_reports(service, service_uid: int) -> None:
    daemon, client = service
    state = daemon.dirs["STATE_DIRECTORY"]
    report = _finished_run(client) / "report.html"
    member = _as_user(OTHER_UID, [service_uid], "cat", str(report))
    listing = subprocess.run(["ls", "-ld", str(state), str(state / "output"), str(report.parent), str(report)],
                             capture_output=True, text=True, check=False).stdout
    assert member.returncode == 0 and member.stdout == report.read_bytes(), f"{member.stderr!r}\n{listing}"
    outsider = _as_user(OTHER_UID, [], "cat", str(report))
    assert outsider.returncode != 0 and b"Permission denied" in outsider.stderr
