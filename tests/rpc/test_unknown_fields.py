"""Typos in params (`mesage`, `duraton`) are not dropped in silence: the client is warned, once per field."""

from __future__ import annotations

import subprocess

from ci_sidecar_client import Client
from helpers import daemon_argv


def _spawn(env: dict[str, str]) -> Client:
    return Client.spawn(daemon_argv("serve", "--stdio"), env=env, stderr=subprocess.DEVNULL)


def _log_messages(c: Client) -> list[str]:
    return [n["params"]["message"] for n in c.notifications if n["method"] == "window/logMessage"]


def test_unknown_result_fields_are_warned_about_once_per_session(env: dict[str, str]) -> None:
    """The first answer naming `results[].mesage` carries a warning with the likely field; later ones do not."""
    c = _spawn(env)
    try:
        run = c.request("create_test_run", {"name": "typos"})
        assert "warnings" not in run
        bad = {"name": "a", "status": "failed", "mesage": "1 != 2", "duraton": 0.5, "properties": {"anything": 1}}
        first = c.request("report_results", {"test_run_id": run["id"], "results": [bad, bad]})
        assert first["accepted"] == 2
        assert first["warnings"] == [
            "report_results: unknown field 'results[].mesage' ignored (did you mean 'message'?)",
            "report_results: unknown field 'results[].duraton' ignored (did you mean 'duration'?)",
        ]
        again = c.request("report_results", {"test_run_id": run["id"], "results": [bad]})
        assert "warnings" not in again
        other = c.request("complete_test_run", {"test_run_id": run["id"], "conclusoin": "success"})
        assert other["warnings"] == ["complete_test_run: unknown field 'conclusoin' ignored (did you mean 'conclusion'?)"]
        assert _log_messages(c) == first["warnings"] + other["warnings"]
    finally:
        c.close()


def test_every_session_hears_about_its_own_typos(env: dict[str, str], short_tmp) -> None:
    """Warnings are per session: a second client making the same typo is told too."""
    for _ in range(2):
        c = _spawn(env)
        try:
            run = c.request("create_test_run", {"name": "x", "externl_id": "e1"})
            assert run["warnings"] == ["create_test_run: unknown field 'externl_id' ignored (did you mean 'external_id'?)"]
        finally:
            c.close()
