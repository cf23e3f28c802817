"""A fake Jenkins on 127.0.0.1 (the fake kit's server): the Remote Access API endpoints the provider uses, with
Jenkins' behaviour where our client could notice it.

* auth: HTTP Basic ``user:API token`` on every request; a wrong token answers 401 ("Invalid password/token for
  user"), no credential 403 ("Authentication required") — both as Jenkins' HTML error pages;
* CSRF as Jenkins ≥ 2.176: ``GET /crumbIssuer/api/json`` opens a web session (``Set-Cookie: JSESSIONID.<id>``) and
  hands out a crumb bound to it; a POST must carry the crumb header *and* that session's cookie, else 403 "No
  valid crumb was included in the request"; :meth:`FakeJenkins.restart` forgets every session (crumbs go stale);
  ``crumbs=False`` is a server without a crumb issuer (404);
* jobs in folders and multibranch projects (``/job/org/job/repo/job/PR-7/12/``), every name one URL segment,
  percent-decoded once (``feature%252Fx`` is the branch job ``feature%2Fx``);
* a build's ``api/json`` with ``tree=`` (top-level fields and ``artifacts[…]``), ``submitDescription`` (form
  encoded, answers 302 to the build page), ``testReport/api/json`` (404 until the ``junit`` step recorded one),
  ``artifact/<path>``;
* the pipeline's own steps for tests: :meth:`FakeJenkins.archive` (``archiveArtifacts``) and
  :meth:`FakeJenkins.record_junit` (``junit``) collect files from a workspace as those steps do;
* faults from the kit (502/503/500/resets before the change, lost answers after it); Jenkins has no rate limits.

Requests Jenkins would not understand (an unknown endpoint, a description that is not form-encoded, a malformed
``tree``) are recorded as violations.
"""

from __future__ import annotations

import base64
import html
import itertools
import re
import secrets
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote

from ._server import FakeServer, Recorded, Reply

__all__ = ["FakeJenkins", "Build"]

_TREE = re.compile(r"^[A-Za-z_]+(\[[A-Za-z_,]+\])?(\{\d*,?\d*\})?(,[A-Za-z_]+(\[[A-Za-z_,]+\])?(\{\d*,?\d*\})?)*$")


@dataclass
class Build:
    """One build of a job: what its page and API show."""

    job: tuple[str, ...]
    number: int
    description: str | None = None
    building: bool = True
    result: str | None = None
    artifacts: dict[str, bytes] = field(default_factory=dict)  # relative path -> content
    test_report: dict[str, Any] | None = None

    def api(self, url: str) -> dict[str, Any]:
        return {
            "_class": "org.jenkinsci.plugins.workflow.job.WorkflowRun", "number": self.number, "url": url,
            "building": self.building, "result": self.result, "description": self.description,
            "displayName": f"#{self.number}", "fullDisplayName": f"{' » '.join(self.job)} #{self.number}",
            "timestamp": 1733360000000, "duration": 0,
            "artifacts": [{"displayPath": p.rsplit("/", 1)[-1], "fileName": p.rsplit("/", 1)[-1], "relativePath": p}
                          for p in sorted(self.artifacts)],
        }


def _tree(value: dict[str, Any], tree: str) -> dict[str, Any]:
    """``value`` cut down to ``tree`` (``a,b,artifacts[relativePath]``), as Jenkins' ``tree=`` does."""
    out: dict[str, Any] = {"_class": value.get("_class")}
    for part in re.findall(r"[A-Za-z_]+(?:\[[^\]]*\])?(?:\{[^}]*\})?", tree):
        name = part.split("[")[0].split("{")[0]
        if name not in value:
            continue
        sub = re.search(r"\[([^\]]*)\]", part)
        if sub and isinstance(value[name], list):
            keys = sub.group(1).split(",")
            out[name] = [{k: item[k] for k in keys if k in item} for item in value[name]]
        else:
            out[name] = value[name]
    return out


def _ant_glob(workspace: Path, pattern: str) -> list[Path]:
    """The files an Ant pattern (``junit``'s and ``archiveArtifacts``' syntax) names: ``dir/**`` is every file below."""
    if pattern.endswith("**"):
        pattern += "/*"
    return [p for p in workspace.glob(pattern) if p.is_file()]


