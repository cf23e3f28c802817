"""pytest plugin: stream every test result of a session into a ci-sidecar run.

Opt-in, so that installing the client never changes a test run by itself. It reports when any of

* ``pytest --ci-sidecar`` (or ``--ci-sidecar-strict``),
* ``CI_SIDECAR_RUN_ID`` is set (``ci-sidecar exec`` sets it: the plugin joins that run and leaves
  completing it to its owner), unless ``CI_SIDECAR_PYTEST=0``,
* ``CI_SIDECAR_PYTEST=1``.

It talks to ``$CI_SIDECAR_SOCKET`` (or ``--ci-sidecar-socket``) when set, else spawns
``ci-sidecar serve --stdio`` for the session. A run it created is completed at the end with the
session's outcome and a one-line summary names the report. The daemon being missing or failing
never breaks the test session: the plugin says so once and the tests go on, unless
``--ci-sidecar-strict`` asks for that to fail the session.

Files a test marks as artifacts are uploaded after the test::

    @pytest.mark.ci_artifact("build/screenshot.png", name="login.png")
    def test_login(ci_artifacts, tmp_path):
        ...
        ci_artifacts.add(tmp_path / "trace.zip")
"""

import logging
import os
import re
import sys
from typing import Any, Dict, Iterator, List, Optional

import pytest

from ._fold import ARTIFACTS_ATTR, ResultFolder, collect_error
from ._reporting import ReportingError, RunReporter

__all__ = ["ArtifactCollector"]

log = logging.getLogger("ci_sidecar_client.pytest")

_PLUGIN_NAME = "ci-sidecar-reporting"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
_ARTIFACTS_KEY = "_ci_sidecar_artifacts"

# pytest exit codes -> run conclusions: 0 ok, 1 tests failed, 2 interrupted, 3 internal error,
# 4 usage error, 5 no tests collected
_CONCLUSIONS = {0: "success", 1: "failure", 2: "cancelled", 3: "failure", 4: "failure", 5: "neutral"}


# --- options, marker, fixture -------------------------------------------------------------------

def pytest_addoption(parser: Any) -> None:
    group = parser.getgroup("ci-sidecar", "reporting to a ci-sidecar daemon")
    group.addoption("--ci-sidecar", action="store_true", default=False, dest="ci_sidecar",
                    help="report results to a ci-sidecar run (also on with $CI_SIDECAR_RUN_ID or "
                         "$CI_SIDECAR_PYTEST=1)")
    group.addoption("--ci-sidecar-strict", action="store_true", default=False, dest="ci_sidecar_strict",
                    help="like --ci-sidecar, and fail the session when reporting fails")
    group.addoption("--ci-sidecar-name", default=None, dest="ci_sidecar_name",
                    help="name of the run to create (default $CI_SIDECAR_RUN_NAME, else 'pytest')")
    group.addoption("--ci-sidecar-socket", default=None, dest="ci_sidecar_socket",
                    help="daemon socket (default $CI_SIDECAR_SOCKET; unset: spawn `ci-sidecar serve --stdio`)")


def pytest_configure(config: Any) -> None:
    config.addinivalue_line(
        "markers",
        "ci_artifact(*paths, name=None): upload these files as ci-sidecar artifacts after the test "
        "(relative paths are taken from the directory pytest was started in)")
    if not _enabled(config):
        return
    if hasattr(config, "workerinput"):  # a pytest-xdist worker: the controller reports
        return
    if getattr(config.option, "collectonly", False):
        return
    config.pluginmanager.register(SidecarSession(config), _PLUGIN_NAME)


def _enabled(config: Any) -> bool:
    if config.getoption("ci_sidecar") or config.getoption("ci_sidecar_strict"):
        return True
    flag = os.environ.get("CI_SIDECAR_PYTEST", "").strip().lower()
    if flag in _TRUE:
        return True
    return bool(os.environ.get("CI_SIDECAR_RUN_ID")) and flag not in _FALSE


