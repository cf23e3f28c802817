"""``ci-sidecar exec --shard`` when the daemon will not create the shard's run: the command still runs, and the
message says the daemon refused (and why), not that no daemon could be reached."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from helpers import scrubbed_env


def test_a_refused_shard_run_says_refused_and_the_command_still_runs(short_tmp: Path) -> None:
    """No CI to take a group key from: exec runs the command (its exit status), and says the daemon refused the
    run naming $.group.key."""
    done = subprocess.run([sys.executable, "-m", "ci_sidecar", "exec", "--private", "--shard", "1/2", "--",
                           sys.executable, "-c", "raise SystemExit(3)"], env=scrubbed_env(short_tmp, CI="false"),
                          cwd=short_tmp, capture_output=True, text=True, timeout=120)
    assert done.returncode == 3, done.stderr
    assert "the ci-sidecar daemon refused the run: Invalid params at $.group.key" in done.stderr, done.stderr
    assert "could be started or reached" not in done.stderr
