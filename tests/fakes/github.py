"""A fake GitHub REST API: a real HTTP/1.1 server on 127.0.0.1 (``ThreadingHTTPServer`` in a thread).

It behaves like GitHub where our client could notice: check runs (annotations appended per PATCH,
``filter=latest``), commit statuses, issue comments with ``Link`` pagination (``per_page`` capped at 100),
``x-ratelimit-*`` headers on every answer, 401 "Bad credentials", GitHub's own 403 texts ("You must authenticate
via a GitHub App." for check-run writes with a personal token, "Resource not accessible by integration" with
``x-accepted-github-permissions`` for any write with a read-only token), 404 for a repository that does not
exist (or the token cannot see), 422 for a commit the repository does not have, and GitHub's validation
quirks (422 for a summary over 65,535 UTF-8 bytes, a comment over 65,536 characters, a status description
over 140 characters, characters above U+FFFF in check-run output, the 1,001st status of one commit and
context). ``filter=latest`` (the default of the check-run list) shows only the newest check run of each name.
With ``budget_per="repository"`` every token shares one hourly budget per repository, as an Actions
``GITHUB_TOKEN`` does, and a request past it gets GitHub's 403 "API rate limit exceeded". Reads answer with an
``ETag`` and 304 to a matching ``If-None-Match``. Annotations whose path is not a file of the repository (``files``; without it: not a relative path with
forward slashes) are kept but recorded as unlinked, as GitHub shows them on no line of any file.

Every request is validated against the official OpenAPI description (path and query parameters, JSON body);
a violation answers 422 like GitHub and is recorded in ``violations`` — the fixture fails the test on any
violation it did not expect. Faults can be injected per route (429, 5xx, primary/secondary rate limits,
a reset before the change is made, a lost response after it is made) or at a seeded random rate.
Server, recording, faults and spec checks come from the fake kit (:mod:`fakes._server`).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

from ._server import GENERIC_FAULTS, WRITES, FakeServer, Fault, FaultDice, LoopbackServer, RateLimit, Recorded
from ._server import Reply, page_link
from .spec import OpenApiSpec

__all__ = ["FakeGitHub", "Fault", "FaultDice", "LoopbackServer", "Recorded"]

NOT_ACCESSIBLE = "Resource not accessible by integration"
APP_ONLY = "You must authenticate via a GitHub App."
STATUS_CAP = "This SHA and context has reached the maximum number of statuses."
#: what GitHub's ``x-accepted-github-permissions`` names for a refused write, per operation family
_PERMISSIONS = {"checks/": "checks=write", "repos/create-commit-status": "statuses=write",
                "issues/": "issues=write; pull_requests=write"}
SECONDARY = ("You have exceeded a secondary rate limit. Please wait a few minutes before you try again. "
             "If you reach out to GitHub Support for help, please include the request ID")
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
_IDS_IN_PATH = re.compile(r"/\d+(?=/|$)")
FAULT_KINDS = (*GENERIC_FAULTS, "secondary", "secondary-no-header", "primary")
_DOC = {"documentation_url": "https://docs.github.com/rest"}


@dataclass
class _Repo:
    check_runs: dict[int, dict[str, Any]] = field(default_factory=dict)
    annotations: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    unlinked: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    statuses: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    comments: dict[int, dict[str, Any]] = field(default_factory=dict)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _token(rec: Recorded) -> str:
    auth = rec.headers.get("authorization", "")
    return auth.split(" ", 1)[1] if auth.lower().startswith(("bearer ", "token ")) else ""


class FakeGitHub(FakeServer):
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
        lost_methods: tuple[str, ...] = WRITES,
        per_resource_faults: bool = False,
        repositories: set[str] | None = None,
        commits: set[str] | None = None,
        files: set[str] | None = None,
        status_cap: int = 1000,
        budget_per: str = "token",
    ) -> None:
        super().__init__(spec=spec, prefix=prefix, fault_rate=fault_rate, seed=seed, fault_kinds=fault_kinds,
                         fault_retry_after=fault_retry_after, lost_methods=lost_methods,
                         per_resource_faults=per_resource_faults)
        #: token → kind: "app" (everything), "pat" (no check-run writes), "readonly" (no writes)
        self.tokens = tokens or {"app-token": "app", "ghp_classicpat": "pat", "readonly-token": "readonly"}
        self.rate_limit = rate_limit
        self._limits = RateLimit(rate_limit)
        self.repos: dict[str, _Repo] = {}
        self._ids = iter(range(1000, 10**9))
        #: the repositories that exist, the commits they have, the files of the checkout (None: any)
        self.repositories = repositories
        self.commits = commits
        self.files = files
        self.status_cap = status_cap
        #: ``repository``: one hourly budget per repository shared by every token (an Actions GITHUB_TOKEN's
        #: 1,000 requests), refused with GitHub's 403 once spent; ``token``: counted per token, never refused
        self.budget_per = budget_per

    # --- test helpers --------------------------------------------------------------------------------

    def inject(self, kind: str, method: str | None = None, path: str | None = None, times: int = 1,
               retry_after: int | None = 7) -> None:
        """Queue a fault for the next matching requests (see ``FAULT_KINDS``)."""
        assert kind in FAULT_KINDS, kind
        super().inject(kind, method, path, times, retry_after)

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

    def unlinked_annotations(self, check_id: int, repo: str = "octo/repo") -> list[dict[str, Any]]:
        """Annotations GitHub would show on no line of any file (their path is not a file of the repository)."""
        with self.lock:
            return list(self.repo(repo).unlinked.get(check_id, []))

    def statuses(self, sha: str, repo: str = "octo/repo") -> list[dict[str, Any]]:
        """Newest first, as GitHub lists them."""
        with self.lock:
            return list(reversed(self.repo(repo).statuses.get(sha, [])))

    def add_comment(self, issue: int, body: str, login: str = "someone", repo: str = "octo/repo") -> dict[str, Any]:
        """A comment made by somebody else (or a leftover of ours)."""
        with self.lock:
            return self._new_comment(repo, issue, body, login)

    # --- the kit's hooks -----------------------------------------------------------------------------

    def rate_headers(self, token: str) -> dict[str, str]:
        self._limits.limit = self.rate_limit
        return self._limits.headers(token)

    def _budget_key(self, rec: Recorded) -> str:
        if self.budget_per == "repository":
            found = re.search(r"/repos/([^/]+/[^/]+)", rec.path)
            return found.group(1) if found else "anonymous"
        return _token(rec) or "anonymous"

    def spend(self, key: str, requests: int) -> None:
        """Requests other jobs made with the budget ``key`` (a repository, or a token)."""
        with self.lock:
            self._limits.used[key] = self._limits.used.get(key, 0) + requests

    def headers_for(self, rec: Recorded) -> dict[str, str]:
        return self.rate_headers(self._budget_key(rec))

    def error(self, status: int, message: str) -> Reply:
        extra = {"status": str(status)} if status in (401, 403, 422) else {}
        return Reply(status, {"message": message, **_DOC, **extra})

    def gate(self, rec: Recorded) -> Reply | None:
        if not rec.headers.get("user-agent"):
            return Reply(403, {"message": "Request forbidden by administrative rules. "
                               "Please make sure your request has a User-Agent header", **_DOC})
        path = rec.path
        if self.prefix:
            if not path.startswith(self.prefix + "/"):
                return self.error(404, "Not Found")
            path = path[len(self.prefix):]
        if self.tokens.get(_token(rec)) is None:
            return self.error(401, "Bad credentials")
        if self.budget_per == "repository" and self._limits.used.get(self._budget_key(rec), 0) > self.rate_limit:
            return self.error(403, "API rate limit exceeded for installation ID 1.")
        checked = self.check_spec(rec, path)
        return checked if isinstance(checked, Reply) else None

    def resource(self, rec: Recorded) -> str:
        return _resource(rec.method, rec.path[len(self.prefix):] if self.prefix else rec.path, rec.body)

    def fault_reply(self, fault: Fault, rec: Recorded) -> Reply:
        retry = {"retry-after": str(fault.retry_after)} if fault.retry_after is not None else {}
        if fault.kind == "secondary":
            return Reply(403, {"message": SECONDARY, **_DOC, "status": "403"}, retry)
        if fault.kind == "secondary-no-header":
            return Reply(403, {"message": SECONDARY, **_DOC, "status": "403"})
        if fault.kind == "primary":
            reset = int(time.time()) + (fault.retry_after or 60)
            return Reply(403, {"message": "API rate limit exceeded for installation ID 1.", **_DOC},
                         {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)})
        return super().fault_reply(fault, rec)

    def respond(self, rec: Recorded) -> Reply:
        kind = self.tokens[_token(rec)]
        op = rec.operation or ""
        owner, name = rec.params.get("owner"), rec.params.get("repo")
        if owner and self.repositories is not None and f"{owner}/{name}" not in self.repositories:
            return self.error(404, "Not Found")  # GitHub's answer for a private repository the token cannot see too
        body = rec.body if isinstance(rec.body, dict) else {}
        sha = rec.params.get("sha") or rec.params.get("ref") or body.get("head_sha")
        if sha and self.commits is not None and sha not in self.commits:
            return self.error(422, f"No commit found for SHA: {sha}")
        if rec.method != "GET" and kind == "pat" and op.startswith("checks/"):
            return self.error(403, APP_ONLY)
        if rec.method != "GET" and kind == "readonly":
            accepted = next((v for k, v in _PERMISSIONS.items() if op.startswith(k)), "")
            reply = self.error(403, NOT_ACCESSIBLE)
            return Reply(reply.status, reply.body, {"x-accepted-github-permissions": accepted} if accepted else {})
        quirk = self._quirks(op, rec.body)
        if quirk:
            return self.error(422, quirk)
        login = {"app": "github-actions[bot]", "pat": "octocat"}.get(kind, "reader")
        status, payload, extra = self.handle(rec, op, rec.params, login, kind)
        if rec.method == "GET" and status == 200:
            # conditional requests: an ETag on every read, 304 (and no body) when it still matches
            etag = '"' + hashlib.sha1(json.dumps(payload, sort_keys=True).encode()).hexdigest() + '"'
            if rec.headers.get("if-none-match") == etag:
                return Reply(304, b"", {"etag": etag})
            extra = {**extra, "etag": etag}
        return Reply(status, payload, extra)

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
        chosen, headers = page_link(items, self.origin + path, query)
        return chosen, headers.get("Link")

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
            context = body.get("context", "default")
            if sum(1 for st in repo.statuses.get(pp["sha"], []) if st["context"] == context) >= self.status_cap:
                return 422, {"message": "Validation Failed", "errors": [{"resource": "Status", "code": "custom",
                                                                          "message": STATUS_CAP}], **_DOC}, {}
            status = {
                "id": sid, "node_id": f"SC_{sid}", "state": body["state"], "context": context,
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
        notes = output.get("annotations") or []
        repo.annotations.setdefault(check["id"], []).extend(notes)
        repo.unlinked.setdefault(check["id"], []).extend(n for n in notes if not self._linkable(n.get("path", "")))

    def _linkable(self, path: str) -> bool:
        """GitHub links an annotation to a line when its path is a file of the repository, relative to its root."""
        if self.files is not None:
            return path in self.files
        return bool(path) and not path.startswith(("/", "./")) and "\\" not in path and ":" not in path \
            and ".." not in path.split("/") and path != ".github"


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


STEP_SUMMARY_LIMIT = 1024 * 1024


def runner_step_summary(path: str) -> str | None:
    """What the runner uploads of a step's ``$GITHUB_STEP_SUMMARY`` when the step ends: the whole file, or nothing
    at all when it is over 1 MiB ("$GITHUB_STEP_SUMMARY upload aborted, supports content up to a size of 1024k")."""
    with open(path, "rb") as fh:
        data = fh.read()
    return None if len(data) > STEP_SUMMARY_LIMIT else data.decode("utf-8")
