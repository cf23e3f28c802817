"""Running another language's test suite as one pytest test: a scrubbed environment, a timeout, and the
sub-suite's own output in the failure message."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import missing, scrubbed_env

REPO = Path(__file__).resolve().parents[2]


def require_tool(name: str, hint: str) -> str:
    """The tool's path; a missing toolchain skips the test with how to install it (fails in CI)."""
    path = shutil.which(name)
    if path is None:
        missing(f"needs `{name}`, which is not installed", hint)
    return path


def run_suite(argv: list[str], cwd: Path, tmp: Path, timeout: float = 240, **extra: str) -> str:
    """Run ``argv``; fail the pytest test with the output when it exits non-zero."""
    # the daemon reads output_dir from the client's environment: keep run output out of the checkout
    env = scrubbed_env(tmp, CI_SIDECAR_TEST_PYTHON=sys.executable, CI_SIDECAR_OUTPUT_DIR=str(tmp / "out"), **extra)
    proc = subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=timeout)
    out = proc.stdout.decode(errors="replace")
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(argv)} exited {proc.returncode}:\n{out[-20000:]}", pytrace=False)
    return out
