"""Fixtures for provider tests: the fake GitHub (spec-validating, fails the test on unexpected violations)
and a ProviderEnv builder whose per-test records come from a list."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from ci_sidecar.protocol.records import CIContext, TestResult
from ci_sidecar.providers.base import ProviderEnv

from fakes.github import FakeGitHub
from fakes.spec import OpenApiSpec, require_spec

HEAD = "a" * 40
MERGE = "m" * 40


@pytest.fixture
def gh_spec() -> OpenApiSpec:
    return require_spec("github/api.github.com.ci-subset.json")


@pytest.fixture
def fake_github(gh_spec: OpenApiSpec) -> Iterator[FakeGitHub]:
    with FakeGitHub(gh_spec) as fake:
        yield fake
    assert len(fake.violations) == fake.expected_violations, fake.violations


class EnvBuilder:
    """Builds ProviderEnvs against one fake; ``logs`` collects what the provider told the user."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.logs: list[str] = []
        self.results: list[TestResult] = []

    def __call__(self, token: str | None = "app-token", **kw: Any) -> ProviderEnv:
        ci = CIContext(provider=kw.pop("provider", "github"), sources={}, repository=kw.pop("repository", "octo/repo"),
                       commit_sha=MERGE, head_sha=kw.pop("head_sha", HEAD), pr_number=kw.pop("pr_number", 7),
                       event="pull_request", job_url="https://github.example/octo/repo/actions/runs/1")
        config = {"trust_env": False, **kw.pop("config", {})}
        return ProviderEnv(ci=ci, config=config, base_url=kw.pop("base_url", self.url), token=token,
                           read_results=self.read_results, log=self.logs.append)

    async def read_results(self, run_id: str, start: int, end: int) -> AsyncIterator[bytes]:
        for result in self.results[start:end]:
            yield msgspec.msgpack.encode(result)


@pytest.fixture
def make_env(fake_github: FakeGitHub) -> EnvBuilder:
    return EnvBuilder(fake_github.url)


@pytest.fixture
def scenario_dirs() -> Iterator[Callable[[], Path]]:
    """Fresh short directories under /tmp for the scenario harness (socket paths must stay under 108 bytes)."""
    made: list[tempfile.TemporaryDirectory[str]] = []

    def make() -> Path:
        made.append(tempfile.TemporaryDirectory(prefix="csg", dir="/tmp"))
        return Path(made[-1].name)

    yield make
    for d in made:
        d.cleanup()
