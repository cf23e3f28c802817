"""On a fresh checkout the test command is green: a test whose optional tool is missing skips and says how
to install it; with CI_SIDECAR_REQUIRE_ALL=1 (CI) the same test fails instead."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent

PROBE = '''
import pytest
from helpers import missing

@pytest.mark.requires_tool("no-such-tool-cis", "apt-get install no-such-tool-cis")
def test_needs_a_tool():
    pass

def test_needs_a_file():
    missing("needs /nonexistent", "make it")
'''


def _run_probe(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    (tmp_path / "test_probe.py").write_text(PROBE)
    (tmp_path / "conftest.py").write_text(  # the suite's own conftest, under another module name
        f"import importlib.util, sys\nsys.path.insert(0, {str(TESTS)!r})\n"
        f"spec = importlib.util.spec_from_file_location('cis_conftest', {str(TESTS / 'conftest.py')!r})\n"
        "mod = importlib.util.module_from_spec(spec)\nspec.loader.exec_module(mod)\n"
        "_required_tools = mod._required_tools\n")
    return subprocess.run([sys.executable, "-m", "pytest", "-rs", "-p", "no:cacheprovider", "-p", "no:randomly",
                           "-o", "markers=requires_tool", str(tmp_path)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env={**os.environ, **env})


def test_a_missing_tool_skips_with_its_install_hint(tmp_path: Path) -> None:
    """Each skip names what is missing and the command that installs it, never a bare 'Skipped'."""
    proc = _run_probe(tmp_path, CI_SIDECAR_REQUIRE_ALL="0")
    assert proc.returncode == 0, proc.stdout
    assert "needs `no-such-tool-cis`, which is not installed: apt-get install no-such-tool-cis" in proc.stdout
    assert "needs /nonexistent: make it" in proc.stdout
    assert "2 skipped" in proc.stdout


def test_require_all_turns_those_skips_into_failures(tmp_path: Path) -> None:
    """CI sets CI_SIDECAR_REQUIRE_ALL=1: a missing tool fails the run instead of hiding in the skip count."""
    proc = _run_probe(tmp_path, CI_SIDECAR_REQUIRE_ALL="1")
    assert proc.returncode == 1 and "1 failed, 1 error" in proc.stdout, proc.stdout  # fixture: error


def test_every_skip_in_the_suite_gives_a_reason() -> None:
    """No pytest.skip() or skipif without a message (pytest prints those as a bare 'Skipped')."""
    bare = re.compile(r"pytest\.skip\(\s*\)|skipif\((?![^)]*reason=)[^)]*\)\s*$", re.M)
    offenders = [str(p.relative_to(TESTS)) for p in TESTS.rglob("*.py") if p.name != "test_skips.py"
                 and bare.search(p.read_text())]
    assert offenders == []