class ArtifactCollector:
    """What the ``ci_artifacts`` fixture gives a test: ``add(path, name=None)`` marks a file for upload.

    The file is read after the test's teardown, so it may be written by then. ``name`` is the artifact's
    name in the run (default ``<test>/<file name>``); the same name again replaces the artifact.
    """

    def __init__(self, item: Any) -> None:
        self._item = item

    def add(self, path: Any, name: Optional[str] = None) -> None:
        """Upload ``path`` (absolute, or relative to the test's working directory now) after the test."""
        _mark(self._item, os.path.abspath(os.fspath(path)), name)

    @property
    def items(self) -> List[Dict[str, Any]]:
        """The files marked so far: ``[{path, name}]``."""
        return [dict(m) for m in getattr(self._item, _ARTIFACTS_KEY, [])]


@pytest.fixture
def ci_artifacts(request: Any) -> ArtifactCollector:
    """Mark files to upload as artifacts of the run: ``ci_artifacts.add(path, name=None)``."""
    return ArtifactCollector(request.node)


def _default_name(item: Any, path: str) -> str:
    # the artifact name is a relative path in the run: one folder per test keeps tests' files apart
    test = re.sub(r"[^A-Za-z0-9._/\-\[\]=,+@]+", "_", item.nodeid.replace("::", "/")).strip("_/") or "test"
    return "%s/%s" % (test, os.path.basename(path))


def _mark(item: Any, path: str, name: Optional[str]) -> None:
    marked = getattr(item, _ARTIFACTS_KEY, None)
    if marked is None:
        marked = []
        setattr(item, _ARTIFACTS_KEY, marked)
    entry = {"path": path, "name": name or _default_name(item, path)}
    if entry not in marked:
        marked.append(entry)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: Any, call: Any) -> Iterator[None]:
    """Stamp the test's artifacts on its reports (plain data, so it travels from xdist workers too)."""
    outcome = yield
    if call.when == "setup":
        base = str(item.config.invocation_params.dir)
        for marker in item.iter_markers("ci_artifact"):
            for path in marker.args:
                _mark(item, os.path.join(base, os.fspath(path)), marker.kwargs.get("name"))
    marked = getattr(item, _ARTIFACTS_KEY, None)
    if marked:
        report = outcome.get_result()
        setattr(report, ARTIFACTS_ATTR, [dict(m) for m in marked])


# --- the reporting session ----------------------------------------------------------------------

