"""A tiny CI with commit statuses and pull-request comments, on the fake kit (``_server.py``), for the throwaway
provider that proves a provider needs only its four places (tests/providers/test_tinyci.py).

API (JSON, ``Authorization: Bearer <token>``, under ``/api``):

* ``POST /api/repos/{owner}/{repo}/statuses/{sha}`` ``{"state", "context", "description"?}`` → 201; one status per
  (sha, context), the latest wins; ``GET`` the same path lists them;
* ``GET|POST /api/repos/{owner}/{repo}/pulls/{n}/comments`` ``{"body"}`` → 200 list / 201 comment;
* ``PATCH|DELETE /api/repos/{owner}/{repo}/comments/{id}`` → 200 / 204.

There is no official spec: ``gate`` checks the token and ``respond`` every body (required and known fields, state
values); what breaks the rules answers 4xx and is recorded as a violation. Faults come from the kit.
"""

from __future__ import annotations

import re
from typing import Any

from ._server import FakeServer, Recorded, Reply

__all__ = ["FakeTinyCI"]

STATES = {"pending", "success", "failure", "error"}
_STATUS = re.compile(r"^/api/repos/([^/]+)/([^/]+)/statuses/([0-9a-f]{7,40})$")
_COMMENTS = re.compile(r"^/api/repos/([^/]+)/([^/]+)/pulls/(\d+)/comments$")
_COMMENT = re.compile(r"^/api/repos/([^/]+)/([^/]+)/comments/(\d+)$")


class FakeTinyCI(FakeServer):
    """Statuses and comments of one tiny CI (``fake.url`` is its API base)."""

    def __init__(self, token: str = "tiny-token", **kw: Any) -> None:
        super().__init__(prefix="/api", **kw)
        self.token = token
        self.statuses: dict[tuple[str, str, str], dict[str, Any]] = {}  # (repo, sha, context) -> status
        self.comments: dict[int, dict[str, Any]] = {}
        self._next_id = 1

    def status_of(self, repo: str, sha: str, context: str) -> dict[str, Any] | None:
        return self.statuses.get((repo, sha, context))

    def gate(self, rec: Recorded) -> Reply | None:
        if rec.headers.get("authorization") != f"Bearer {self.token}":
            self.violation(f"{rec.method} {rec.path}: no or wrong bearer token")
            return self.error(401, "bad credentials")
        if rec.method in ("POST", "PATCH") and not isinstance(rec.body, dict):
            self.violation(f"{rec.method} {rec.path}: body is not a JSON object")
            return self.error(400, "expected a JSON object")
        return None

    def respond(self, rec: Recorded) -> Reply:
        if (m := _STATUS.match(rec.path)) is not None:
            return self._status(rec, f"{m[1]}/{m[2]}", m[3])
        if (m := _COMMENTS.match(rec.path)) is not None:
            return self._comments(rec, f"{m[1]}/{m[2]}", int(m[3]))
        if (m := _COMMENT.match(rec.path)) is not None:
            return self._comment(rec, f"{m[1]}/{m[2]}", int(m[3]))
        self.violation(f"{rec.method} {rec.path}: no such endpoint")
        return self.error(404, "not found")

    def _refuse(self, status: int, message: str) -> Reply:
        self.violation(message)
        return self.error(status, message)

    def _status(self, rec: Recorded, repo: str, sha: str) -> Reply:
        if rec.method == "GET":
            return Reply(200, [s for (r, h, _), s in self.statuses.items() if (r, h) == (repo, sha)])
        body = rec.body
        if rec.method != "POST":
            return self._refuse(405, f"{rec.method} on statuses")
        if set(body) - {"state", "context", "description"} or body.get("state") not in STATES \
                or not isinstance(body.get("context"), str):
            return self._refuse(422, f"bad status {body!r}")
        status = {"id": self._new_id(), **body}
        self.statuses[(repo, sha, body["context"])] = status
        return Reply(201, status)

    def _comments(self, rec: Recorded, repo: str, pr: int) -> Reply:
        if rec.method == "GET":
            return Reply(200, [c for c in self.comments.values() if (c["repo"], c["pr"]) == (repo, pr)])
        if rec.method != "POST":
            return self._refuse(405, f"{rec.method} on comments")
        if set(rec.body) != {"body"} or not isinstance(rec.body["body"], str):
            return self._refuse(422, f"bad comment {rec.body!r}")
        comment = {"id": self._new_id(), "repo": repo, "pr": pr, "body": rec.body["body"]}
        self.comments[comment["id"]] = comment
        return Reply(201, comment)

    def _comment(self, rec: Recorded, repo: str, cid: int) -> Reply:
        comment = self.comments.get(cid)
        if comment is None or comment["repo"] != repo:
            return self.error(404, "no such comment")
        if rec.method == "DELETE":
            del self.comments[cid]
            return Reply(204)
        if rec.method == "PATCH" and set(rec.body) == {"body"} and isinstance(rec.body["body"], str):
            comment["body"] = rec.body["body"]
            return Reply(200, comment)
        return self._refuse(422, f"{rec.method} comment {rec.body!r}")

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id
