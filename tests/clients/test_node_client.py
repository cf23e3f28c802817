"""clients/node: `node --test`, the index.d.ts drift check and `tsc --noEmit`."""

from __future__ import annotations

from pathlib import Path

from _subsuite import REPO, require_tool, run_suite

NODE_DIR = REPO / "clients" / "node"


def test_node_suite(tmp_path: Path) -> None:
    node = require_tool("node", "apt-get install nodejs (Node >= 20)")
    tests = sorted(str(p.relative_to(NODE_DIR)) for p in (NODE_DIR / "test").glob("*.test.js"))
    assert tests, "no node tests found"
    out = run_suite([node, "--test", *tests], NODE_DIR, tmp_path)
    assert "# fail 0" in out, out[-3000:]


def test_typescript_declarations_compile(tmp_path: Path) -> None:
    tsc = NODE_DIR / "node_modules" / ".bin" / "tsc"
    if not tsc.exists():
        from helpers import missing

        missing("needs TypeScript, which is not installed", "run `npm ci` in clients/node")
    run_suite([str(tsc), "--noEmit", "-p", "."], NODE_DIR, tmp_path, timeout=120)
