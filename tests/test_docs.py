"""The docs stay true: every code block in README.md and docs/*.md is run, or at least parsed.

Shell blocks (`sh`, `bash`) run in a scratch directory with this checkout's ``ci-sidecar`` on
``PATH``; ``sh`` blocks run under ``dash`` (POSIX sh, so no bash-isms). The commands that install
ci-sidecar itself (``pip install .``) are only parsed: the test environment *is* that install, and
the network is off limits. A block that needs what a test cannot have (root, a booted systemd, a
real CI, a Gradle project) is marked in the Markdown, on the line before it, with
``<!-- docs-test: syntax-only: <why> -->``; it is still parsed. Python blocks run the same way,
TOML blocks are parsed, and docs/protocol.md's JSON examples are decoded.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers import scrubbed_env

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$",
                   re.M | re.S)
MARKER = re.compile(r"<!--\s*docs-test:\s*syntax-only:\s*(?P<why>[^>]+?)\s*-->")
# installing ci-sidecar itself: parsed, then replaced by `:` (the test runs from this checkout)
INSTALL = re.compile(r"(?:^|(?<=&& )|(?<=; ))(?:python3 -m )?pip install [^&;\n#]*", re.M)


@dataclass
class Block:
    file: Path
    line: int
    lang: str
    body: str
    syntax_only: str | None

    @property
    def id(self) -> str:
        return f"{self.file.name}:{self.line}:{self.lang or 'text'}"


def _blocks() -> list[Block]:
    found = []
    for doc in DOCS:
        text = doc.read_text()
        for m in FENCE.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            before = text[:m.start()].rstrip().rsplit("\n", 1)[-1]
            marker = MARKER.search(before)
            body = textwrap.dedent(m["indent"] + m["body"].replace("\n" + m["indent"], "\n"))
            found.append(Block(doc, line, m["lang"], body, marker["why"] if marker else None))
    return found


BLOCKS = _blocks()
SHELL = [b for b in BLOCKS if b.lang in ("sh", "bash", "shell", "console")]


@pytest.fixture(scope="module")
def bin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PATH entry whose ``ci-sidecar`` is this checkout, run by this interpreter."""
    d = tmp_path_factory.mktemp("bin")
    exe = d / "ci-sidecar"
    exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m ci_sidecar "$@"\n')
    exe.chmod(0o755)
    return d


def test_every_shell_block_is_posix_or_says_bash() -> None:
    """`sh` blocks use no bash-only syntax (`<<<`, `[[`, arrays), which dash and busybox reject."""
    bashisms = re.compile(r"<<<|\[\[|\bfunction\b|\$\{[^}]*\[|\bsource\b")
    for b in SHELL:
        if b.lang != "bash":
            assert not bashisms.search(b.body), f"{b.id} uses bash syntax in a sh block: {b.body}"


def test_nothing_names_a_missing_protocol_file() -> None:
    """Docs, clients and sources point at the protocol reference in the repository (docs/protocol.md)."""
    assert (ROOT / "docs" / "protocol.md").is_file()
    skip = {".git", "node_modules", "__pycache__"}
    offenders = []
    for path in ROOT.rglob("*"):
        if skip & set(path.relative_to(ROOT).parts) or not path.is_file() or path.suffix not in {
                ".md", ".py", ".js", ".ts", ".go", ".sh", ".toml", ".json", ".yml", ".yaml"}:
            continue
        if path.name != "test_docs.py" and "PROTOCOL" + ".md" in path.read_text(errors="replace"):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


@pytest.mark.parametrize("block", SHELL, ids=[b.id for b in SHELL])
def test_shell_block(block: Block, bin_dir: Path, short_tmp: Path, tmp_path: Path) -> None:
    """The block parses under its shell and, unless marked syntax-only, runs and exits 0."""
    shell = shutil.which("bash") if block.lang == "bash" else shutil.which("dash") or "/bin/sh"
    parsed = subprocess.run([shell, "-n"], input=block.body, capture_output=True, text=True, timeout=30)
    assert parsed.returncode == 0, f"{block.id} does not parse: {parsed.stderr}"
    if block.syntax_only:
        return
    body = INSTALL.sub(":", block.body)
    env = scrubbed_env(tmp_path, TMPDIR=str(short_tmp), HOME=str(tmp_path))
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    work = tmp_path / "work"
    work.mkdir()
    proc = subprocess.run([shell, "-e"], input=body, cwd=work, env=env, capture_output=True, text=True, timeout=180)
    try:
        assert proc.returncode == 0, f"{block.id} failed ({proc.returncode}):\n{body}\n{proc.stdout}\n{proc.stderr}"
        assert "Traceback" not in proc.stderr, proc.stderr
    finally:
        sock = short_tmp / "cis.sock"
        if sock.exists():  # a block that failed half way must not leave its daemon behind
            subprocess.run([str(bin_dir / "ci-sidecar"), "call", "sidecar/stop", "--socket", str(sock)],
                           env=env, capture_output=True, timeout=30)


PYTHON = [b for b in BLOCKS if b.lang == "python"]


@pytest.mark.parametrize("block", PYTHON, ids=[b.id for b in PYTHON])
def test_python_block(block: Block, tmp_path: Path) -> None:
    """The block compiles and, unless marked syntax-only, runs and exits 0."""
    compile(block.body, block.id, "exec")
    if block.syntax_only:
        return
    env = scrubbed_env(tmp_path)
    proc = subprocess.run([sys.executable, "-"], input=block.body, cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, f"{block.id} failed:\n{proc.stdout}\n{proc.stderr}"


def test_toml_and_json_blocks_parse() -> None:
    """TOML blocks are valid TOML, JSON blocks valid JSON (a doc example that cannot be pasted is a bug)."""
    for b in BLOCKS:
        if b.lang == "toml":
            tomllib.loads(b.body)
        elif b.lang == "json":
            json.loads(b.body)


def test_syntax_only_blocks_say_why() -> None:
    """Every block that is not run says why, so skipping one is a visible decision."""
    for b in BLOCKS:
        if b.syntax_only is not None:
            assert len(b.syntax_only) > 8, b.id
