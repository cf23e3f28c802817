"""A tiny CI with commit statuses and pull-request comments, served on 127.0.0.1 for the throwaway provider
that proves a provider needs only its four places (tests/providers/test_tinyci.py).

API (JSON, ``Authorization: Bearer <token>``, under ``/api``):

* ``POST /api/repos/{owner}/{repo}/statuses/{sha}`` ``{"state", "context", "description"?}`` → 201; one status per
  (sha, context), the latest wins; ``GET`` the same path lists them;
* ``GET|POST /api/repos/{owner}/{repo}/pulls/{n}/comments`` ``{"body"}`` → 200 list / 201 comment;
* ``PATCH|DELETE /api/repos/{owner}/{repo}/comments/{id}`` → 200 / 204.

Every request is checked (token, JSON, required and known fields, state values); what breaks the rules answers
4xx and is recorded in ``violations``. ``fail_next(n)`` answers the next *n* writes 503 (no write happens).
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FakeTinyCI"]

STATES = {"pending", "success", "failure", "error"}
_STATUS = re.compile(r"^/api/repos/([^/]+)/([^/]+)/statuses/([0-9a-f]{7,40})$")
_COMMENTS = re.compile(r"^/api/repos/([^/]+)/([^/]+)/pulls/(\d+)/comments$")
_COMMENT = re.compile(r"^/api/repos/([^/]+)/([^/]+)/comments/(\d+)$")


class FakeTinyCI:
    """The fake's state and its loopback server (a context manager)."""

    def __init__(self, token: str = "tiny-token") -> None:
        self.token = token
        self.statuses: dict[tuple[str, str, str], dict[str, Any]] = {}  # (repo, sha, context) -> status
        self.comments: dict[int, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        self.violations: list[str] = []
        self._failures = 0
        self.failed = 0  # writes answered 503 by fail_next
        self._next_id = 1
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/api"

    def __enter__(self) -> FakeTinyCI:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fail_next(self, count: int) -> None:
        """The next *count* writes answer 503 without writing."""
        self._failures = count

    def status_of(self, repo: str, sha: str, context: str) -> dict[str, Any] | None:
        return self.statuses.get((repo, sha, context))

    # --- the API ----------------------------------------------------------------------------------

    def handle(self, method: str, path: str, headers: Any, raw: bytes) -> tuple[int, Any]:
        with self._lock:
            self.requests.append((method, path))
            if headers.get("Authorization") != f"Bearer {self.token}":
                return self._violation(401, f"{method} {path}: no or wrong bearer token")
            body: Any = None
            if method in ("POST", "PATCH"):
                try:
                    body = json.loads(raw or b"null")
                except ValueError:
                    return self._violation(400, f"{method} {path}: body is not JSON")
                if not isinstance(body, dict):
                    return self._violation(400, f"{method} {path}: body is not an object")
                if self._failures:
                    self._failures -= 1
                    self.failed += 1
                    return 503, {"message": "try again"}
            if (m := _STATUS.match(path)) is not None:
                return self._status(method, f"{m[1]}/{m[2]}", m[3], body)
            if (m := _COMMENTS.match(path)) is not None:
                return self._comments(method, f"{m[1]}/{m[2]}", int(m[3]), body)
            if (m := _COMMENT.match(path)) is not None:
                return self._comment(method, f"{m[1]}/{m[2]}", int(m[3]), body)
            return self._violation(404, f"{method} {path}: no such endpoint")

    def _violation(self, status: int, message: str) -> tuple[int, Any]:
        self.violations.append(message)
        return status, {"message": message}

    def _status(self, method: str, repo: str, sha: str, body: Any) -> tuple[int, Any]:
        if method == "GET":
            return 200, [s for (r, h, _), s in self.statuses.items() if (r, h) == (repo, sha)]
        if method != "POST":
            return self._violation(405, f"{method} on statuses")
        unknown = set(body) - {"state", "context", "description"}
        if unknown or body.get("state") not in STATES or not isinstance(body.get("context"), str):
            return self._violation(422, f"bad status {body!r}")
        status = {"id": self._new_id(), **body}
        self.statuses[(repo, sha, body["context"])] = status
        return 201, status

    def _comments(self, method: str, repo: str, pr: int, body: Any) -> tuple[int, Any]:
        if method == "GET":
            return 200, [c for c in self.comments.values() if (c["repo"], c["pr"]) == (repo, pr)]
        if method != "POST":
            return self._violation(405, f"{method} on comments")
        if set(body) != {"body"} or not isinstance(body["body"], str):
            return self._violation(422, f"bad comment {body!r}")
        comment = {"id": self._new_id(), "repo": repo, "pr": pr, "body": body["body"]}
        self.comments[comment["id"]] = comment
        return 201, comment

    def _comment(self, method: str, repo: str, cid: int, body: Any) -> tuple[int, Any]:
        comment = self.comments.get(cid)
        if comment is None or comment["repo"] != repo:
            return 404, {"message": "no such comment"}
        if method == "DELETE":
            del self.comments[cid]
            return 204, None
        if method == "PATCH" and set(body) == {"body"} and isinstance(body["body"], str):
            comment["body"] = body["body"]
            return 200, comment
        return self._violation(422, f"{method} comment {body!r}")

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id


def _handler(fake: FakeTinyCI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, body = fake.handle(self.command, self.path.split("?")[0], self.headers, raw)
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            if data:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_DELETE = _serve

        def log_message(self, *args: Any) -> None:
            pass

    return Handler