class SidecarSession:
    """Registered for one pytest session when reporting is on: owns the connection and the run."""

    def __init__(self, config: Any) -> None:
        self.config = config
        self.strict = bool(config.getoption("ci_sidecar_strict"))
        self.reporter: Optional[RunReporter] = None
        self.folder = ResultFolder(suite=_suite_name(config))
        self.failed = False  # reporting failed (said once)
        self.ending = False  # the session is ending: daemon warnings are printed as they come
        self.lines: List[str] = []  # for the terminal summary
        self.artifact_problems: List[str] = []
        self.uploaded = 0

    # pytest calls these -----------------------------------------------------------------------

    def pytest_sessionstart(self, session: Any) -> None:
        socket_path = self.config.getoption("ci_sidecar_socket") or os.environ.get("CI_SIDECAR_SOCKET") or None
        run_id = os.environ.get("CI_SIDECAR_RUN_ID") or None
        name = (self.config.getoption("ci_sidecar_name") or os.environ.get("CI_SIDECAR_RUN_NAME") or "pytest")
        try:
            self.reporter = RunReporter.open(socket_path=socket_path, run_id=run_id, run_name=name,
                                             client_name="ci-sidecar-pytest")
        except ReportingError as exc:
            self._give_up(str(exc))
            if self.strict:
                pytest.exit("ci-sidecar: %s" % exc, returncode=pytest.ExitCode.USAGE_ERROR)
        if self.reporter is not None:
            self.reporter.client.on_notification(self._on_daemon_message)

    def pytest_collectreport(self, report: Any) -> None:
        if report.failed and self.reporter is not None:
            self._guard(self.reporter.add, collect_error(report, self.folder.suite))

    def pytest_runtest_logreport(self, report: Any) -> None:
        if self.reporter is None:
            return
        done = self.folder.add(report)
        if done is None:
            return
        result, artifacts = done
        self._guard(self.reporter.add, result)
        for art in artifacts:
            self._upload(art, report.nodeid)

    def _on_daemon_message(self, method: str, params: Any) -> None:
        """Warnings the daemon sends while the session ends (what a wait is for) go to the user."""
        if self.ending and method == "window/logMessage" and isinstance(params, dict) and params.get("type", 4) <= 2:
            self._say_now("ci-sidecar: %s" % params.get("message"))

    def pytest_sessionfinish(self, session: Any, exitstatus: Any) -> None:
        self.ending = True
        reporter, self.reporter = self.reporter, None
        if reporter is None:
            self._strict_exit(session)
            return
        try:
            for partial in self.folder.pending():
                reporter.add(partial)
            run = reporter.finish(_CONCLUSIONS.get(int(exitstatus), "failure"), say=self._say_now)
            if run is None:
                self.lines.append("ci-sidecar: reported %d results to run %s (joined; its owner completes it)"
                                  % (reporter.sent, reporter.run_id))
            else:
                self.lines.append(_summary(run))
        except ReportingError as exc:
            self._give_up(str(exc))
        except Exception as exc:  # noqa: BLE001 - reporting must never break the session
            self._give_up("unexpected %s: %s" % (type(exc).__name__, exc))
        finally:
            try:
                reporter.close()
            except Exception:  # noqa: BLE001
                log.debug("closing the ci-sidecar session failed", exc_info=True)
        if self.artifact_problems:
            self.lines.extend("ci-sidecar: " + p for p in self.artifact_problems)
        self._strict_exit(session)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        for line in self.lines:
            terminalreporter.write_line(line, yellow=self.failed or line.startswith("ci-sidecar: artifact"))

    # helpers ----------------------------------------------------------------------------------

    def _guard(self, fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except Exception as exc:  # noqa: BLE001 - reporting must never break the session
            self._give_up(str(exc))
        problem = self.reporter.problem if self.reporter is not None else None
        if problem is not None and not self.failed:
            self._give_up(str(problem))

    def _upload(self, art: Dict[str, Any], nodeid: str) -> None:
        if self.reporter is None or self.failed:
            return
        try:
            self.reporter.upload(art["path"], art["name"], {"test": nodeid})
            self.uploaded += 1
        except ReportingError as exc:
            self.artifact_problems.append("artifact %s of %s not uploaded: %s" % (art["name"], nodeid, exc))
        except Exception as exc:  # noqa: BLE001 - RpcError (limits, paths) or a lost daemon
            self.artifact_problems.append("artifact %s of %s not uploaded: %s" % (art["name"], nodeid, exc))

    def _give_up(self, why: str) -> None:
        """Stop reporting and say so once; the tests go on."""
        if self.failed:
            return
        self.failed = True
        message = "ci-sidecar: results are NOT being reported: %s" % why
        log.warning("%s", message)
        self._say(message)
        if self.reporter is not None:
            reporter, self.reporter = self.reporter, None
            try:
                reporter.close()
            except Exception:  # noqa: BLE001
                log.debug("closing the ci-sidecar session failed", exc_info=True)

    def _say_now(self, message: str) -> None:
        """A line for the user while pytest itself is quiet (the end of the session)."""
        sys.stderr.write(message + "\n")
        sys.stderr.flush()

    def _say(self, message: str) -> None:
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        if tr is not None:
            tr.ensure_newline()
            tr.write_line(message, yellow=True, bold=True)
        else:
            sys.stderr.write(message + "\n")

    def _strict_exit(self, session: Any) -> None:
        if self.strict and self.failed and session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.INTERNAL_ERROR


def _suite_name(config: Any) -> str:
    try:
        return str(config.getini("junit_suite_name") or "pytest")
    except (ValueError, KeyError):  # the junitxml plugin is disabled (-p no:junitxml)
        return "pytest"


def _summary(run: Dict[str, Any]) -> str:
    c = run.get("counts") or {}
    parts = ["%d passed" % c.get("passed", 0), "%d failed" % c.get("failed", 0)]
    if c.get("errors"):
        parts.append("%d errors" % c["errors"])
    parts.append("%d skipped" % c.get("skipped", 0))
    if c.get("flaky"):
        parts.append("%d flaky" % c["flaky"])
    line = "ci-sidecar: run %s %s: %s" % (run.get("id"), run.get("conclusion"), ", ".join(parts))
    if run.get("output_dir"):
        line += "; report: %s" % os.path.join(run["output_dir"], "report.html")
    pending = (run.get("delivery") or {}).get("pending", 0) + (run.get("delivery") or {}).get("failed", 0)
    if pending:
        line += "; %d provider writes undelivered" % pending
        why = (run.get("delivery") or {}).get("last_error")
        if why:
            line += " (%s)" % why
    return line
