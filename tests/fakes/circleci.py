"""A fake CircleCI API v2 on 127.0.0.1 (the fake kit's server), serving ``/api/v2`` for what the provider reads, and
the job's collect steps that feed it.

Every request is validated against CircleCI's official OpenAPI description
(``circleci/circleci-api-v2-openapi.json``); a violation answers 422 and fails the test unless announced.
CircleCI's behaviour where our client could notice it:

* ``Circle-Token`` header (or Basic with the token as the user name); none: 401 ``{"message": "You must log in
  first."}``; an unknown token or a project it cannot see: 404 ``{"message": "Project not found"}``;
* project slugs ``gh/…``, ``bb/…``, ``circleci/<org-id>/<project-id>``, their ``/`` URL-escaped in the path;
* ``GET /project/{slug}/job/{job-number}`` answers the job's details once the job exists (:meth:`FakeCircleCI.job`);
* ``GET /project/{slug}/{job-number}/artifacts`` and ``…/tests`` answer ``{items, next_page_token}`` pages
  (``page_size`` items each; the token is opaque and goes back as ``page-token``, which the spec's response
  describes but its parameter list leaves out — accepted on exactly these two operations);
* nothing is listed before the job's steps ran: :meth:`FakeCircleCI.store_artifacts` and
  :meth:`FakeCircleCI.store_test_results` are those steps (they read the staged folder the way CircleCI does,
  the artifacts per node with their ``node_index``), and the artifact URLs serve the stored bytes;
* faults from the kit (429/5xx/resets).
"""

from __future__ import annotations

import base64
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from ._server import FakeServer, Recorded, Reply
from .spec import OpenApiSpec

__all__ = ["FakeCircleCI"]

PREFIX = "/api/v2"
_PAGED = {"getJobArtifacts", "getTests"}


@dataclass
class _Job:
    uuid: str = field(default_factory=lambda: str(uuid.uuid4()))
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    tests: list[dict[str, Any]] = field(default_factory=list)
    #: URL path → stored bytes
    content: dict[str, bytes] = field(default_factory=dict)


def _token(rec: Recorded) -> str | None:
    token = rec.headers.get("circle-token")
    if token:
        return token
    auth = rec.headers.get("authorization", "")
    if auth.startswith("Basic "):
        return base64.b64decode(auth[6:]).decode().split(":", 1)[0]
    return None


