"""The staged tier: a run's JUnit file and its artifacts placed where a CI collects them, whole, without
collisions between parallel jobs, and never outside the staging folder."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from ci_sidecar.protocol.records import CIContext, Counts, TestResult
from ci_sidecar.providers._staging import DEFAULT_FOLDER, StagingArea, StagingError
from ci_sidecar.providers.base import ProviderEnv, RunSnapshot, UploadArtifact
from ci_sidecar.reports.junit import iter_junit

RESULTS = [
    TestResult(name="test_ok", suite="unit", classname="t.A", status="passed", duration=0.5),
    TestResult(name="test_flaky", suite="unit", classname="t.A", status="failed", message="boom", attempt=1),
    TestResult(name="test_flaky", suite="unit", classname="t.A", status="passed", attempt=2),
    TestResult(name="test_bad <&>", suite="unit", classname="t.B", status="failed", message="expected 1 == 2"),
]


def _env(results: list[TestResult]) -> ProviderEnv:
    async def read_results(run_id: str, start: int, end: int) -> AsyncIterator[bytes]:
        for result in results[start:end]:
            yield msgspec.msgpack.encode(result)

    return ProviderEnv(ci=CIContext(provider="jenkins", sources={}), config={}, read_results=read_results)


def _run(run_id: str, name: str = "unit tests") -> RunSnapshot:
    return RunSnapshot(id=run_id, name=name, status="finished", conclusion="failure", start_time="2026-01-01T00:00:00Z",
                       end_time="2026-01-01T00:00:03Z", counts=Counts(total=3, passed=2, failed=1, flaky=1),
                       output_dir="/nonexistent", results_end=len(RESULTS))


def _artifact(tmp_path: Path, name: str, data: bytes = b"trace bytes", run_id: str = "r1") -> UploadArtifact:
    stored = tmp_path / "store" / hashlib.sha256(data).hexdigest()
    stored.parent.mkdir(exist_ok=True)
    stored.write_bytes(data)
    return UploadArtifact(run_id=run_id, name=name, stored_path=str(stored), sha256=hashlib.sha256(data).hexdigest(),
                          size=len(data), mime_type="application/octet-stream")


def _no_temp_files(root: Path) -> bool:
    return not [p for p in root.rglob("*") if ".tmp-" in p.name]


async def test_junit_is_staged_whole_with_every_attempt(tmp_path: Path) -> None:
    """The run's JUnit file appears under the staging folder, readable by the CI, and reads back to the same
    tests, reruns included."""
    area = StagingArea(tmp_path / "ws")
    staged = await area.stage_junit(_run("5f2e"), _env(RESULTS))
    assert staged.relative == f"{DEFAULT_FOLDER}/junit/unit-tests-5f2e.xml"
    path = Path(staged.path)
    assert path.stat().st_size == staged.size and stat.S_IMODE(path.stat().st_mode) == 0o644
    back = [r for r in iter_junit(str(path)) if isinstance(r, TestResult)]
    assert sorted((r.name, r.status) for r in back) == sorted((r.name, r.status) for r in RESULTS)
    assert _no_temp_files(tmp_path)


async def test_parallel_jobs_with_the_same_run_name_do_not_collide(tmp_path: Path) -> None:
    """Two runs named alike in one workspace (parallel stages on one agent) get two files; staging a run again
    replaces its own file."""
    area = StagingArea(tmp_path, "reports/ci")
    first = await area.stage_junit(_run("aaa111"), _env(RESULTS))
    second = await area.stage_junit(_run("bbb222"), _env(RESULTS[:1]))
    again = await area.stage_junit(_run("aaa111"), _env(RESULTS[:1]))
    assert first.path != second.path and again.path == first.path
    assert sorted(p.name for p in (tmp_path / "reports/ci/junit").iterdir()) == [
        "unit-tests-aaa111.xml", "unit-tests-bbb222.xml"]


async def test_artifacts_keep_their_relative_names_and_bytes(tmp_path: Path) -> None:
    """A nested artifact name becomes folders under the run's artifact folder; the bytes are a copy."""
    area = StagingArea(tmp_path / "ws")
    op = _artifact(tmp_path, "logs/server/app.log", b"x" * 3_000_000)
    staged = await area.stage_artifact(op)
    assert staged.relative == f"{DEFAULT_FOLDER}/artifacts/r1/logs/server/app.log" and staged.size == 3_000_000
    assert Path(staged.path).read_bytes() == b"x" * 3_000_000
    assert not os.path.samefile(staged.path, op.stored_path)
    assert _no_temp_files(tmp_path / "ws")


