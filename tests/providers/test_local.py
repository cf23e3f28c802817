"""The local provider: files under the run's output folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ci_sidecar.protocol.records import CIContext, Counts
from ci_sidecar.providers.base import PostComment, ProviderEnv, PublishRun, RunSnapshot, SetStatus, UploadArtifact
from ci_sidecar.providers.local import LocalProvider


async def test_publishing_a_run_clears_temporary_files_a_crash_left(tmp_path: Path) -> None:
    """A run.json write torn by a crash (kill -9) leaves no temporary file once the run is published again."""
    out = tmp_path / "run-1"
    out.mkdir()
    torn = out / ".run.json.tmp-0123456789ab"
    torn.write_bytes(b'{"id": "run-1", "na')
    other = out / ".build-status.json.tmp-0123456789ab"  # another target's file is not the run's to clear
    other.write_bytes(b"{")
    run = RunSnapshot(id="run-1", name="unit", status="running", start_time="2026-01-01T00:00:00.000Z",
                      counts=Counts(), output_dir=str(out))
    env = ProviderEnv(ci=CIContext(provider="local", sources={}))
    outcome = await LocalProvider().deliver(PublishRun(run=run), env, {})
    assert "delivered" == outcome.kind
    assert not torn.exists()
    assert other.exists()
    assert '"id": "run-1"' in (out / "run.json").read_text()


async def test_a_write_killed_at_any_instant_leaves_no_temporary_file_in_the_output_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Wherever a kill -9 stops a write (run.json, a status, a comment, an artifact), the output folder a
    pipeline archives holds only whole files."""
    root = tmp_path / "ci-sidecar-out"
    out = root / "run-1"
    stored = tmp_path / "blob"
    stored.write_bytes(b"trace")
    seen: list[list[str]] = []
    fsync, replace = os.fsync, os.replace

    def kill_point(*args: object) -> None:  # a temporary file exists, not yet renamed into place
        seen.append([p.name for p in root.rglob("*") if p.is_file() and p.name.startswith(".")])
        return (fsync if len(args) == 1 else replace)(*args)  # type: ignore[operator]

    monkeypatch.setattr(os, "fsync", kill_point)
    monkeypatch.setattr(os, "replace", kill_point)
    run = RunSnapshot(id="run-1", name="unit", status="running", start_time="2026-01-01T00:00:00.000Z",
                      counts=Counts(), output_dir=str(out))
    env = ProviderEnv(ci=CIContext(provider="local", sources={}))
    provider = LocalProvider()
    ops = [PublishRun(run=run), SetStatus(context="ci", state="success", run_id="run-1", output_dir=str(out)),
           PostComment(body="hi", mode="upsert", key="k", run_id="run-1", output_dir=str(out)),
           UploadArtifact(run_id="run-1", name="a/trace.bin", stored_path=str(stored), sha256="0" * 64, size=5,
                          mime_type="application/octet-stream", output_dir=str(out))]
    for op in ops:
        assert "delivered" == (await provider.deliver(op, env, {})).kind
    assert len(seen) >= 4 and not any(seen)
    assert {"run.json", "build-status.json", "k.md", "trace.bin"} <= {p.name for p in root.rglob("*")}