class FakeCircleCI(FakeServer):
    """``with FakeCircleCI(spec, tokens={...}, projects={...}) as circle:``; ``circle.url`` is the API base URL."""

    def __init__(self, spec: OpenApiSpec, *, tokens: set[str] | None = None, projects: set[str] | None = None,
                 page_size: int = 5, **kw: Any) -> None:
        super().__init__(spec=spec, prefix=PREFIX, **kw)
        self.tokens = tokens or {"circle-token"}
        self.projects = projects or {"gh/octo/repo"}
        self.page_size = page_size
        self.jobs: dict[tuple[str, int], _Job] = {}

    # --- the job's collect steps --------------------------------------------------------------------

    def job(self, slug: str, number: int) -> _Job:
        with self.lock:
            return self.jobs.setdefault((slug, number), _Job())

    def store_artifacts(self, slug: str, number: int, folder: Path, *, destination: str | None = None,
                        node_index: int = 0) -> int:
        """The job's ``store_artifacts`` step on one node: every file under ``folder`` (a missing folder stores
        nothing), listed as ``<destination>/<relative path>``; returns how many."""
        job = self.job(slug, number)
        prefix = (destination or folder.name).strip("/")
        files = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
        with self.lock:
            for path in files:
                listed = f"{prefix}/{path.relative_to(folder).as_posix()}"
                url_path = f"/output/job/{job.uuid}/artifacts/{node_index}/{listed}"
                job.artifacts = [a for a in job.artifacts if (a["path"], a["node_index"]) != (listed, node_index)]
                job.artifacts.append({"path": listed, "node_index": node_index, "url": self.origin + url_path})
                job.content[url_path] = path.read_bytes()
        return len(files)

    def store_test_results(self, slug: str, number: int, folder: Path) -> int:
        """The job's ``store_test_results`` step: every JUnit XML file under ``folder``; returns the test count."""
        job = self.job(slug, number)
        found = []
        for path in sorted(folder.rglob("*.xml")) if folder.is_dir() else []:
            for case in ET.parse(path).getroot().iter("testcase"):
                failure = case.find("failure") if case.find("failure") is not None else case.find("error")
                result = "failure" if failure is not None else ("skipped" if case.find("skipped") is not None
                                                                else "success")
                found.append({"message": failure.get("message") if failure is not None else None,
                              "source": "unknown", "run_time": float(case.get("time") or 0),
                              "file": case.get("file") or "", "result": result, "name": case.get("name") or "",
                              "classname": case.get("classname") or ""})
        with self.lock:
            job.tests.extend(found)
        return len(found)

    def artifacts(self, slug: str, number: int) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(a) for a in self.job(slug, number).artifacts]

    def content(self, url: str) -> bytes | None:
        """What an artifact URL serves."""
        with self.lock:
            for job in self.jobs.values():
                for path, data in job.content.items():
                    if url == self.origin + path:
                        return data
        return None

    # --- the kit's hooks -------------------------------------------------------------------------------

    def error(self, status: int, message: str) -> Reply:
        return Reply(status, {"message": message})

    def gate(self, rec: Recorded) -> Reply | None:
        if rec.method == "GET" and rec.path.startswith("/output/job/"):
            return None  # the artifact host (public project): no token
        if not rec.path.startswith(PREFIX + "/"):
            return self.error(404, "Not found")
        token = _token(rec)
        if token is None:
            return self.error(401, "You must log in first.")
        page = rec.query.pop("page-token", None)
        try:
            checked = self.check_spec(rec, rec.path[len(PREFIX):])
        finally:
            if page is not None:
                rec.query["page-token"] = page
        if isinstance(checked, Reply):
            return checked
        if page is not None and rec.operation not in _PAGED:
            self.violation(f"{rec.operation}: page-token is not a parameter of this operation")
            return self.error(400, "Unknown parameter page-token")
        if token not in self.tokens:
            return self.error(404, "Project not found")
        return None

    def resource(self, rec: Recorded) -> str:
        return f"{rec.method} {rec.path} {rec.query.get('page-token')}"

    def respond(self, rec: Recorded) -> Reply:
        if rec.path.startswith("/output/job/"):
            for job in self.jobs.values():
                if rec.path in job.content:
                    return Reply(200, job.content[rec.path])
            return self.error(404, "Not found")
        slug = unquote(rec.params.get("project-slug", ""))
        if slug not in self.projects:
            return self.error(404, "Project not found")
        number = rec.params.get("job-number", "")
        if not number.isdigit():
            return self.error(400, f"Invalid job number {number!r}")
        job = self.jobs.get((slug, int(number)))
        if rec.operation == "getJobDetails":
            if job is None:
                return self.error(404, "Job not found")
            return Reply(200, {"number": int(number), "name": "test", "status": "running",
                               "web_url": f"https://app.circleci.com/pipelines/{slug}/1/workflows/w/jobs/{number}",
                               "project": {"id": "00000000-0000-0000-0000-000000000001", "slug": slug,
                                           "name": slug.rsplit("/", 1)[-1], "external_url": "https://example"},
                               "parallel_runs": [], "started_at": "2026-01-01T00:00:00Z", "parallelism": 1,
                               "latest_workflow": {"id": "00000000-0000-0000-0000-000000000002", "name": "test"},
                               "executor": {"resource_class": "medium"}, "messages": [], "contexts": [],
                               "organization": {"name": slug.split("/")[1]}, "queued_at": "2026-01-01T00:00:00Z",
                               "pipeline": {"id": "00000000-0000-0000-0000-000000000003"}, "duration": None,
                               "created_at": "2026-01-01T00:00:00Z", "stopped_at": None})
        if rec.operation in _PAGED:
            items = (job.artifacts if rec.operation == "getJobArtifacts" else job.tests) if job else []
            return Reply(200, self._page(items, rec))
        return self.error(404, "Not found")

    def _page(self, items: list[dict[str, Any]], rec: Recorded) -> dict[str, Any]:
        token = (rec.query.get("page-token") or [""])[0]
        start = int(base64.urlsafe_b64decode(token.encode()).decode()) if token else 0
        end = start + self.page_size
        nxt = base64.urlsafe_b64encode(str(end).encode()).decode() if end < len(items) else None
        return {"items": [dict(i) for i in items[start:end]], "next_page_token": nxt}
