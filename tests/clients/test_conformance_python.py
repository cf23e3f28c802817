"""Replay clients/conformance/vectors.json through the Python client against a real daemon."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance import load_scenarios, replay_python
from helpers import DaemonProcess, RawConnection

SCENARIOS = load_scenarios()


def _raw_factory(path: Path):
    def make(initialize: bool) -> RawConnection:
        raw = RawConnection(path)
        if initialize:
            reply = raw.initialize()
            assert "result" in reply, reply
            raw.send({"jsonrpc": "2.0", "method": "initialized", "params": {}})
        return raw
    return make


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s["name"] for s in SCENARIOS])
def test_vector(scenario: dict, shared_daemon: DaemonProcess, served_methods: list[str], tmp_path: Path,
                monkeypatch: pytest.MonkeyPatch) -> None:
    # the daemon reads output_dir from the client's environment: keep run output out of the checkout
    monkeypatch.setenv("CI_SIDECAR_OUTPUT_DIR", str(tmp_path / "out"))
    missing = [m for m in scenario.get("requires", []) if m not in served_methods]
    if missing:
        pytest.skip(f"daemon does not serve {', '.join(missing)} yet")
    replay_python(scenario, str(shared_daemon.path), _raw_factory(shared_daemon.path))


def test_vectors_cover_the_protocol_corners() -> None:
    """The file keeps the scenarios every client must replay (a trimmed file would pass vacuously)."""
    text = " ".join(str(s) for s in SCENARIOS)
    for needle in ("-32002", "-32600", "-32601", "-32602", "-32603", "-32800", "batch", "$/progress",
                   "parallel", "create_test_run"):
        assert needle in text, needle
