"""The Python client (and its pytest plugin) must run on Python >= 3.9, though only 3.11 runs here:
vermin checks the features and standard-library names it uses, ``ast`` checks the grammar."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

from helpers import missing

CLIENT = Path(__file__).resolve().parents[2] / "clients" / "python"
# --eval-annotations and union-types: annotations are evaluated at definition time (no
# `from __future__ import annotations` in the client), so `X | None` there would break 3.9
VERMIN_ARGS = ["--target=3.9-", "--no-tips", "--violations", "--eval-annotations", "--feature", "union-types"]


def _vermin() -> list[str]:
    try:
        import vermin  # noqa: F401
    except ImportError:
        if shutil.which("vermin") is None:
            missing("needs vermin, which is not installed", "python3 -m pip install -e '.[test]'")
        return ["vermin"]
    # vermin has no __main__ module: call its console-script function
    return [sys.executable, "-c", "import sys, vermin; sys.exit(vermin.main())"]


def _run_vermin(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*_vermin(), *VERMIN_ARGS, *map(str, paths)], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=120)


def test_client_needs_nothing_newer_than_python_39() -> None:
    sources = sorted(CLIENT.rglob("*.py"))
    assert any(p.name == "pytest_plugin.py" for p in sources)
    proc = _run_vermin(*sources)
    assert proc.returncode == 0, proc.stdout
    assert "Target versions not met" not in proc.stdout, proc.stdout


def test_the_check_catches_newer_code(tmp_path: Path) -> None:
    """The same check fails on a 3.10 union annotation and on a match statement."""
    (tmp_path / "union.py").write_text("def f(x: int | None):\n    return x\n")
    (tmp_path / "match.py").write_text("match 1:\n    case 1:\n        pass\n")
    for name in ("union.py", "match.py"):
        proc = _run_vermin(tmp_path / name)
        assert proc.returncode != 0 and "Target versions not met" in proc.stdout, proc.stdout


def test_client_parses_with_the_python_39_grammar() -> None:
    """No tool needed: the 3.9 grammar rejects match statements, parenthesised context managers, except*."""
    for path in sorted(CLIENT.rglob("*.py")):
        ast.parse(path.read_text(), filename=str(path), feature_version=(3, 9))
        text = path.read_text()
        assert "from __future__ import annotations" not in text, f"{path}: annotations must be 3.9-evaluable"
