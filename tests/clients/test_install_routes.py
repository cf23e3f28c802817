"""The install routes and examples of clients/node/README.md and clients/go/README.md, run as written:
their shell blocks (with ``/path/to/ci-sidecar`` pointing at this checkout) in a fresh project, their
example programs on their own and under ``ci-sidecar exec``, against a real daemon, without network."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest

from _subsuite import REPO, require_tool
from helpers import DaemonProcess, scrubbed_env

PLACEHOLDER = "/path/to/ci-sidecar"
SUMMARY = re.compile(r"run '([^']+)': (\w+): (\d+) passed, (\d+) failed")


def readme_blocks(readme: Path, lang: str) -> list[str]:
    """The fenced ``lang`` blocks of a README, with the checkout placeholder pointing here."""
    text = readme.read_text()
    return [b.replace(PLACEHOLDER, str(REPO)) for b in re.findall(rf"```{lang}\n(.*?)```", text, re.S)]


def block_with(readme: Path, lang: str, needle: str) -> str:
    found = [b for b in readme_blocks(readme, lang) if needle in b]
    assert len(found) == 1, f"{readme.name}: want one ```{lang} block with {needle!r}, found {len(found)}"
    return found[0]


def run(argv: list[str], cwd: Path, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout)


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, f"{proc.args} exited {proc.returncode}:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout


def under_exec(cmd: list[str], cwd: Path, env: dict[str, str], name: str) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, "-m", "ci_sidecar", "exec", "--name", name, "--", *cmd], cwd, env)


@pytest.fixture
def env(tmp_path: Path, shared_daemon: DaemonProcess) -> dict[str, str]:
    """A scrubbed environment talking to the shared daemon; npm and go stay offline and private."""
    return scrubbed_env(
        tmp_path, CI_SIDECAR_SOCKET=str(shared_daemon.path), CI_SIDECAR_OUTPUT_DIR=str(tmp_path / "out"),
        npm_config_offline="true", npm_config_cache=str(tmp_path / "npm-cache"), npm_config_audit="false",
        npm_config_fund="false", npm_config_update_notifier="false",
        GOFLAGS="-mod=mod", GOPROXY="off", GOTOOLCHAIN="local", CGO_ENABLED="0")


NODE_README = REPO / "clients" / "node" / "README.md"
GO_README = REPO / "clients" / "go" / "README.md"

NODE_TEST = """
import { test } from 'node:test';
import assert from 'node:assert/strict';
test('adds', () => { assert.equal(1 + 1, 2); });
"""


class TestNodePackage:
    def project(self, tmp_path: Path) -> Path:
        proj = tmp_path / "proj"
        proj.mkdir()
        (proj / "package.json").write_text('{"name": "proj", "private": true, "type": "module"}\n')
        return proj

    def test_tarball_install_readme_example_and_reporter(self, tmp_path: Path, env: dict[str, str]) -> None:
        """The packed package installs offline; the README example completes its own run, leaves
        exec's run to exec, and the reporter resolves as ``ci-sidecar-client/reporter``."""
        require_tool("node", "apt-get install nodejs (Node >= 20)")
        require_tool("npm", "apt-get install npm")
        proj = self.project(tmp_path)
        ok(run(["sh", "-ec", block_with(NODE_README, "sh", "npm pack")], proj, env))
        (proj / "example.mjs").write_text(block_with(NODE_README, "js", "finishRun"))

        alone = ok(run(["node", "example.mjs"], proj, env))
        assert "run failure" in alone, alone

        joined = under_exec(["node", "example.mjs"], proj, env, "readme node")
        assert joined.returncode == 0, joined.stderr
        assert "run left to its owner" in joined.stdout, joined.stdout
        assert SUMMARY.search(joined.stderr).groups() == ("readme node", "failure", "1", "1"), joined.stderr

        (proj / "adds.test.mjs").write_text(NODE_TEST)
        rep = run(["node", "--test", "--test-reporter=ci-sidecar-client/reporter", "adds.test.mjs"], proj, env)
        assert rep.returncode == 0, rep.stdout + rep.stderr
        m = re.search(r"ci-sidecar: report: (\S+)", rep.stdout)
        assert m and Path(m.group(1)).is_file(), rep.stdout

    def test_folder_install(self, tmp_path: Path, env: dict[str, str]) -> None:
        """``npm install <checkout>/clients/node`` makes ``ci-sidecar-client`` importable with its types."""
        require_tool("npm", "apt-get install npm")
        proj = self.project(tmp_path)
        ok(run(["sh", "-ec", block_with(NODE_README, "sh", "npm install /")], proj, env))
        out = ok(run(["node", "-e", "import('ci-sidecar-client').then((m) => console.log(typeof m.open))"],
                     proj, env))
        assert out.strip() == "function"
        assert (proj / "node_modules" / "ci-sidecar-client" / "index.d.ts").is_file()


