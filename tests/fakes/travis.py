"""A fake Travis CI API v3 on 127.0.0.1 (the fake kit's server): the reads a job's tools make.

Travis publishes no machine-readable description of API v3, so the fake checks the documented contract itself
(developer.travis-ci.com): every request carries ``Travis-API-Version: 3`` and ``Authorization: token …`` (a
request without the version header, or a write — nothing a job sends writes — is a violation that fails the
test); answers are hypermedia (``@type``, ``@href``, ``@representation``), lists carry ``@pagination`` with
``limit``/``offset`` and a ``next`` ``@href``; errors are ``{"@type": "error", "error_type", "error_message"}``:
403 ``login_required`` without a known token, 404 ``not_found``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlencode

from ._server import FakeServer, Recorded, Reply

__all__ = ["FakeTravis", "Build"]

_ROUTES = (("build", re.compile(r"^/build/(\d+)$")), ("job", re.compile(r"^/job/(\d+)$")),
           ("builds", re.compile(r"^/repo/([^/]+)/builds$")))


@dataclass
class Build:
    id: int
    number: str
    state: str
    slug: str
    sha: str
    pull_request_number: int | None = None
    jobs: tuple[int, ...] = ()


class FakeTravis(FakeServer):
    """``with FakeTravis(tokens={...}) as travis:``; ``travis.url`` is the API base URL."""

    def __init__(self, *, tokens: set[str] | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        self.tokens = tokens or {"travis-token"}
        self.builds: dict[int, Build] = {}

    def add_build(self, build: Build) -> None:
        with self.lock:
            self.builds[build.id] = build

    def error(self, status: int, message: str, kind: str = "error") -> Reply:
        return Reply(status, {"@type": "error", "error_type": kind, "error_message": message})

    def gate(self, rec: Recorded) -> Reply | None:
        if rec.headers.get("travis-api-version") != "3":
            self.violation(f"{rec.method} {rec.path}: no Travis-API-Version: 3 header")
            return self.error(400, "API version 3 expected", "wrong_params")
        if rec.method != "GET":
            self.violation(f"{rec.method} {rec.path}: a job's tools only read API v3")
            return self.error(405, "method not allowed", "method_not_allowed")
        auth = rec.headers.get("authorization", "")
        if not auth.startswith("token ") or auth[6:] not in self.tokens:
            return self.error(403, "login required", "login_required")
        if not any(rx.match(rec.path) for _, rx in _ROUTES):
            self.violation(f"GET {rec.path}: not an API v3 resource the fake knows")
            return self.error(404, "resource not found (or insufficient access)", "not_found")
        return None

    def _build(self, b: Build, representation: str = "standard") -> dict[str, Any]:
        out: dict[str, Any] = {"@type": "build", "@href": f"/build/{b.id}", "@representation": representation,
                               "id": b.id, "number": b.number, "state": b.state}
        if representation == "standard":
            out.update(event_type="pull_request" if b.pull_request_number else "push",
                       pull_request_number=b.pull_request_number,
                       repository={"@type": "repository", "@href": f"/repo/{b.slug.replace('/', '%2F')}",
                                   "@representation": "minimal", "slug": b.slug},
                       commit={"@type": "commit", "@representation": "minimal", "sha": b.sha},
                       jobs=[{"@type": "job", "@href": f"/job/{j}", "@representation": "minimal", "id": j}
                             for j in b.jobs])
        return out

    def respond(self, rec: Recorded) -> Reply:
        kind, found = next((k, rx.match(rec.path)) for k, rx in _ROUTES if rx.match(rec.path))
        assert found is not None
        if kind == "build":
            build = self.builds.get(int(found.group(1)))
            return Reply(200, self._build(build)) if build else self.error(404, "build not found", "not_found")
        if kind == "job":
            job = int(found.group(1))
            build = next((b for b in self.builds.values() if job in b.jobs), None)
            if build is None:
                return self.error(404, "job not found", "not_found")
            return Reply(200, {"@type": "job", "@href": f"/job/{job}", "@representation": "standard", "id": job,
                               "state": build.state, "build": self._build(build, "minimal")})
        slug = unquote(found.group(1))
        builds = sorted((b for b in self.builds.values() if b.slug == slug), key=lambda b: -b.id)
        limit = int((rec.query.get("limit") or ["25"])[0])
        offset = int((rec.query.get("offset") or ["0"])[0])
        page = builds[offset:offset + limit]
        nxt = None
        if offset + limit < len(builds):
            nxt = {"@href": f"{rec.path}?{urlencode({'limit': limit, 'offset': offset + limit})}",
                   "offset": offset + limit, "limit": limit}
        return Reply(200, {"@type": "builds", "@href": rec.path, "@representation": "standard",
                           "@pagination": {"limit": limit, "offset": offset, "count": len(builds),
                                           "is_first": offset == 0, "is_last": nxt is None, "next": nxt},
                           "builds": [self._build(b) for b in page]})
