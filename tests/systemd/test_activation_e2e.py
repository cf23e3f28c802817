"""The real daemon under socket activation, as systemd runs it (turns on when the daemon lands).

``systemd-socket-activate`` binds the socket and execs ``python -m ci_sidecar serve --socket PATH
--system`` on the first connection with ``LISTEN_FDS=1``, ``NOTIFY_SOCKET`` (a fake service manager
in this test), ``WATCHDOG_USEC`` and ``STATE_DIRECTORY``/``CACHE_DIRECTORY``/``LOGS_DIRECTORY``.
Expected: ``READY=1`` (with the daemon's pid), an LSP-framed ``initialize`` answered with
``serverInfo`` over the inherited socket, ``WATCHDOG=1`` every ``WATCHDOG_USEC/2``, and on SIGTERM
``STOPPING=1`` and exit status 0. The scenario itself lives in conftest.py
(``check_activated_daemon``) and is proven against a stub server by test_activation_stub.py.
"""

from __future__ import annotations

import importlib.util
import sys

import pytest

daemon_ready = importlib.util.find_spec("ci_sidecar.rpc.server") is not None

pytestmark = [
    pytest.mark.skipif(not daemon_ready, reason="ci_sidecar.rpc.server (the daemon) is not written yet"),
    pytest.mark.requires_tool("systemd-socket-activate", "apt-get install systemd"),
]

DAEMON = [sys.executable, "-m", "ci_sidecar", "serve", "--socket", "{socket}", "--system"]


def test_activated_daemon_notifies_answers_initialize_and_stops_cleanly(activation_scenario):
    daemon = activation_scenario(DAEMON)
    assert "Traceback" not in daemon.stderr, daemon.stderr


def test_a_run_survives_a_restart_of_the_activated_service(activate, lsp):
    """A client completes a run over the inherited socket; its state in STATE_DIRECTORY outlives a restart."""

    def session(daemon, *requests):
        with daemon.connect() as client:
            lsp(client, {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {}})
            return [lsp(client, {"jsonrpc": "2.0", "id": i, "method": m, "params": p})
                    for i, (m, p) in enumerate(requests, 1)]

    first = activate(DAEMON)
    (created,) = session(first, ("create_test_run", {"name": "on a test machine"}))
    run_id = created["result"]["id"]
    results = [{"name": f"t{i}", "status": "passed"} for i in range(3)]
    (reported,) = session(first, ("report_results", {"test_run_id": run_id, "results": results}))
    assert reported["result"]["total"] == 3, reported
    assert first.terminate() == 0, first.stderr

    second = activate(DAEMON)  # same STATE_DIRECTORY, new process
    status, done = session(second, ("get_test_run_status", {"test_run_id": run_id}),
                           ("complete_test_run", {"test_run_id": run_id}))
    assert status["result"]["counts"]["total"] == 3, status
    assert done["result"]["conclusion"] == "success", done
    assert second.terminate() == 0, second.stderr


def test_daemon_runs_as_an_unprivileged_service_user(activation_scenario, service_uid):
    """As under User=: not root, writing into the state directory it owns."""
    from conftest import SERVICE_PYTHON

    daemon = activation_scenario([SERVICE_PYTHON, *DAEMON[1:]], run_as=service_uid)
    assert "Traceback" not in daemon.stderr, daemon.stderr
    state = daemon.dirs["STATE_DIRECTORY"]
    assert all(p.stat().st_uid == service_uid for p in state.rglob("*")), "files written as the service user"
