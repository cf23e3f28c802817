"""A fake GitHub REST API: a real HTTP/1.1 server on 127.0.0.1 (``ThreadingHTTPServer`` in a thread).

It behaves like GitHub where our client could notice: check runs (annotations appended per PATCH,
``filter=latest``), commit statuses, issue comments with ``Link`` pagination (``per_page`` capped at 100),
``x-ratelimit-*`` headers on every answer, 401 "Bad credentials", 403 "Resource not accessible by integration"
for check-run writes with a classic PAT and for any write with a read-only token, and GitHub's validation
quirks (422 for a summary over 65,535 UTF-8 bytes, a comment over 65,536 characters, a status description
over 140 characters, characters above U+FFFF in check-run output).

Every request is validated against the official OpenAPI description (path and query parameters, JSON body);
a violation answers 422 like GitHub and is recorded in ``violations`` — the fixture fails the test on any
violation it did not expect. Faults can be injected per route (429, 5xx, primary/secondary rate limits,
a reset before the change is made, a lost response after it is made) or at a seeded random rate.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from dataclasses import dataclass, field
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from .spec import OpenApiSpec

__all__ = ["FakeGitHub", "Fault", "FaultDice", "LoopbackServer", "Recorded"]

NOT_ACCESSIBLE = "Resource not accessible by integration"
SECONDARY = ("You have exceeded a secondary rate limit. Please wait a few minutes before you try again. "
             "If you reach out to GitHub Support for help, please include the request ID")
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
_IDS_IN_PATH = re.compile(r"/\d+(?=/|$)")
FAULT_KINDS = ("429", "500", "502", "503", "secondary", "secondary-no-header", "primary", "reset", "lost")


@dataclass
class Fault:
    """Answer the next ``times`` matching requests with ``kind`` instead of the real thing."""

    kind: str
    method: str | None = None
    path: str | None = None  # regex searched in the request path
    times: int = 1
    retry_after: int | None = 7
    #: also send ``Retry-After`` with a 5xx (random faults: a fast test without touching the retry policy)
    retry_after_on_5xx: bool = False

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (self.path is None or re.search(self.path, path)
                                                                   is not None)


class FaultDice:
    """Seeded random faults: one sequence for all requests, or (``per_resource``) decided per resource, where
    the n-th request for one resource (a route with its ids blanked, an artifact) gets the same answer however
    concurrent deliveries interleave — a seed then replays through a real daemon."""

    def __init__(self, seed: int, per_resource: bool = False) -> None:
        self.seed = seed
        self.per_resource = per_resource
        self._rng = random.Random(seed)
        self._seen: dict[str, int] = {}

    def roll(self, resource: str, rate: float, kinds: list[str]) -> str | None:
        """The fault kind for this request of ``resource`` (None: answer it properly)."""
        rng = self._rng
        if self.per_resource:
            n = self._seen[resource] = self._seen.get(resource, 0) + 1
            rng = random.Random(f"{self.seed}|{resource}|{n}")
        return rng.choice(kinds) if rng.random() < rate else None


@dataclass
class Recorded:
    """One request as the fake saw it."""

    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    headers: dict[str, str]
    status: int = 0
    operation: str | None = None


@dataclass
class _Repo:
    check_runs: dict[int, dict[str, Any]] = field(default_factory=dict)
    annotations: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    statuses: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    comments: dict[int, dict[str, Any]] = field(default_factory=dict)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class LoopbackServer(ThreadingHTTPServer):
    """A threading HTTP server that takes a client hanging up (a timeout, a closed pool) quietly."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


class _Dropped(Exception):
    """Close the connection without an answer."""


