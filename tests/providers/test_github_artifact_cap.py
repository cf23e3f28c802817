"""GitHub's cap of 500 artifacts per job, end to end: the real daemon batches a call's small files into one zip
artifact when the call would cross it, and every answer says which zip holds which file."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import pytest

from fakes.github_artifacts import MAX_PER_JOB
from fakes.github_scenario import RUN_BACKEND, World
from fakes.spec import OpenApiSpec
from helpers import DaemonProcess, wait_for


def test_an_upload_past_the_job_cap_sends_its_small_files_in_one_zip(
        gh_spec: OpenApiSpec, tmp_path: Path, short_tmp: Path, env: dict[str, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """501 small files and a big one in one upload_artifacts call: GitHub gets two artifacts, the zip of the small
    files and the big file; each small file's answer names the zip and carries the zip's real artifact URL."""
    files = tmp_path / "files"
    files.mkdir()
    small = [files / f"log-{i:03}.txt" for i in range(MAX_PER_JOB + 1)]
    for i, path in enumerate(small):
        path.write_text(f"line of log {i}\n")
    big = files / "big.bin"
    big.write_bytes(bytes(range(256)) * 8192)  # 2 MiB: not small, sent on its own
    monkeypatch.chdir(tmp_path)
    with World(gh_spec) as world:
        for key, value in world.job_env(tmp_path / "job").items():
            monkeypatch.setenv(key, value)
        daemon = DaemonProcess.start(short_tmp / "d.sock", env)
        try:
            c = daemon.client()
            run = c.request("create_test_run", {"name": "artifacts"})
            items = [{"path": str(p)} for p in [*small, big]]
            answers = c.request("upload_artifacts", {"test_run_id": run["id"], "items": items})
            assert all(a["ok"] for a in answers), [a for a in answers if not a["ok"]][:3]
            by_name = {a["name"]: a["artifact"] for a in answers}
            assert {by_name[p.name].get("inside") for p in small} == {"batch-1.zip"}
            assert by_name["big.bin"].get("inside") is None

            def settled() -> dict[str, Any] | None:
                arts = c.request("get_artifacts_for_test_run", {"test_run_id": run["id"]})
                done = all(a["upload"]["state"] in ("uploaded", "failed") for a in arts)
                return {a["name"]: a for a in arts} if done else None

            listed = wait_for(settled, 60.0, "the uploads to settle")
            finalized = {a.name: a for a in world.results.finalized(RUN_BACKEND)}
            assert sorted(finalized) == ["test-batch-1.zip", "test-big.bin"]
            url = f"https://github.example/octo/repo/actions/runs/4242/artifacts/{finalized['test-batch-1.zip'].id}"
            assert listed["log-007.txt"]["url"] == url and listed["log-007.txt"]["inside"] == "batch-1.zip"
            assert listed["log-007.txt"]["upload"]["state"] == "uploaded"
            assert listed["batch-1.zip"]["metadata"]["files"] == sorted(p.name for p in small)
            # what a person downloads from GitHub: the zip, holding every small file
            outer = zipfile.ZipFile(io.BytesIO(world.results.content(finalized["test-batch-1.zip"])))
            inner = zipfile.ZipFile(io.BytesIO(outer.read(outer.namelist()[0])))
            assert len(inner.namelist()) == MAX_PER_JOB + 1 and inner.read("log-007.txt") == b"line of log 7\n"
            logs = [n["params"]["message"] for n in list(c.notifications) if n.get("method") == "window/logMessage"]
            assert any("501 file(s) went to github inside batch-1.zip" in m for m in logs), logs
        finally:
            daemon.stop()
            print(daemon.log())
