"""``ci-sidecar history`` prints names that come from the code under test: control characters are shown escaped,
never sent to the terminal."""

from __future__ import annotations

import subprocess

from helpers import DaemonProcess, daemon_argv


def test_escape_sequences_in_names_reach_the_terminal_escaped(daemon: DaemonProcess, env: dict[str, str]) -> None:
    """A test and a branch whose names hold an escape sequence (set the terminal's title) and a bidi override: the
    text output shows them as \\x1b, \\x07 and \\u202e; --json keeps the exact names."""
    c = daemon.client()
    run = c.request("create_test_run", {"name": "unit", "branch": "feat\x1b[2J"})
    c.request("report_results", {"test_run_id": run["id"], "results": [
        {"name": "test_title\x1b]0;pwned\x07\u202e", "classname": "evil", "status": "failed"}]})
    c.request("complete_test_run", {"test_run_id": run["id"]})
    text = subprocess.run(daemon_argv("history", "test_title", "--state-dir", env["CI_SIDECAR_STATE_DIR"]), env=env,
                          capture_output=True, text=True, timeout=60)
    assert text.returncode == 0, text.stderr
    assert "evil.test_title\\x1b]0;pwned\\x07\\u202e" in text.stdout and "feat\\x1b[2J" in text.stdout
    assert not any(ch in text.stdout for ch in "\x1b\x07\u202e")
    raw = subprocess.run(daemon_argv("history", "test_title", "--json", "--state-dir", env["CI_SIDECAR_STATE_DIR"]),
                         env=env, capture_output=True, text=True, timeout=60)
    assert "evil.test_title\\u001b]0;pwned\\u0007\\u202e" in raw.stdout