class TestGoModule:
    def test_replace_directive_and_readme_example(self, tmp_path: Path, env: dict[str, str]) -> None:
        """A new module using the README's replace directive builds the README program offline; alone it
        completes its run, under exec it leaves the run to exec."""
        go = require_tool("go", "apt-get install golang-go (Go >= 1.19)")
        proj = tmp_path / "mod"
        proj.mkdir()
        ok(run([go, "mod", "init", "example.com/readme"], proj, env))
        ok(run(["sh", "-ec", block_with(GO_README, "sh", "go mod edit")], proj, env))
        (proj / "main.go").write_text(block_with(GO_README, "go", "FinishRun"))
        ok(run([go, "build", "-o", "example", "."], proj, env))

        alone = ok(run(["./example"], proj, env))
        assert alone.strip() == "run failure", alone

        joined = under_exec(["./example"], proj, env, "readme go")
        assert joined.returncode == 0, joined.stderr
        assert joined.stdout.strip() == "run left to its owner", joined.stdout
        assert SUMMARY.search(joined.stderr).groups() == ("readme go", "failure", "1", "1"), joined.stderr

    def test_gotest_sidecar_go_install_and_usage(self, tmp_path: Path, env: dict[str, str]) -> None:
        """``go install`` from the checkout gives a gotest-sidecar whose documented forms fail on a
        package that does not compile and print the report path."""
        require_tool("go", "apt-get install golang-go (Go >= 1.19)")
        env = dict(env, GOBIN=str(tmp_path / "bin"), PATH=f"{tmp_path / 'bin'}:{env['PATH']}")
        ok(run(["sh", "-ec", block_with(GO_README, "sh", "go install")], tmp_path, env))
        assert (tmp_path / "bin" / "gotest-sidecar").is_file()
        broken = REPO / "clients" / "go" / "testdata" / "broken"

        direct = run(["sh", "-ec", block_with(GO_README, "sh", "gotest-sidecar -name")], broken, env)
        assert direct.returncode == 1, direct.stderr
        assert re.search(r"gotest-sidecar: run \S+ failure: .* 2 errors", direct.stderr), direct.stderr
        m = re.search(r"gotest-sidecar: report: (\S+)", direct.stderr)
        assert m and Path(m.group(1)).is_file(), direct.stderr

        piped = run(["bash", "-ec", block_with(GO_README, "bash", "pipefail")], broken, env)
        assert piped.returncode != 0, piped.stderr
        assert re.search(r"gotest-sidecar: run \S+ failure: .* 2 errors", piped.stderr), piped.stderr

        # run from a terminal with nothing piped in and nothing to run: usage, not a silent wait
        primary, secondary = pty.openpty()
        try:
            idle = subprocess.run(["gotest-sidecar"], cwd=tmp_path, env=env, stdin=secondary, capture_output=True,
                                  text=True, timeout=30)
        finally:
            os.close(primary)
            os.close(secondary)
        assert (2, True) == (idle.returncode, idle.stderr.startswith("usage: gotest-sidecar")), idle.stderr
