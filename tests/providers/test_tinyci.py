"""A provider costs four places: its module (tests/providers/tinyci.py), its fake (tests/fakes/tinyci.py), this test
file and one catalog line (``LINE``, added here to the catalog of this process and of a spawned daemon, as
writing it into ci_sidecar/providers/catalog.py would). Nothing else in the daemon knows tiny CI."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

import helpers
from ci_sidecar.providers import catalog
from ci_sidecar_client import Client
from fakes.tinyci import FakeTinyCI
from helpers import DaemonProcess

from .contract import check_credentials, check_provider, check_settings

#: the catalog line, exactly as it would stand in CATALOG
LINE = ('ProviderSpec("tinyci", "providers.tinyci:TinyCIProvider", "providers.tinyci:TinyCISettings", code_host=True, '
        'credentials=CredentialSpec(("TINYCI_TOKEN",), url_env=("TINYCI_URL",)), env_prefixes=("TINYCI_",))')
TESTS = Path(__file__).resolve().parents[1]
#: ``ci-sidecar`` with the line in its catalog (nothing else of the daemon is imported before it is added)
LAUNCHER = (f"import sys; sys.path.insert(0, {str(TESTS)!r}); from ci_sidecar.providers import catalog; "
            f"catalog.CATALOG += (eval({LINE!r}, vars(catalog)),); "
            "from ci_sidecar.cli import main; sys.exit(main(sys.argv[1:]))")
SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def line(monkeypatch: pytest.MonkeyPatch) -> catalog.ProviderSpec:
    spec = eval(LINE, vars(catalog))  # noqa: S307 - our own constant, the catalog's syntax
    monkeypatch.setattr(catalog, "CATALOG", catalog.CATALOG + (spec,))
    return spec


def test_the_line_passes_the_provider_contract(line: catalog.ProviderSpec) -> None:
    """Tiny CI's line and provider keep the contract every catalog provider keeps."""
    check_credentials(line)
    assert {"context_prefix", "http_timeout", "full_report_url"} == check_settings(line).CONFIG_KEYS
    provider = check_provider(line)
    trio.run(provider.aclose)


@pytest.fixture
def start_daemon(short_tmp: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], DaemonProcess]]:
    """Spawns daemons whose catalog has the line (one at a time: they share the state dir; all stopped after the
    test)."""
    monkeypatch.setattr(helpers, "daemon_argv", lambda *args: [sys.executable, "-c", LAUNCHER, *args])
    started: list[DaemonProcess] = []

    def start() -> DaemonProcess:
        # the retry backoff shrinks against the fake (fakes.scenario.TIME_SCALE); what is retried is the same
        started.append(DaemonProcess.start(short_tmp / f"t{len(started)}.sock",
                                           {**env, "CI_SIDECAR_DELIVERY_TIME_SCALE": "0.1"}))
        return started[-1]

    yield start
    for d in started:
        d.stop()


def job(fake: FakeTinyCI, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A job on tiny CI: its token and API URL in the environment; the session's configuration."""
    monkeypatch.setenv("TINYCI_TOKEN", fake.token)
    monkeypatch.setenv("TINYCI_URL", fake.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    return {"provider": "tinyci", "providers": {"tinyci": {"context_prefix": "tiny/"}},
            "context": {"repository": "octo/repo", "commit_sha": SHA, "pr_number": 7}}


def drive(c: Client) -> tuple[dict[str, Any], dict[str, Any]]:
    """What a test runner does: a run with results, a build status, a sticky comment updated once."""
    run = c.request("create_test_run", {"name": "unit", "wait": True})
    c.request("report_results", {"test_run_id": run["id"], "results": [
        {"name": "t1", "status": "passed", "duration": 0.1}, {"name": "t2", "status": "failed", "duration": 0.2}]})
    c.request("set_build_status", {"state": "success", "context": "lint", "wait": True})
    c.request("add_pr_comment", {"body": "first", "key": "summary", "wait": True})
    c.request("add_pr_comment", {"body": "second", "key": "summary", "wait": True})
    return run, c.request("complete_test_run", {"test_run_id": run["id"], "wait": True, "wait_s": 120}, timeout=150)


def view(fake: FakeTinyCI) -> dict[str, Any]:
    """What a person sees on tiny CI (without the ids the fake hands out)."""
    return {"statuses": {key: {k: v for k, v in s.items() if k != "id"} for key, s in fake.statuses.items()},
            "comments": sorted((c["pr"], c["body"]) for c in fake.comments.values())}


def test_a_run_goes_end_to_end_through_the_daemon(start_daemon: Callable[[], DaemonProcess],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Configured as the session's CI, tiny CI gets the run as a commit status (through a retried 503), a build
    status and a sticky PR comment; its knob, token and URL come from the catalog line alone."""
    with FakeTinyCI() as fake:
        daemon = start_daemon()
        c = daemon.client(config=job(fake, monkeypatch))
        roles = c.initialize_result["capabilities"]["roles"]
        assert {"kind": "native", "via": "commit status"} == roles["ci"]["test_run"]
        assert "tinyci" == c.initialize_result["ci"]["provider"]
        fake.inject("503", method="POST", times=1)  # the first write fails: the outbox retries it
        run, done = drive(c)
        assert [503, 201] == [r.status for r in fake.calls("POST", r"/statuses/")][:2]
        [comment] = fake.comments.values()
        assert comment["body"].endswith("\nsecond") and 7 == comment["pr"]
        status = fake.status_of("octo/repo", SHA, "tiny/unit")
        assert "failure" == status["state"] and "1 passed, 1 failed" in status["description"]
        assert "success" == fake.status_of("octo/repo", SHA, "tiny/lint")["state"]
        target = next(t for t in done["targets"] if t["provider"] == "tinyci")
        assert "delivered" == target["delivery"]["state"]
        assert {"pending": 0, "failed": 0} == {k: done["delivery"][k] for k in ("pending", "failed")}
        read = c.request("get_test_run_status", {"test_run_id": run["id"]})
        assert "failure" == next(t for t in read["targets"] if t["provider"] == "tinyci")["remote_status"]
        assert [] == fake.violations and fake.token not in daemon.log()


def test_faults_change_nothing_a_person_sees(start_daemon: Callable[[], DaemonProcess],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Under 40% faults (429, 5xx, resets, answers lost after the change) tiny CI ends exactly as without them:
    one status per context, one sticky comment, nothing duplicated."""
    views = []
    for rate in (0.0, 0.4):
        with FakeTinyCI(fault_rate=rate, seed=3) as fake:
            daemon = start_daemon()
            c = daemon.client(config=job(fake, monkeypatch))
            done = drive(c)[1]
            daemon.stop()  # the next daemon gets the state dir
            assert {"pending": 0, "failed": 0} == {k: done["delivery"][k] for k in ("pending", "failed")}
            assert [] == fake.violations
            views.append(view(fake))
            faulted = [r for r in fake.requests if r.status not in (200, 201, 204)]
            assert bool(rate) == any(r.status == -1 for r in faulted)  # answers lost after the change
    assert views[0] == views[1]
