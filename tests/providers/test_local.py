"""The local provider: files under the run's output folder."""

from __future__ import annotations

from pathlib import Path

from ci_sidecar.protocol.records import CIContext, Counts
from ci_sidecar.providers.base import ProviderEnv, PublishRun, RunSnapshot
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
