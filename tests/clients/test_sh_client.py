"""clients/sh: the POSIX helper's tests under dash (and sh)."""

from __future__ import annotations

from pathlib import Path

import pytest

from _subsuite import REPO, require_tool, run_suite

SH_DIR = REPO / "clients" / "sh"


@pytest.mark.parametrize("shell", ["dash"])
def test_sh_helper(shell: str, tmp_path: Path) -> None:
    path = require_tool(shell, "apt-get install dash")
    out = run_suite([path, str(SH_DIR / "test.sh")], SH_DIR, tmp_path, timeout=120)
    assert "# failed 0" in out, out
    assert "not ok" not in out, out