def _page(status: int, message: str) -> Reply:
    """Jenkins' (Jetty's) error page: the message in the title, the heading and the table."""
    text = html.escape(message)
    body = (f"<html><head><title>Error {status} {text}</title></head><body><h2>HTTP ERROR {status} {text}</h2>"
            f"<table><tr><th>STATUS:</th><td>{status}</td></tr><tr><th>MESSAGE:</th><td>{text}</td></tr></table>"
            "</body></html>")
    return Reply(status, body.encode(), content_type="text/html;charset=iso-8859-1")


class FakeJenkins(FakeServer):
    """Start with ``with FakeJenkins(users={"bot": "token"}) as jenkins:``; ``jenkins.url`` is ``JENKINS_URL``
    (with a context path, ``/jenkins``, as many installations have)."""

    fault_kinds = ("500", "502", "503", "reset", "lost")

    def __init__(self, *, users: dict[str, str] | None = None, crumbs: bool = True, **kit: Any) -> None:
        super().__init__(prefix="/jenkins", **kit)
        self.users = users if users is not None else {"ci-bot": "11aa22bb33cc44dd55ee66ff77889900aa"}
        self.crumbs = crumbs
        self.builds: dict[tuple[tuple[str, ...], int], Build] = {}
        self.folders: set[tuple[str, ...]] = set()
        self._sessions: dict[str, str] = {}  # session id -> crumb
        self._ids = itertools.count(1)

    # --- test helpers --------------------------------------------------------------------------------

    def add_build(self, job_name: str, number: int) -> Build:
        """A running build of ``job_name`` (``JOB_NAME``: ``org/repo/PR-7``); its folders are created too."""
        job = tuple(job_name.strip("/").split("/"))
        with self.lock:
            for i in range(1, len(job)):
                self.folders.add(job[:i])
            build = self.builds[(job, number)] = Build(job, number)
        return build

    def build_url(self, job_name: str, number: int) -> str:
        """``BUILD_URL`` of a build (every name one segment, percent-encoded)."""
        return self.url + "".join(f"/job/{quote(p, safe='')}" for p in job_name.strip("/").split("/")) + f"/{number}/"

    def build(self, job_name: str, number: int) -> Build:
        with self.lock:
            return self.builds[(tuple(job_name.strip("/").split("/")), number)]

    def restart(self) -> None:
        """Jenkins restarted: every web session (and the crumb bound to it) is gone."""
        with self.lock:
            self._sessions.clear()

    def archive(self, build: Build, workspace: Path, pattern: str) -> list[str]:
        """``archiveArtifacts pattern`` at the end of the build: every matching workspace file, by relative path."""
        found = sorted(p for p in _ant_glob(workspace, pattern) if not p.name.startswith("."))
        with self.lock:
            for path in found:
                build.artifacts[path.relative_to(workspace).as_posix()] = path.read_bytes()
        return [p.relative_to(workspace).as_posix() for p in found]

    def record_junit(self, build: Build, workspace: Path, pattern: str) -> dict[str, Any] | None:
        """``junit pattern``: the matching JUnit XML files as the build's test report (junit plugin's JSON)."""
        suites, counts = [], {"passCount": 0, "failCount": 0, "skipCount": 0}
        for path in sorted(_ant_glob(workspace, pattern)):
            root = ET.parse(path).getroot()
            for suite in ([root] if root.tag == "testsuite" else root.iter("testsuite")):
                cases = []
                for case in suite.iter("testcase"):
                    failed = case.find("failure") is not None or case.find("error") is not None
                    skipped = case.find("skipped") is not None
                    status = "FAILED" if failed else ("SKIPPED" if skipped else "PASSED")
                    counts[{"FAILED": "failCount", "SKIPPED": "skipCount", "PASSED": "passCount"}[status]] += 1
                    cases.append({"className": case.get("classname"), "name": case.get("name"), "status": status,
                                  "duration": float(case.get("time") or 0), "skipped": skipped})
                suites.append({"name": suite.get("name"), "cases": cases})
        if not suites:
            return None
        report = {"_class": "hudson.tasks.junit.TestResult", "duration": 0.0, "empty": False, **counts,
                  "suites": suites}
        with self.lock:
            build.test_report = report
        return report

    # --- hooks ---------------------------------------------------------------------------------------

    def error(self, status: int, message: str) -> Reply:
        return _page(status, message)

    def gate(self, rec: Recorded) -> Reply | None:
        auth = rec.headers.get("authorization", "")
        if not auth.startswith("Basic "):
            return _page(403, "Authentication required")
        try:
            user, _, token = base64.b64decode(auth[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return _page(401, "Invalid password/token for user")
        if self.users.get(user) != token:
            return _page(401, f"Invalid password/token for user: {user}")
        if rec.method == "POST" and self.crumbs and not self._crumb_ok(rec):
            return _page(403, "No valid crumb was included in the request")
        return None

    def _crumb_ok(self, rec: Recorded) -> bool:
        crumb = rec.headers.get("jenkins-crumb")
        cookies = dict(p.strip().split("=", 1) for p in rec.headers.get("cookie", "").split(";") if "=" in p)
        with self.lock:
            return crumb is not None and any(name.startswith("JSESSIONID.") and self._sessions.get(value) == crumb
                                            for name, value in cookies.items())

    def respond(self, rec: Recorded) -> Reply:
        path = rec.path[len(self.prefix):] if rec.path.startswith(self.prefix + "/") else None
        if path is None:
            return self._unknown(rec)
        if path == "/whoAmI/api/json" and rec.method == "GET":
            user = self._user(rec)
            return Reply(200, {"_class": "hudson.security.WhoAmI", "anonymous": False, "authenticated": True,
                               "authorities": ["authenticated"], "name": user})
        if path == "/crumbIssuer/api/json" and rec.method == "GET":
            if not self.crumbs:
                return _page(404, "Not Found")
            session, crumb = secrets.token_hex(8), secrets.token_hex(16)
            self._sessions[session] = crumb
            return Reply(200, {"_class": "hudson.security.csrf.DefaultCrumbIssuer", "crumb": crumb,
                               "crumbRequestField": "Jenkins-Crumb"},
                         {"Set-Cookie": f"JSESSIONID.{next(self._ids):08x}={session}; Path=/jenkins; HttpOnly"})
        found = self._build_of(path)
        if found is None:
            return self._unknown(rec)
        build, rest = found
        if rest == "/api/json" and rec.method == "GET":
            tree = (rec.query.get("tree") or [None])[0]
            if tree is not None and not _TREE.match(tree):
                self.violation(f"GET {rec.path}: malformed tree={tree!r}")
                return _page(400, f"Malformed tree parameter: {tree}")
            data = build.api(self.build_url("/".join(build.job), build.number))
            return Reply(200, _tree(data, tree) if tree else data)
        if rest == "/submitDescription" and rec.method == "POST":
            return self._submit_description(rec, build)
        if rest == "/testReport/api/json" and rec.method == "GET":
            if build.test_report is None:
                return _page(404, "Not Found")
            tree = (rec.query.get("tree") or [None])[0]
            return Reply(200, _tree(build.test_report, tree) if tree else build.test_report)
        if rest.startswith("/artifact/") and rec.method == "GET":
            content = build.artifacts.get(unquote(rest[len("/artifact/"):]))
            return Reply(200, content, content_type="application/octet-stream") if content is not None else \
                _page(404, "Not Found")
        return self._unknown(rec)

    def _user(self, rec: Recorded) -> str:
        return base64.b64decode(rec.headers["authorization"][6:]).decode().partition(":")[0]

    def _unknown(self, rec: Recorded) -> Reply:
        self.violation(f"{rec.method} {rec.path}: no such endpoint")
        return _page(404, "Not Found")

    def _build_of(self, path: str) -> tuple[Build, str] | None:
        """The build a ``/job/…/job/<name>/<n>/rest`` path names (folders walked, names decoded once)."""
        match = re.match(r"^((?:/job/[^/]+)+)/(\d+)(/.*)?$", path)
        if match is None:
            return None
        job = tuple(unquote(p) for p in match.group(1).split("/job/")[1:])
        build = self.builds.get((job, int(match.group(2))))
        return (build, match.group(3) or "/") if build is not None else None

    def _submit_description(self, rec: Recorded, build: Build) -> Reply:
        if not rec.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            self.violation(f"POST {rec.path}: the description is not form-encoded")
            return _page(400, "Bad Request: expected a form")
        form = parse_qs(rec.raw.decode("utf-8"), keep_blank_values=True)
        if "description" not in form:
            self.violation(f"POST {rec.path}: no description field")
            return _page(400, "Bad Request: no description")
        build.description = form["description"][0]
        return Reply(302, None, {"Location": self.build_url("/".join(build.job), build.number)})
