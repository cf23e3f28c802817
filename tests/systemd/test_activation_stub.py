"""Socket activation end to end with a stub server built from the systemd building blocks.

The same scenario as test_activation_e2e.py (which needs the real daemon): this proves the
harness and ci_sidecar.transport.systemd together under the real systemd-socket-activate.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.requires_tool("systemd-socket-activate", "apt-get install systemd")

STUB = Path(__file__).with_name("stub_daemon.py")


def test_stub_server_is_activated_notifies_and_answers(activation_scenario):
    daemon = activation_scenario([sys.executable, str(STUB)])
    assert (daemon.dirs["STATE_DIRECTORY"] / "starts").read_text() == "1"


def test_a_second_activation_sees_the_first_ones_state(activation_scenario):
    activation_scenario([sys.executable, str(STUB)])
    daemon = activation_scenario([sys.executable, str(STUB)])
    assert (daemon.dirs["STATE_DIRECTORY"] / "starts").read_text() == "2"


def test_stub_server_runs_as_an_unprivileged_service_user(activation_scenario, service_uid):
    from conftest import SERVICE_PYTHON

    daemon = activation_scenario([SERVICE_PYTHON, str(STUB)], run_as=service_uid)
    assert (daemon.dirs["STATE_DIRECTORY"] / "starts").stat().st_uid == service_uid
