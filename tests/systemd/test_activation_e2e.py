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
import shutil
import sys

import pytest

daemon_ready = importlib.util.find_spec("ci_sidecar.rpc.server") is not None

pytestmark = [
    pytest.mark.skipif(not daemon_ready, reason="ci_sidecar.rpc.server (the daemon) is not written yet"),
    pytest.mark.skipif(shutil.which("systemd-socket-activate") is None, reason="needs systemd-socket-activate"),
]

DAEMON = [sys.executable, "-m", "ci_sidecar", "serve", "--socket", "{socket}", "--system"]


def test_activated_daemon_notifies_answers_initialize_and_stops_cleanly(activation_scenario):
    daemon = activation_scenario(DAEMON)
    assert "Traceback" not in daemon.stderr, daemon.stderr


def test_daemon_activates_again_on_the_state_it_left(activation_scenario):
    first = activation_scenario(DAEMON)
    state = first.dirs["STATE_DIRECTORY"]
    before = sorted(p.relative_to(state) for p in state.rglob("*"))
    activation_scenario(DAEMON)  # READY, initialize, watchdog, STOPPING once more on the same dirs
    after = sorted(p.relative_to(state) for p in state.rglob("*"))
    assert set(before) <= set(after), "a restart must not lose state files"


def test_daemon_runs_as_an_unprivileged_service_user(activation_scenario, service_uid):
    """As under User=: not root, writing into the state directory it owns."""
    daemon = activation_scenario(DAEMON, run_as=service_uid)
    assert "Traceback" not in daemon.stderr, daemon.stderr
    state = daemon.dirs["STATE_DIRECTORY"]
    assert all(p.stat().st_uid == service_uid for p in state.rglob("*")), "files written as the service user"