class FakeGitHub:
    """Start with ``with FakeGitHub(spec) as gh:``; ``gh.url`` is the API base URL to configure."""

    def __init__(
        self,
        spec: OpenApiSpec | None,
        *,
        tokens: dict[str, str] | None = None,
        prefix: str = "",
        rate_limit: int = 5000,
        fault_rate: float = 0.0,
        seed: int = 1,
        fault_kinds: tuple[str, ...] = ("502", "503", "429", "secondary", "reset", "lost"),
        fault_retry_after: int | None = 0,
        lost_methods: tuple[str, ...] = ("POST", "PATCH", "PUT", "DELETE"),
        per_resource_faults: bool = False,
    ) -> None:
        self.spec = spec
        #: token → kind: "app" (everything), "pat" (no check-run writes), "readonly" (no writes)
        self.tokens = tokens or {"app-token": "app", "ghp_classicpat": "pat", "readonly-token": "readonly"}
        self.prefix = prefix.rstrip("/")
        self.rate_limit = rate_limit
        self.fault_rate = fault_rate
        #: what a random fault can be ("lost" only ever hits writes); ``fault_retry_after`` is the
        #: ``Retry-After`` of random 429s, secondary limits and 5xx (``None``: no header); a random "lost"
        #: hits only ``lost_methods`` (``("POST",)``: creates only)
        self.fault_kinds = fault_kinds
        self.fault_retry_after = fault_retry_after
        self.lost_methods = lost_methods
        self._dice = FaultDice(seed, per_resource_faults)
        self.lock = threading.RLock()
        self.repos: dict[str, _Repo] = {}
        self.requests: list[Recorded] = []
        self.violations: list[str] = []
        self.expected_violations = 0
        self.faults: list[Fault] = []
        self._ids = iter(range(1000, 10**9))
        self._used: dict[str, int] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------------------

    def __enter__(self) -> FakeGitHub:
        fake = self

        class Handler(_Handler):
            owner = fake

        self._server = LoopbackServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{self.prefix}"

    # --- test helpers --------------------------------------------------------------------------------

    def inject(self, kind: str, method: str | None = None, path: str | None = None, times: int = 1,
               retry_after: int | None = 7) -> None:
        """Queue a fault for the next matching requests (see ``FAULT_KINDS``)."""
        assert kind in FAULT_KINDS, kind
        with self.lock:
            self.faults.append(Fault(kind, method, path, times, retry_after))

    def expect_violations(self, n: int = 1) -> None:
        """This test sends ``n`` spec-invalid requests on purpose."""
        self.expected_violations += n

    def repo(self, name: str = "octo/repo") -> _Repo:
        with self.lock:
            return self.repos.setdefault(name, _Repo())

    def check_runs(self, repo: str = "octo/repo") -> list[dict[str, Any]]:
        with self.lock:
            return [dict(c) for c in self.repo(repo).check_runs.values()]

    def annotations(self, check_id: int, repo: str = "octo/repo") -> list[dict[str, Any]]:
        with self.lock:
            return list(self.repo(repo).annotations.get(check_id, []))

    def comments(self, issue: int, repo: str = "octo/repo") -> list[dict[str, Any]]:
        with self.lock:
            return [dict(c) for c in self.repo(repo).comments.values() if c["issue"] == issue]

    def statuses(self, sha: str, repo: str = "octo/repo") -> list[dict[str, Any]]:
        """Newest first, as GitHub lists them."""
        with self.lock:
            return list(reversed(self.repo(repo).statuses.get(sha, [])))

    def calls(self, method: str | None = None, path: str | None = None) -> list[Recorded]:
        with self.lock:
            return [r for r in self.requests if (method is None or r.method == method)
                    and (path is None or re.search(path, r.path))]

    def add_comment(self, issue: int, body: str, login: str = "someone", repo: str = "octo/repo") -> dict[str, Any]:
        """A comment made by somebody else (or a leftover of ours)."""
        with self.lock:
            return self._new_comment(repo, issue, body, login)

    # --- behaviour -----------------------------------------------------------------------------------

    def _new_comment(self, repo: str, issue: int, body: str, login: str) -> dict[str, Any]:
        cid = next(self._ids)
        owner, name = repo.split("/")
        comment = {
            "id": cid, "node_id": f"IC_{cid}", "issue": issue, "body": body,
            "url": f"{self.url}/repos/{repo}/issues/comments/{cid}",
            "html_url": f"https://github.example/{owner}/{name}/pull/{issue}#issuecomment-{cid}",
            "issue_url": f"{self.url}/repos/{repo}/issues/{issue}",
            "user": {"login": login, "id": 1, "type": "Bot" if login.endswith("[bot]") else "User"},
            "created_at": _now(), "updated_at": _now(), "author_association": "NONE",
        }
        self.repo(repo).comments[cid] = comment
        return comment

    def _public_comment(self, c: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in c.items() if k != "issue"}

    def _check_view(self, repo: str, c: dict[str, Any]) -> dict[str, Any]:
        out = dict(c)
        out["output"] = dict(c["output"], annotations_count=len(self.repo(repo).annotations.get(c["id"], [])),
                             annotations_url=f"{self.url}/repos/{repo}/check-runs/{c['id']}/annotations")
        return out

    def _quirks(self, op: str, body: Any) -> str | None:
        """GitHub's checks beyond the OpenAPI schema (what a real server answers 422 for)."""
        if op in ("checks/create", "checks/update") and isinstance(body, dict):
            output = body.get("output") or {}
            for key in ("summary", "text"):
                value = output.get(key)
                if isinstance(value, str) and len(value.encode("utf-8")) > 65535:
                    return f"Invalid request.\n\nOnly 65535 characters are allowed; {len(value.encode())} were supplied."
            texts = [output.get("title"), output.get("summary"), output.get("text")]
            for ann in output.get("annotations") or []:
                texts += [ann.get("title"), ann.get("message"), ann.get("raw_details"), ann.get("path")]
                if len(ann.get("title") or "") > 255:
                    return "Invalid request.\n\nannotation title is too long (maximum is 255 characters)"
                for key in ("message", "raw_details"):
                    if len((ann.get(key) or "").encode()) > 65536:
                        return f"Invalid request.\n\nannotation {key} is too long (maximum is 64 KB)"
                if ann.get("start_line", 1) < 1:
                    return "Invalid request.\n\nstart_line must be at least 1"
            if any(isinstance(t, str) and _ASTRAL.search(t) for t in texts):
                return "Invalid request.\n\ncharacters above U+FFFF are not supported in check run output"
            if op == "checks/create" and body.get("status") == "completed" and not body.get("conclusion"):
                return "Invalid request.\n\nconclusion is required when status is completed"
        if op in ("issues/create-comment", "issues/update-comment") and isinstance(body, dict):
            if len(body.get("body") or "") > 65536:
                return "Validation Failed (Body is too long (maximum is 65536 characters))"
        if op == "repos/create-commit-status" and isinstance(body, dict):
            if len(body.get("description") or "") > 140:
                return "Validation Failed (description is too long (maximum is 140 characters))"
        return None

    def _page(self, items: list[Any], path: str, query: dict[str, list[str]]) -> tuple[list[Any], str | None]:
        per_page = min(100, max(1, int(query.get("per_page", ["30"])[0])))
        page = max(1, int(query.get("page", ["1"])[0]))
        last = max(1, -(-len(items) // per_page))
        chosen = items[(page - 1) * per_page: page * per_page]
        links = []

        def link(p: int, rel: str) -> str:
            q = {k: v[0] for k, v in query.items()}
            q.update(page=str(p), per_page=str(per_page))
            return f'<{self.url}{path}?{urlencode(q)}>; rel="{rel}"'

        if page < last:
            links += [link(page + 1, "next"), link(last, "last")]
        if page > 1:
            links += [link(1, "first"), link(page - 1, "prev")]
        return chosen, ", ".join(links) or None

    def handle(self, req: Recorded, route_op: str, pp: dict[str, str], login: str,
               kind: str) -> tuple[int, Any, dict[str, str]]:
        """The real behaviour of one (valid, authorised) request: (status, JSON body, extra headers)."""
        repo_name = f"{pp.get('owner')}/{pp.get('repo')}"
        repo = self.repo(repo_name)
        body = req.body if isinstance(req.body, dict) else {}
        q = req.query
        sub_path = req.path
        if route_op == "checks/create":
            cid = next(self._ids)
            status = "completed" if body.get("conclusion") else body.get("status", "queued")
            check = {
                "id": cid, "node_id": f"CR_{cid}", "head_sha": body["head_sha"], "name": body["name"],
                "external_id": body.get("external_id", ""), "url": f"{self.url}/repos/{repo_name}/check-runs/{cid}",
                "html_url": f"https://github.example/{repo_name}/runs/{cid}", "details_url": body.get("details_url"),
                "status": status, "conclusion": body.get("conclusion"),
                "started_at": body.get("started_at") or _now(),
                "completed_at": body.get("completed_at") or (_now() if status == "completed" else None),
                "output": {"title": None, "summary": None, "text": None}, "check_suite": {"id": 1},
                "app": {"id": 1, "slug": "github-actions", "name": "GitHub Actions"}, "pull_requests": [],
            }
            repo.check_runs[cid] = check
            self._apply_output(repo, check, body.get("output"))
            return 201, self._check_view(repo_name, check), {}
        if route_op in ("checks/update", "checks/get", "checks/list-annotations"):
            cid = int(pp["check_run_id"])
            check = repo.check_runs.get(cid)
            if check is None:
                return 404, {"message": "Not Found"}, {}
            if route_op == "checks/list-annotations":
                items, link = self._page(repo.annotations.get(cid, []), sub_path, q)
                return 200, items, {"Link": link} if link else {}
            if route_op == "checks/update":
                for key in ("name", "details_url", "external_id", "started_at", "completed_at"):
                    if key in body:
                        check[key] = body[key]
                if body.get("conclusion"):
                    check["conclusion"] = body["conclusion"]
                    check["status"] = "completed"
                    check["completed_at"] = body.get("completed_at") or check["completed_at"] or _now()
                elif "status" in body:
                    check["status"] = body["status"]
                self._apply_output(repo, check, body.get("output"))
            return 200, self._check_view(repo_name, check), {}
        if route_op == "checks/list-for-ref":
            ref = pp["ref"]
            runs = [c for c in repo.check_runs.values() if c["head_sha"] == ref]
            if q.get("check_name"):
                runs = [c for c in runs if c["name"] == q["check_name"][0]]
            if q.get("status"):
                runs = [c for c in runs if c["status"] == q["status"][0]]
            runs.sort(key=lambda c: -c["id"])
            if q.get("filter", ["latest"])[0] == "latest":
                newest: dict[str, dict[str, Any]] = {}
                for c in runs:
                    newest.setdefault(c["name"], c)
                runs = list(newest.values())
            items, link = self._page(runs, sub_path, q)
            return 200, {"total_count": len(runs), "check_runs": [self._check_view(repo_name, c) for c in items]}, (
                {"Link": link} if link else {})
        if route_op == "repos/create-commit-status":
            sid = next(self._ids)
            status = {
                "id": sid, "node_id": f"SC_{sid}", "state": body["state"], "context": body.get("context", "default"),
                "description": body.get("description"), "target_url": body.get("target_url"),
                "url": f"{self.url}/repos/{repo_name}/statuses/{pp['sha']}", "avatar_url": None,
                "created_at": _now(), "updated_at": _now(), "creator": {"login": login},
            }
            repo.statuses.setdefault(pp["sha"], []).append(status)
            return 201, status, {}
        if route_op == "repos/list-commit-statuses-for-ref":
            items, link = self._page(list(reversed(repo.statuses.get(pp["ref"], []))), sub_path, q)
            return 200, items, {"Link": link} if link else {}
        if route_op == "issues/list-comments":
            issue = int(pp["issue_number"])
            all_comments = sorted((c for c in repo.comments.values() if c["issue"] == issue), key=lambda c: c["id"])
            items, link = self._page([self._public_comment(c) for c in all_comments], sub_path, q)
            return 200, items, {"Link": link} if link else {}
        if route_op == "issues/create-comment":
            comment = self._new_comment(repo_name, int(pp["issue_number"]), body["body"], login)
            return 201, self._public_comment(comment), {}
        if route_op in ("issues/get-comment", "issues/update-comment", "issues/delete-comment"):
            cid = int(pp["comment_id"])
            comment = repo.comments.get(cid)
            if comment is None:
                return 404, {"message": "Not Found"}, {}
            if route_op == "issues/delete-comment":
                del repo.comments[cid]
                return 204, None, {}
            if route_op == "issues/update-comment":
                comment["body"] = body["body"]
                comment["updated_at"] = _now()
            return 200, self._public_comment(comment), {}
        return 404, {"message": f"Not Found (the fake does not implement {route_op})"}, {}

    def _apply_output(self, repo: _Repo, check: dict[str, Any], output: dict[str, Any] | None) -> None:
        if not output:
            return
        for key in ("title", "summary", "text"):
            if key in output:
                check["output"][key] = output[key]
        repo.annotations.setdefault(check["id"], []).extend(output.get("annotations") or [])

    def rate_headers(self, token: str) -> dict[str, str]:
        used = self._used[token] = self._used.get(token, 0) + 1
        return {
            "x-ratelimit-limit": str(self.rate_limit), "x-ratelimit-remaining": str(max(0, self.rate_limit - used)),
            "x-ratelimit-used": str(used), "x-ratelimit-reset": str(int(time.time()) + 3600),
            "x-ratelimit-resource": "core",
        }

    def next_fault(self, method: str, path: str, body: Any = None) -> Fault | None:
        for fault in self.faults:
            if fault.times > 0 and fault.matches(method, path):
                fault.times -= 1
                return fault
        if self.fault_rate:
            kinds = [k for k in self.fault_kinds if k != "lost" or method in self.lost_methods]
            kind = self._dice.roll(_resource(method, path, body), self.fault_rate, kinds)
            if kind is not None:
                return Fault(kind, retry_after=self.fault_retry_after,
                             retry_after_on_5xx=self.fault_retry_after is not None)
        return None


def _resource(method: str, path: str, body: Any) -> str:
    """What a request writes, for per-resource faults: the route with ids blanked plus the parts of the body
    that say which write it is (a status context, a batch of annotations, a comment) — never timestamps, so
    live updates that come and go with timing do not shift the dice of the other writes."""
    key = f"{method} {_IDS_IN_PATH.sub('/#', path)}"
    if isinstance(body, dict):
        output = body.get("output") if isinstance(body.get("output"), dict) else {}
        notes = output.get("annotations") or [{}]
        key += repr((body.get("context"), body.get("state"), body.get("status"), body.get("conclusion"),
                     body.get("body"), len(output.get("annotations") or []), notes[0].get("path"),
                     notes[0].get("start_line")))
    return key


class _Handler(BaseHTTPRequestHandler):
    owner: FakeGitHub
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep test output quiet
        return

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def _send(self, status: int, body: Any, headers: dict[str, str]) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        if body is not None:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _serve(self) -> None:
        fake = self.owner
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        path = parts.path
        query = parse_qs(parts.query, keep_blank_values=True)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        rec = Recorded(self.command, path, query, body, {k.lower(): v for k, v in self.headers.items()})
        with fake.lock:
            fake.requests.append(rec)
        try:
            status, payload, headers = self._answer(rec, raw)
        except _Dropped:
            rec.status = -1
            self.close_connection = True
            return
        rec.status = status
        self._send(status, payload, headers)

    def _answer(self, rec: Recorded, raw: bytes) -> tuple[int, Any, dict[str, str]]:
        fake = self.owner
        auth = rec.headers.get("authorization", "")
        token = auth.split(" ", 1)[1] if auth.lower().startswith(("bearer ", "token ")) else ""
        with fake.lock:
            headers = fake.rate_headers(token or "anonymous")
        doc = {"documentation_url": "https://docs.github.com/rest"}
        if not rec.headers.get("user-agent"):
            return 403, {"message": "Request forbidden by administrative rules. "
                         "Please make sure your request has a User-Agent header", **doc}, headers
        path = rec.path
        if fake.prefix:
            if not path.startswith(fake.prefix + "/"):
                return 404, {"message": "Not Found", **doc}, headers
            path = path[len(fake.prefix):]
        kind = fake.tokens.get(token)
        if kind is None:
            return 401, {"message": "Bad credentials", **doc, "status": "401"}, headers
        if fake.spec is None:
            return 500, {"message": "fake started without a spec"}, headers
        matched = fake.spec.match(rec.method, path)
        if matched is None:
            with fake.lock:
                fake.violations.append(f"{rec.method} {path}: no such operation in the spec")
            return 404, {"message": "Not Found", **doc}, headers
        route, pp = matched
        rec.operation = route.operation_id
        errors = fake.spec.validate(route, pp, rec.query, raw or None)
        if errors:
            with fake.lock:
                fake.violations.append(f"{route.operation_id}: " + "; ".join(errors))
            return 422, {"message": "Invalid request.\n\n" + "\n".join(errors), **doc, "status": "422"}, headers
        with fake.lock:
            fault = fake.next_fault(rec.method, path, rec.body)
        if fault is not None and fault.kind != "lost":
            return self._fault(fault, headers, doc)
        is_write = rec.method != "GET"
        if is_write and (kind == "readonly" or (kind == "pat" and route.operation_id.startswith("checks/"))):
            return 403, {"message": NOT_ACCESSIBLE, **doc, "status": "403"}, headers
        quirk = fake._quirks(route.operation_id, rec.body)
        if quirk:
            return 422, {"message": quirk, **doc, "status": "422"}, headers
        login = {"app": "github-actions[bot]", "pat": "octocat"}.get(kind, "reader")
        with fake.lock:
            status, payload, extra = fake.handle(rec, route.operation_id, pp, login, kind)
        if fault is not None:  # "lost": the change is made, the answer never arrives
            raise _Dropped
        return status, payload, {**headers, **extra}

    @staticmethod
    def _fault(fault: Fault, headers: dict[str, str], doc: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        retry = {"retry-after": str(fault.retry_after)} if fault.retry_after is not None else {}
        if fault.kind == "reset":
            raise _Dropped
        if fault.kind == "429":
            return 429, {"message": "Too Many Requests", **doc}, {**headers, **retry}
        if fault.kind in ("500", "502", "503") and fault.retry_after_on_5xx:
            return int(fault.kind), {"message": "Server Error"}, {**headers, **retry}
        if fault.kind in ("500", "502", "503"):
            return int(fault.kind), {"message": "Server Error"}, headers
        if fault.kind == "secondary":
            return 403, {"message": SECONDARY, **doc, "status": "403"}, {**headers, **retry}
        if fault.kind == "secondary-no-header":
            return 403, {"message": SECONDARY, **doc, "status": "403"}, headers
        if fault.kind == "primary":
            reset = int(time.time()) + (fault.retry_after or 60)
            return 403, {"message": "API rate limit exceeded for installation ID 1.", **doc},  {
                **headers, "x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)}
        raise AssertionError(fault.kind)

