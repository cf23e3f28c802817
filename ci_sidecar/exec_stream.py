"""``ci-sidecar exec``'s job-log stream: a run printed on exec's stdout while the command runs, for CIs whose
log is their test-result channel (TeamCity's service messages; the provider's ``StreamsJobLog`` capability).

A task in the command's nursery (:meth:`JobLogPrinter.follow`) reads the run with ``read_test_results`` from a
cursor it keeps and prints each page the provider's stream renders, so every record is printed exactly once
and in order. The cursor is a position in the run's stored records, so when the daemon goes away (a restarted
service, a kill -9) the task connects again and goes on where it stopped. Once the command has exited exec
drains what is left, waits for the run's writes, then prints the stream's end (artifacts, build status).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from typing import Any

import msgspec
import trio
from ci_sidecar_client import Client, ConnectionLost, DaemonNotFound, RpcError

from ci_sidecar.exec_delivery import say
from ci_sidecar.protocol.records import CIContext, TestResult

__all__ = ["JobLogPrinter", "start_job_log"]

POLL_S = 0.25  # how often a quiet run is asked for new results
PAGE = 1000
_RECONNECT_S = (0.05, 0.2, 0.5, 1.0)  # waits between attempts to reach a daemon that went away
_DRAIN_S = 30.0  # how long the end waits for a daemon that went away to come back
_stdout_lost = False  # stdout was closed under exec: nothing more is written


def _write(text: str) -> None:
    """All of *text* on stdout in as few writes as possible (the command shares the stream). A closed stdout
    (the job's log reader went away) loses the text, never the run."""
    global _stdout_lost
    if not text or _stdout_lost:
        return
    try:
        sys.stdout.flush()
        data = text.encode()
        fd = sys.stdout.fileno()
        while data:
            data = data[os.write(fd, data):]
    except (OSError, ValueError) as exc:
        _stdout_lost = True
        say(f"could not write to the build log, not trying again: {exc}")


class JobLogPrinter:
    """Prints one run's stream: :meth:`start`, :meth:`follow` while the command runs, :meth:`drain`,
    :meth:`finish`."""

    def __init__(self, stream: Any, socket_path: str, run_id: str) -> None:
        self.stream = stream
        self.socket_path = socket_path
        self.run_id = run_id
        self.cursor = 0
        self.printed = 0
        self._client: Client | None = None

    def start(self) -> None:
        """Print the run's beginning."""
        _write(self.stream.begin())

    def _connect(self) -> Client:
        if self._client is None:
            self._client = Client.connect(self.socket_path, client_name="ci-sidecar-exec-log")
        return self._client

    def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close(timeout=1.0)
            except Exception:  # noqa: BLE001 - the connection is already gone
                pass

    def _page(self) -> dict[str, Any]:
        """One page from the cursor on, printed; raises what the connection raised (the cursor stays)."""
        page = self._connect().request("read_test_results", {"test_run_id": self.run_id, "cursor": self.cursor,
                                                             "limit": PAGE}, timeout=30)
        if page["results"]:
            _write(self.stream.results(msgspec.convert(page["results"], list[TestResult])))
            self.printed += len(page["results"])
        self.cursor = page["cursor"]
        return page

    async def follow(self) -> None:
        """Print the run's results as they arrive, until cancelled (the command has exited). A page being read
        is finished first (the blocking client runs in a worker thread), so the cursor always matches what
        was printed."""
        failures = 0
        while True:
            try:
                page = await trio.to_thread.run_sync(self._page)
                failures = 0
                more = page["cursor"] < page["total"]
            except (ConnectionLost, DaemonNotFound, OSError, TimeoutError):
                await trio.to_thread.run_sync(self._drop)
                more = False
                failures += 1
            except RpcError as exc:
                say(f"the build log stops following the run: {exc.message}")
                return
            if not more:
                await trio.sleep(POLL_S if failures == 0 else _RECONNECT_S[min(failures, len(_RECONNECT_S)) - 1])

    def drain(self) -> bool:
        """Print everything the (completed) run still holds; False when the daemon could not be reached for the
        rest."""
        deadline = time.monotonic() + _DRAIN_S
        while True:
            try:
                page = self._page()
                if page["finished"] or (page["cursor"] >= page["total"] and not page["results"]):
                    return True
            except (ConnectionLost, DaemonNotFound, OSError, TimeoutError):
                self._drop()
                if time.monotonic() > deadline:
                    say("the daemon went away: the build log misses the run's last results")
                    return False
                time.sleep(_RECONNECT_S[-1])
            except RpcError as exc:
                say(f"could not read the run's last results: {exc.message}")
                return False

    def finish(self, run: Mapping[str, Any]) -> None:
        """Print the end of the run (after its writes were waited for: staged artifacts are complete)."""
        artifacts: list[dict[str, Any]] = []
        try:
            artifacts = self._connect().request("get_artifacts_for_test_run", {"test_run_id": self.run_id},
                                                timeout=30)
        except (ConnectionLost, DaemonNotFound, OSError, TimeoutError, RpcError) as exc:
            say(f"could not list the run's artifacts for the build log: {exc}")
        _write(self.stream.end(run, artifacts))
        self._drop()


def start_job_log(ci: Mapping[str, Any], run: Mapping[str, Any], socket_path: str) -> JobLogPrinter | None:
    """A printer of *run*, its beginning printed, when the session's CI provider streams into the job log
    (``StreamsJobLog``); exec runs its :meth:`~JobLogPrinter.follow` alongside the command."""
    from ci_sidecar.providers import Providers
    from ci_sidecar.providers.base import StreamsJobLog

    try:
        context = msgspec.convert(ci, CIContext)
    except msgspec.ValidationError:
        return None
    streamer = Providers().capable(context.provider, StreamsJobLog)
    stream = streamer.job_log_stream(context, run) if streamer is not None else None
    if stream is None:
        return None
    printer = JobLogPrinter(stream, socket_path, str(run["id"]))
    printer.start()
    return printer