@pytest.mark.parametrize("name", ["../escape.txt", "a/../../escape.txt", "/etc/passwd", "C:/x", "", "./"])
async def test_names_that_would_leave_the_folder_are_refused(tmp_path: Path, name: str) -> None:
    """Traversal, absolute and empty names are refused and nothing is written anywhere."""
    area = StagingArea(tmp_path / "ws")
    with pytest.raises(StagingError):
        await area.stage_artifact(_artifact(tmp_path, name))
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "ws").exists()


async def test_a_symlinked_folder_pointing_outside_is_refused(tmp_path: Path) -> None:
    """A folder on the way that is a symlink out of the area (planted by anyone) is never written through."""
    area = StagingArea(tmp_path / "ws")
    outside = tmp_path / "outside"
    outside.mkdir()
    run_dir = tmp_path / "ws" / DEFAULT_FOLDER / "artifacts" / "r1"
    run_dir.mkdir(parents=True)
    (run_dir / "logs").symlink_to(outside)
    with pytest.raises(StagingError):
        await area.stage_artifact(_artifact(tmp_path, "logs/app.log"))
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("folder", ["../elsewhere", "/tmp/staged"])
def test_a_staging_folder_outside_the_workspace_is_refused(tmp_path: Path, folder: str) -> None:
    """The configured folder must be inside the workspace."""
    with pytest.raises(StagingError):
        StagingArea(tmp_path, folder)


async def test_a_vanished_stored_file_is_an_error_and_leaves_nothing(tmp_path: Path) -> None:
    """A purged blob is reported as such; no partial file is left behind."""
    area = StagingArea(tmp_path / "ws")
    op = _artifact(tmp_path, "gone.bin")
    os.unlink(op.stored_path)
    with pytest.raises(StagingError, match="gone"):
        await area.stage_artifact(op)
    assert [p for p in (tmp_path / "ws").rglob("*") if p.is_file()] == []


async def test_a_write_killed_at_any_instant_leaves_no_temporary_file_in_the_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """While a file is being staged (where a kill -9 would stop it) the collected folder holds only whole
    files; what a killed writer left beside it is cleared by the next write."""
    area = StagingArea(tmp_path / "ws")
    seen: list[list[str]] = []
    fsync = os.fsync

    def kill_point(fd: int) -> None:  # the temporary file is complete but not yet renamed into place
        seen.append(sorted(p.name for p in area.root.rglob("*") if p.is_file()))
        fsync(fd)

    first = await area.stage_artifact(_artifact(tmp_path, "shard-09.log"))
    dead = subprocess.Popen(["true"])
    dead.wait()
    partial = tmp_path / "ws" / f".{DEFAULT_FOLDER}.partial"
    partial.mkdir(exist_ok=True)
    leftover = partial / f"{dead.pid}-0123456789abcdef.partial"
    leftover.write_bytes(b"half a log")
    os.utime(leftover, (1, 1))
    monkeypatch.setattr(os, "fsync", kill_point)
    await area.stage_junit(_run("5f2e"), _env(RESULTS))
    await area.stage_artifact(_artifact(tmp_path, "shard-09.log", b"again"))
    assert seen and all(names in ([], ["shard-09.log"], ["shard-09.log", "unit-tests-5f2e.xml"]) for names in seen)
    assert _no_temp_files(area.root) and Path(first.path).read_bytes() == b"again"
    assert [] == list(partial.iterdir())
