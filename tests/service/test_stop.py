"""Stopping the daemon while provider writes are in flight: the outbox stops first, then the state is
flushed and closed; the exit code is 0 and every acknowledged write is still pending after a restart."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from ci_sidecar.config import load_config
from ci_sidecar.providers.base import Outcome, SetStatus
from ci_sidecar.service.app import CoreService
from ci_sidecar_client import Client
from helpers import DaemonProcess, RawConnection

TOKEN = "ghs_stopTestT0kenNeverShown"


class HeldApi:
    """An HTTP endpoint on 127.0.0.1 that holds every request until told to answer them all."""

    def __init__(self) -> None:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(64)
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        self.server.settimeout(0.05)
        while not self._stop.is_set():
            try:
                conn, _ = self.server.accept()
            except OSError:
                continue
            self.held.append(conn)

    def answer_all(self, status: str = "503 Service Unavailable") -> None:
        """Answer every held request (a retryable error), spread over half a second."""
        for conn in list(self.held):
            try:
                conn.sendall(b"HTTP/1.1 " + status.encode() + b"\r\ncontent-length: 0\r\n\r\n")
            except OSError:
                pass
            time.sleep(0.5 / max(1, len(self.held)))

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for conn in self.held:
            conn.close()
        self.server.close()


@pytest.fixture
def held_api() -> Iterator[HeldApi]:
    api = HeldApi()
    try:
        yield api
    finally:
        api.close()


def _github_job(api: str, root: Path) -> dict[str, str]:
    root.mkdir(parents=True, exist_ok=True)
    return {"CI": "true", "GITHUB_ACTIONS": "true", "GITHUB_REPOSITORY": "octo/repo", "GITHUB_SHA": "a1" * 20,
            "GITHUB_REF": "refs/heads/main", "GITHUB_RUN_ID": "1", "GITHUB_JOB": "test", "GITHUB_API_URL": api,
            "GITHUB_TOKEN": TOKEN, "GITHUB_STEP_SUMMARY": str(root / "summary.md")}


class AnswersWhenClosed:
    """A provider whose attempts finish (delivered) only when it is closed, as an HTTP client's
    in-flight requests do when its connections close."""

    name = "local"

    def __init__(self) -> None:
        self.started = trio.Event()
        self.closing = trio.Event()

    async def deliver(self, op: object, env: object, remote: dict) -> Outcome:
        self.started.set()
        await self.closing.wait()
        return Outcome.delivered()

    async def aclose(self) -> None:
        self.closing.set()
        await trio.sleep(0.1)  # the attempt's outcome arrives while the daemon is closing


class TestCloseOrder:
    async def test_outbox_stops_before_the_journal_closes(self, tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture) -> None:
        """Deliveries that complete while the daemon closes never write to a closed journal (no error,
        no crash); they stay pending for the next start."""
        loaded = load_config(env={}, cwd=str(tmp_path), flags={"state_dir": str(tmp_path / "state")})
        provider = AnswersWhenClosed()
        core = CoreService(loaded)
        core.providers._instances["local"] = provider  # type: ignore[assignment]  # the double stands in
        async with trio.open_nursery() as nursery:
            await nursery.start(core.run)
            for target in ("status:x", "status:y"):
                core.outbox.put(provider="local", target=target,
                                op=SetStatus(state="running", context="ci", output_dir=str(tmp_path)))
            await core.store.commit()
            await provider.started.wait()
            await core.close()
            nursery.cancel_scope.cancel()
        again = CoreService(loaded)
        again.runs.recover()
        assert 2 == again.outbox.depth()["pending"]
        await again.store.aclose()
        assert [] == [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]


class TestSigterm:
    def test_sigterm_with_deliveries_in_flight_exits_0_and_loses_nothing(
            self, short_tmp: Path, env: dict[str, str], held_api: HeldApi, tmp_path: Path) -> None:
        """Writes whose answers arrive while the daemon stops do not break the journal: exit 0, no
        traceback, and the writes are still pending after a restart."""
        job = _github_job(held_api.url, tmp_path / "job")
        for trial in range(2):
            d = DaemonProcess.start(short_tmp / "d.sock", env)
            raw = RawConnection(d.path)
            reply = raw.request("initialize", {"processId": None, "cwd": str(tmp_path), "env": {**env, **job}})
            assert "github" == reply["result"]["ci"]["provider"], reply
            for i in range(8):
                got = raw.request("set_build_status", {"state": "running", "context": f"c{trial}-{i}"}, rid=i + 1)
                assert "pending" == got["result"]["delivery"]["state"], got
            raw.close()
            time.sleep(0.3)  # the attempts are in flight
            d.proc.terminate()
            held_api.answer_all()
            assert 0 == d.proc.wait(15), d.log()
            log = d.log()
            assert "Traceback" not in log and "journal write failed" not in log, log
        d = DaemonProcess.start(short_tmp / "d.sock", env)
        try:
            with Client.connect(str(d.path)) as c:
                assert 16 == c.request("sidecar/status")["outbox"]["pending"]
        finally:
            assert 0 == d.stop()
