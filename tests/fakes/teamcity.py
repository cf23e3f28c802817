"""A fake TeamCity REST API on the fake kit (``_server.py``): one running build, its log of service messages, status
text, tags and artifacts, validated against TeamCity's own REST description (``teamcity/teamcity-2018.1-swagger.json``).

Routes (``Authorization: Bearer <token>``; JSON asked for with ``Accept: application/json``):

* ``POST /app/rest/builds/id:N/log`` (``text/plain``): service messages, parsed with the grammar parser of
  :mod:`fakes.teamcity_messages` (a broken message is a 400 and a violation) and applied in order: tests
  become test occurrences, ``addBuildTag``/``removeBuildTag`` change the tags, ``buildProblem`` is kept.
  Newer servers have this endpoint ("service messages are accepted"); the 2018.1 description does not, so only
  this route is checked by hand;
* ``GET|PUT /app/rest/builds/id:N/statusText`` (``text/plain``), ``GET|POST|PUT /app/rest/builds/id:N/tags``;
* ``GET /app/rest/builds/id:N`` and ``GET /app/rest/builds/id:N/artifacts/content/<path>`` (files the test puts
  there with :meth:`FakeTeamCity.publish`, as the agent would after ``publishArtifacts``).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

from ._server import FakeServer, Recorded, Reply
from .spec import require_spec
from .teamcity_messages import Message, ParseError, parse_stream

__all__ = ["FakeTeamCity", "SPEC"]

SPEC = "teamcity/teamcity-2018.1-swagger.json"
_BUILD = re.compile(r"^/app/rest/builds/id:(\d+)(?:/(.*))?$")


def _spec() -> Any:
    """The 2018.1 description, its artifact routes taught that ``{path}`` spans segments: TeamCity declares them as
    Jersey's ``{path:(/.*)?}``, which a Swagger path template cannot say."""
    spec = require_spec(SPEC)
    for route in spec.routes:
        if route.template.endswith("{path}") and "/artifacts/" in route.template:
            group = next(g for g, name in route.groups.items() if name == "path")
            route.regex = re.compile(route.regex.pattern.replace(f"(?P<{group}>[^/]+)$", f"(?P<{group}>/.+)$"))
    return spec


class FakeTeamCity(FakeServer):
    """One TeamCity server with one running build (``fake.url`` is the server URL)."""

    def __init__(self, build_id: int = 4711, token: str = "tc-token", **kw: Any) -> None:
        super().__init__(spec=_spec(), **kw)
        self.build_id = build_id
        self.token = token
        self.messages: list[Message] = []  # every service message the log took, in order
        self.status_text = ""
        self.tags: list[str] = []
        self.problems: list[dict[str, str]] = []
        self.artifacts: dict[str, bytes] = {}

    def publish(self, path: str, data: bytes) -> None:
        """An artifact of the build (what the agent uploads after ``publishArtifacts``)."""
        with self.lock:
            self.artifacts[path.strip("/")] = data

    def resource(self, rec: Recorded) -> str:
        return f"{rec.method} {rec.path.rsplit('/', 1)[-1] if '/log' in rec.path else rec.path}"

    def gate(self, rec: Recorded) -> Reply | None:
        if rec.headers.get("authorization") != f"Bearer {self.token}":
            self.violation(f"{rec.method} {rec.path}: no or wrong bearer token")
            return Reply(401, b"Authentication required", content_type="text/plain")
        if rec.method == "POST" and rec.path.endswith("/log"):
            if not rec.headers.get("content-type", "").startswith("text/plain"):
                self.violation(f"POST {rec.path}: content type {rec.headers.get('content-type')!r}, not text/plain")
                return self.error(415, "Unsupported media type")
            return None
        text_body = rec.path.endswith("/statusText") and rec.method == "PUT"
        # a text/plain body is not the JSON the 2018.1 description's generic body schema says: checked below
        saved, rec.raw = rec.raw, (b"" if text_body else rec.raw)
        try:
            checked = self.check_spec(rec, rec.path)
        finally:
            rec.raw = saved
        if isinstance(checked, Reply):
            return checked
        if text_body and not rec.headers.get("content-type", "").startswith("text/plain"):
            self.violation(f"PUT {rec.path}: status text must be text/plain")
            return self.error(415, "Unsupported media type")
        if rec.method == "GET" and "application/json" not in rec.headers.get("accept", "") \
                and "/artifacts/content/" not in rec.path:
            self.violation(f"GET {rec.path}: no Accept: application/json (TeamCity answers XML by default)")
        return None

    def error(self, status: int, message: str) -> Reply:
        return Reply(status, f"Error has occurred during request processing ({status}).\n{message}".encode(),
                     content_type="text/plain")

    def respond(self, rec: Recorded) -> Reply:
        m = _BUILD.match(rec.path)
        if m is None or int(m[1]) != self.build_id:
            return self.error(404, f"No build found by locator in {rec.path}")
        rest = m[2] or ""
        if rest == "" and rec.method == "GET":
            return Reply(200, {"id": self.build_id, "state": "running", "status": "SUCCESS",
                               "statusText": self.status_text, "webUrl": f"{self.url}/viewLog.html?buildId=1"})
        if rest == "log" and rec.method == "POST":
            return self._log(rec)
        if rest == "statusText":
            if rec.method == "PUT":
                self.status_text = rec.raw.decode()
            return Reply(200, self.status_text.encode(), content_type="text/plain")
        if rest == "tags":
            return self._tags(rec)
        if rest.startswith("artifacts/content/") and rec.method == "GET":
            data = self.artifacts.get(unquote(rest.removeprefix("artifacts/content/")))
            if data is None:
                return self.error(404, f"No artifact found by path {rest}")
            return Reply(200, data, content_type="application/octet-stream")
        return self.error(405, f"{rec.method} {rec.path} is not supported by this fake")

    def _log(self, rec: Recorded) -> Reply:
        try:
            messages = parse_stream(rec.raw.decode())
        except (ParseError, UnicodeDecodeError) as exc:
            self.violation(f"POST {rec.path}: not service messages: {exc}")
            return self.error(400, str(exc))
        for msg in messages:
            self.messages.append(msg)
            if msg.name == "addBuildTag" and msg.value and msg.value not in self.tags:
                self.tags.append(msg.value)
            elif msg.name == "removeBuildTag" and msg.value in self.tags:
                self.tags.remove(msg.value)
            elif msg.name == "buildProblem":
                self.problems.append(dict(msg.attrs))
        return Reply(200, b"", content_type="text/plain")

    def _tags(self, rec: Recorded) -> Reply:
        if rec.method in ("POST", "PUT"):
            body = rec.body if isinstance(rec.body, dict) else {}
            names = [t.get("name") for t in body.get("tag", []) if isinstance(t, dict)]
            if not names or not all(isinstance(n, str) and n for n in names):
                self.violation(f"{rec.method} {rec.path}: tags without names {rec.body!r}")
                return self.error(400, "tag name is required")
            if rec.method == "PUT":
                self.tags = []
            self.tags += [n for n in names if n not in self.tags]
        return Reply(200, {"count": len(self.tags), "tag": [{"name": t} for t in self.tags]})
