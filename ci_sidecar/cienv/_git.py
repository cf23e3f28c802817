"""Asks git about a working tree: HEAD commit, branch, remote URL, tags, short SHA expansion.

Every call is a short ``git`` subprocess in the session's cwd with a 5 s timeout. Any failure (git not
installed, not a repository, "dubious ownership", timeout) answers None: detection must never fail
because of git. Answers are cached per instance, one instance per detection.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess

__all__ = ["Git", "GIT_TIMEOUT_S"]

log = logging.getLogger(__name__)

GIT_TIMEOUT_S = 5.0
_HEX = re.compile(r"^[0-9a-fA-F]{4,40}$")


def _git_env() -> dict[str, str]:
    # GIT_DIR/GIT_WORK_TREE inherited from a hook would point git away from the session's cwd.
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_TERMINAL_PROMPT="0", GIT_OPTIONAL_LOCKS="0", LC_ALL="C")
    return env


class Git:
    """Read-only git queries against one working tree; None when *cwd* is None or git cannot answer."""

    def __init__(self, cwd: str | None, *, timeout: float = GIT_TIMEOUT_S) -> None:
        self.cwd = cwd
        self.timeout = timeout
        self._cache: dict[tuple[str, ...], str | None] = {}

    def run(self, *args: str) -> str | None:
        """stdout of ``git *args`` stripped, or None on any failure or empty output."""
        if self.cwd is None:
            return None
        if args not in self._cache:
            self._cache[args] = self._result(args, self._start(args))
        return self._cache[args]

    def prefetch(self, *queries: tuple[str, ...]) -> None:
        """Run the queries not answered yet side by side, one git process each: a detection that needs
        several then waits for the slowest of them instead of their sum (``run`` answers from the cache)."""
        if self.cwd is None:
            return
        started = [(args, self._start(args)) for args in dict.fromkeys(queries) if args not in self._cache]
        for args, proc in started:
            self._cache[args] = self._result(args, proc)

    def _start(self, args: tuple[str, ...]) -> subprocess.Popen[str] | None:
        try:
            return subprocess.Popen(["git", *args], cwd=self.cwd, env=_git_env(), stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        except (OSError, subprocess.SubprocessError) as exc:
            log.debug("git %s in %s failed: %s", " ".join(args), self.cwd, exc)
            return None

    def _result(self, args: tuple[str, ...], proc: subprocess.Popen[str] | None) -> str | None:
        if proc is None:
            return None
        try:
            out, err = proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired as exc:
            proc.kill()
            proc.communicate()
            log.debug("git %s in %s failed: %s", " ".join(args), self.cwd, exc)
            return None
        if proc.returncode != 0:
            log.debug("git %s in %s exited %s: %s", " ".join(args), self.cwd, proc.returncode, err.strip())
            return None
        return out.strip() or None

    HEAD = ("rev-parse", "--verify", "-q", "HEAD")
    BRANCH = ("symbolic-ref", "-q", "--short", "HEAD")
    ORIGIN = ("remote", "get-url", "origin")
    REMOTES = ("remote",)

    def head(self) -> str | None:
        """The full SHA of HEAD."""
        return self.run(*self.HEAD)

    def branch(self) -> str | None:
        """The checked-out branch; None on a detached HEAD (the usual state of a CI checkout)."""
        return self.run(*self.BRANCH)

    def tag(self) -> str | None:
        """The first tag pointing at HEAD, if any."""
        out = self.run("tag", "--points-at", "HEAD")
        return out.splitlines()[0].strip() if out else None

    def remote_url(self) -> tuple[str, str] | None:
        """``(remote name, url)`` of ``origin``, else of the first remote."""
        url = self.run(*self.ORIGIN)
        if url:
            return "origin", url
        names = self.run(*self.REMOTES)
        if not names:
            return None
        name = names.splitlines()[0].strip()
        url = self.run("remote", "get-url", name)
        return (name, url) if url else None

    def parents(self) -> list[str] | None:
        """The full SHAs of HEAD's parents (two for a merge commit), None when git cannot tell."""
        out = self.run("rev-list", "--parents", "-n", "1", "HEAD")
        return out.split()[1:] if out else None

    def expand(self, short_sha: str) -> str | None:
        """The full SHA of the commit abbreviated as *short_sha*, when this clone has it."""
        if not _HEX.match(short_sha):  # also keeps option-like strings away from the git command line
            return None
        full = self.run("rev-parse", "--verify", "-q", f"{short_sha}^{{commit}}")
        return full.lower() if full and len(full) == 40 and full.lower().startswith(short_sha.lower()) else None
