"""A fake Bitbucket Cloud API 2.0 on 127.0.0.1 (the fake kit's server), serving ``/2.0`` for what the provider uses.

Every request is validated against Atlassian's OpenAPI description (``bitbucket/bitbucket-cloud-openapi3
.ci-subset.json``); a violation answers 400 and fails the test unless announced. Bitbucket's behaviour where our
client could notice it:

* credentials: ``Authorization: Bearer`` access tokens (``write`` or ``read`` only: writes answer 403), Basic
  ``user:app password``; 401 otherwise. With ``proxy=True`` the fake is also the Pipelines auth proxy: requests
  for ``http://api.bitbucket.org/2.0/…`` (absolute-form, no credential) are authenticated for Code Insights
  reports and annotations only; anything else through it answers 401;
* Code Insights: ``PUT`` report (≤ 10 ``data`` fields), annotations ``POST``\\ ed ≤ 100 at a time (the spec's
  ``maxItems``), ≤ 1,000 per report, an ``external_id`` posted again updates its annotation, twice in one request
  answers 400, a summary over 450 characters answers 400;
* build statuses: a ``key`` posted again overwrites its status;
* pull request comments: paginated with a JSON ``next`` URL (``pagelen`` 10 by default, 100 at most), deleted
  comments stay listed with ``deleted: true``, other users' and inline comments present;
* Downloads: multipart ``files`` (a name uploaded again replaces the file), listed with ``next``, each file's
  URL answers 302, deleted by name; a deleted report takes its annotations with it;
* errors as ``{"type": "error", "error": {"message": …}}``, 429 with ``Retry-After``, the kit's faults.

Two known defects of the description are corrected here, each saying why: a report ``data`` element's
``value`` is declared ``type: object`` while Atlassian's own examples send numbers, booleans and strings; and the
pagination parameters ``page``/``pagelen`` apply to every list but are declared on none.
"""

from __future__ import annotations

import base64
import copy
import itertools
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from ._server import FakeServer, Fault, Recorded, Reply, page_json_next
from .spec import OpenApiSpec

__all__ = ["FakeBitbucket", "relaxed_spec", "PUBLIC_HOST", "World", "View"]

PREFIX = "/2.0"
PUBLIC_HOST = "api.bitbucket.org"
SUMMARY_LIMIT = 450
ANNOTATIONS_PER_REPORT = 1000
DATA_FIELDS = 10
#: the scenario world's commit, pull request and token
SHA = "b7" * 20
PR = 14
TOKEN = "bb-scenario-token-never-shown"
_REPO = "/repositories/{workspace}/{repo_slug}"
_SHORT = {
    f"PUT {_REPO}/commit/{{commit}}/reports/{{reportId}}": "report-put",
    f"GET {_REPO}/commit/{{commit}}/reports/{{reportId}}": "report-get",
    f"DELETE {_REPO}/commit/{{commit}}/reports/{{reportId}}": "report-delete",
    f"GET {_REPO}/commit/{{commit}}/reports": "report-list",
    f"POST {_REPO}/commit/{{commit}}/reports/{{reportId}}/annotations": "annotations-post",
    f"GET {_REPO}/commit/{{commit}}/reports/{{reportId}}/annotations": "annotations-list",
    f"POST {_REPO}/commit/{{commit}}/statuses/build": "status-post",
    f"GET {_REPO}/commit/{{commit}}/statuses": "status-list",
    f"GET {_REPO}/pullrequests/{{pull_request_id}}/comments": "comment-list",
    f"POST {_REPO}/pullrequests/{{pull_request_id}}/comments": "comment-post",
    f"PUT {_REPO}/pullrequests/{{pull_request_id}}/comments/{{comment_id}}": "comment-put",
    f"DELETE {_REPO}/pullrequests/{{pull_request_id}}/comments/{{comment_id}}": "comment-delete",
    f"GET {_REPO}/downloads": "download-list",
    f"POST {_REPO}/downloads": "download-post",
    f"GET {_REPO}/downloads/{{filename}}": "download-get",
    f"DELETE {_REPO}/downloads/{{filename}}": "download-delete",
}
_PROXIED = {"report-put", "report-get", "report-delete", "report-list", "annotations-post", "annotations-list"}
_PAGING = ("page", "pagelen")


def relaxed_spec(spec: OpenApiSpec) -> OpenApiSpec:
    """``spec`` with a report data element's ``value`` of any JSON type (see the module docstring)."""
    doc = copy.deepcopy(spec.doc)
    value = doc["components"]["schemas"]["report_data"]["properties"]["value"]
    value.pop("type", None)
    return OpenApiSpec(doc)


def _timeless(name: str, value: Any) -> Any:
    """A report field with its measured durations left out (two runs of one job take different times)."""
    if name != "data" or not isinstance(value, list):
        return value
    return [{**d, "value": "<duration>"} if isinstance(d, dict) and d.get("type") == "DURATION" else d for d in value]


@dataclass
class Repo:
    """One repository's remote state."""

    reports: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    annotations: dict[tuple[str, str], dict[str, dict[str, Any]]] = field(default_factory=dict)
    statuses: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    downloads: dict[str, bytes] = field(default_factory=dict)


class FakeBitbucket(FakeServer):
    """Start with ``with FakeBitbucket(spec) as bb:``; ``bb.api_url`` is the base URL."""

    def __init__(self, spec: OpenApiSpec | None, *, tokens: dict[str, str] | None = None,
                 users: dict[str, str] | None = None, repository: str = "team/widgets",
                 pull_requests: tuple[int, ...] = (14,), proxy: bool = False, **kit: Any) -> None:
        super().__init__(spec=relaxed_spec(spec) if spec is not None else None, **kit)
        self.tokens = tokens if tokens is not None else {"bb-repo-token": "write", "bb-read-token": "read"}
        self.users = users if users is not None else {"builder": "app-password-1"}
        self.repository = repository
        self.proxy = proxy
        self.repo = Repo(comments={pr: [] for pr in pull_requests})
        self.rate_limited = 0
        self._ids = itertools.count(500)

    @property
    def api_url(self) -> str:
        return self.origin + PREFIX

    # --- test helpers --------------------------------------------------------------------------------

    def report(self, sha: str, rid: str) -> dict[str, Any] | None:
        with self.lock:
            found = self.repo.reports.get((sha, rid))
            return dict(found) if found else None

    def annotations(self, sha: str, rid: str) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(a) for a in self.repo.annotations.get((sha, rid), {}).values()]

    def statuses(self, sha: str) -> dict[str, dict[str, Any]]:
        """key → the status Bitbucket shows."""
        with self.lock:
            return {key: dict(s) for (c, key), s in self.repo.statuses.items() if c == sha}

    def comments(self, pr: int, *, live: bool = True) -> list[dict[str, Any]]:
        with self.lock:
            return [copy.deepcopy(c) for c in self.repo.comments.get(pr, []) if not (live and c["deleted"])]

    def add_comment(self, pr: int, raw: str, *, user: str = "someone", inline: bool = False) -> dict[str, Any]:
        with self.lock:
            return self._new_comment(pr, raw, user, inline=inline)

    def downloads(self) -> dict[str, bytes]:
        with self.lock:
            return dict(self.repo.downloads)

    def snapshot(self) -> dict[str, Any]:
        """The remote state a user sees, without ids and times (two runs compare equal when they look alike)."""
        with self.lock:
            return {
                "reports": {k: {f: _timeless(f, v) for f, v in r.items()
                                if f not in ("uuid", "created_on", "updated_on")}
                            for k, r in sorted(self.repo.reports.items())},
                "annotations": {k: sorted((a["external_id"], a.get("summary"), a.get("path"), a.get("line"))
                                          for a in v.values()) for k, v in sorted(self.repo.annotations.items())},
                "statuses": {k: (s["state"], s.get("description")) for k, s in sorted(self.repo.statuses.items())},
                "comments": {pr: [c["content"]["raw"] for c in cs if not c["deleted"]]
                             for pr, cs in sorted(self.repo.comments.items())},
                "downloads": {n: len(d) for n, d in sorted(self.repo.downloads.items())},
            }

    # --- the kit's hooks -----------------------------------------------------------------------------

    def error(self, status: int, message: Any) -> Reply:
        return Reply(status, {"type": "error", "error": {"message": message}})

    def _who(self, rec: Recorded) -> str | None:
        """``write``, ``read``, ``proxy`` or None (no valid credential)."""
        auth = rec.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return self.tokens.get(auth[7:])
        if auth.lower().startswith("basic "):
            try:
                user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            except ValueError:
                return None
            return "write" if self.users.get(user) == password else None
        if self.proxy and rec.headers.get("host") == PUBLIC_HOST:
            return "proxy"
        return None

    def gate(self, rec: Recorded) -> Reply | None:
        if not rec.path.startswith(PREFIX + "/"):
            return self.error(404, "Resource not found")
        query, rec.query = rec.query, {k: v for k, v in rec.query.items() if k not in _PAGING}
        checked = self.check_spec(rec, rec.path.removeprefix(PREFIX))
        rec.query = query
        if isinstance(checked, Reply):
            return checked
        route, _params = checked
        rec.operation = _SHORT.get(f"{route.method} {route.template}", rec.operation)
        who = self._who(rec)
        if who is None or (who == "proxy" and rec.operation not in _PROXIED):
            return self.error(401, "Unauthorized")
        if who == "read" and rec.method != "GET":
            return self.error(403, "Your credentials lack one or more required privilege scopes.")
        if f"{unquote(rec.params['workspace'])}/{unquote(rec.params['repo_slug'])}" != self.repository:
            return self.error(404, "Repository not found")
        return None

    def check_spec(self, rec: Recorded, path: str) -> Any:
        if rec.method == "POST" and path.endswith("/downloads"):
            raw, rec.raw = rec.raw, b""  # a multipart body: the spec declares none, checked by the route
            try:
                return super().check_spec(rec, path)
            finally:
                rec.raw = raw
        checked = super().check_spec(rec, path)
        if isinstance(checked, Reply) and checked.status == 422:
            checked.status = 400
        return checked

    def resource(self, rec: Recorded) -> str:
        return f"{rec.method} {rec.path}"

    def fault_reply(self, fault: Fault, rec: Recorded) -> Reply:
        if fault.kind != "429":
            return super().fault_reply(fault, rec)
        self.rate_limited += 1
        reply = self.error(429, "Rate limit for this resource has been exceeded")
        if fault.retry_after is not None:
            reply.headers["Retry-After"] = str(fault.retry_after)
        return reply

    def respond(self, rec: Recorded) -> Reply:
        handler = getattr(self, "_" + (rec.operation or "").replace("-", "_"), None)
        if handler is None:
            return self.error(404, f"{rec.method} {rec.path} is not served by this fake")
        return handler(rec, {k: unquote(v) for k, v in rec.params.items()})

    # --- Code Insights -------------------------------------------------------------------------------

    def _report_put(self, rec: Recorded, p: dict[str, str]) -> Reply:
        body = dict(rec.body or {})
        if len(body.get("data") or []) > DATA_FIELDS:
            return self.error(400, f"A report can have at most {DATA_FIELDS} data fields")
        key = (p["commit"], p["reportId"])
        old = self.repo.reports.get(key)
        body["uuid"] = old["uuid"] if old else f"{{{next(self._ids)}}}"
        self.repo.reports[key] = body
        return Reply(200, body)

    def _report_get(self, rec: Recorded, p: dict[str, str]) -> Reply:
        found = self.repo.reports.get((p["commit"], p["reportId"]))
        return Reply(200, found) if found else self.error(404, "Report not found")

    def _report_delete(self, rec: Recorded, p: dict[str, str]) -> Reply:
        key = (p["commit"], p["reportId"])
        if self.repo.reports.pop(key, None) is None:
            return self.error(404, "Report not found")
        self.repo.annotations.pop(key, None)  # a report's annotations go with it
        return Reply(204)

    def _report_list(self, rec: Recorded, p: dict[str, str]) -> Reply:
        values = [r for (c, _), r in self.repo.reports.items() if c == p["commit"]]
        return Reply(200, page_json_next(values, self.origin + rec.path, rec.query, size=self._pagelen(rec)))

    def _annotations_post(self, rec: Recorded, p: dict[str, str]) -> Reply:
        key = (p["commit"], p["reportId"])
        if key not in self.repo.reports:
            return self.error(404, "Report not found")
        items = list(rec.body or [])
        ids = [a.get("external_id") for a in items]
        if len(set(ids)) != len(ids):
            return self.error(400, "Duplicate external_id in the request")
        for item in items:
            if len(item.get("summary") or "") > SUMMARY_LIMIT:
                return self.error(400, f"summary: Ensure this value has at most {SUMMARY_LIMIT} characters")
        have = self.repo.annotations.setdefault(key, {})
        new = [i for i in ids if i not in have]
        if len(have) + len(new) > ANNOTATIONS_PER_REPORT:
            return self.error(400, f"A report can have at most {ANNOTATIONS_PER_REPORT} annotations")
        out = []
        for item in items:
            stored = {**have.get(item["external_id"], {"uuid": f"{{{next(self._ids)}}}"}), **item}
            have[item["external_id"]] = stored
            out.append(stored)
        return Reply(200, out)

    def _annotations_list(self, rec: Recorded, p: dict[str, str]) -> Reply:
        values = list(self.repo.annotations.get((p["commit"], p["reportId"]), {}).values())
        return Reply(200, page_json_next(values, self.origin + rec.path, rec.query, size=self._pagelen(rec)))

    # --- build statuses ------------------------------------------------------------------------------

    def _status_post(self, rec: Recorded, p: dict[str, str]) -> Reply:
        body = dict(rec.body or {})
        body["commit"] = p["commit"]
        self.repo.statuses[(p["commit"], body["key"])] = body
        return Reply(201, body)

    def _status_list(self, rec: Recorded, p: dict[str, str]) -> Reply:
        values = [s for (c, _), s in self.repo.statuses.items() if c == p["commit"]]
        return Reply(200, page_json_next(values, self.origin + rec.path, rec.query, size=self._pagelen(rec)))

    # --- pull request comments -----------------------------------------------------------------------

    def _pagelen(self, rec: Recorded) -> int:
        return max(1, min(100, int((rec.query.get("pagelen") or ["10"])[0])))

    def _new_comment(self, pr: int, raw: str, user: str, *, inline: bool = False) -> dict[str, Any]:
        cid = next(self._ids)
        comment: dict[str, Any] = {
            "type": "pullrequest_comment", "id": cid, "deleted": False, "user": {"nickname": user},
            "content": {"raw": raw, "markup": "markdown", "html": f"<p>{raw}</p>"},
            "links": {"html": {"href": f"https://bitbucket.org/{self.repository}/pull-requests/{pr}#comment-{cid}"}},
        }
        if inline:
            comment["inline"] = {"path": "src/app.py", "to": 3}
        self.repo.comments[pr].append(comment)
        return comment

    def _comments_of(self, p: dict[str, str]) -> list[dict[str, Any]] | None:
        return self.repo.comments.get(int(p["pull_request_id"]))

    def _comment_list(self, rec: Recorded, p: dict[str, str]) -> Reply:
        comments = self._comments_of(p)
        if comments is None:
            return self.error(404, "Pull request not found")
        return Reply(200, page_json_next(list(comments), self.origin + rec.path, rec.query, size=self._pagelen(rec)))

    def _comment_post(self, rec: Recorded, p: dict[str, str]) -> Reply:
        if self._comments_of(p) is None:
            return self.error(404, "Pull request not found")
        return Reply(201, self._new_comment(int(p["pull_request_id"]), rec.body["content"]["raw"], "ci-bot"))

    def _find(self, p: dict[str, str]) -> dict[str, Any] | None:
        return next((c for c in self._comments_of(p) or [] if c["id"] == int(p["comment_id"]) and not c["deleted"]),
                    None)

    def _comment_put(self, rec: Recorded, p: dict[str, str]) -> Reply:
        comment = self._find(p)
        if comment is None:
            return self.error(404, "Comment not found")
        raw = rec.body["content"]["raw"]
        comment["content"] = {"raw": raw, "markup": "markdown", "html": f"<p>{raw}</p>"}
        return Reply(200, comment)

    def _comment_delete(self, rec: Recorded, p: dict[str, str]) -> Reply:
        comment = self._find(p)
        if comment is None:
            return self.error(404, "Comment not found")
        comment["deleted"] = True
        return Reply(204)

    # --- Downloads -----------------------------------------------------------------------------------

    def _download_post(self, rec: Recorded, p: dict[str, str]) -> Reply:
        ctype = rec.headers.get("content-type", "")
        if not ctype.startswith("multipart/form-data"):
            self.violation(f"download-post: Content-Type {ctype!r} is not multipart/form-data")
            return self.error(406, "Unsupported Content-Type. Use multipart/form-data.")
        message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {ctype}\r\n\r\n".encode() + rec.raw)
        files = [part for part in message.iter_parts() if part.get_param("name", header="content-disposition")
                 == "files" and part.get_filename()]
        if not files:
            self.violation("download-post: no `files` field")
            return self.error(400, "No files were uploaded")
        for part in files:
            self.repo.downloads[part.get_filename()] = part.get_payload(decode=True) or b""
        return Reply(201)

    def _download_list(self, rec: Recorded, p: dict[str, str]) -> Reply:
        base = f"https://{PUBLIC_HOST}{PREFIX}/repositories/{self.repository}/downloads"
        values = [{"type": "download", "name": n, "size": len(d), "links": {"self": {"href": f"{base}/{n}"}}}
                  for n, d in self.repo.downloads.items()]
        return Reply(200, page_json_next(values, self.origin + rec.path, rec.query, size=self._pagelen(rec)))

    def _download_delete(self, rec: Recorded, p: dict[str, str]) -> Reply:
        if self.repo.downloads.pop(p["filename"], None) is None:
            return self.error(404, "File not found")
        return Reply(204)

    def _download_get(self, rec: Recorded, p: dict[str, str]) -> Reply:
        if p["filename"] not in self.repo.downloads:
            return self.error(404, "File not found")
        return Reply(302, headers={"Location": f"https://bbuseruploads.example/{p['filename']}?Signature=x"})


# --- the scenario world (tests/providers/test_bitbucket_scenario.py, bench/bench_bitbucket.py) ----------


class View(dict):  # type: ignore[type-arg]
    """What a person sees (:meth:`FakeBitbucket.snapshot`), saying how it differs from another."""

    def differences(self, other: dict[str, Any]) -> list[str]:
        return [f"{k}: {self.get(k)!r} != {other.get(k)!r}" for k in sorted(set(self) | set(other))
                if self.get(k) != other.get(k)]


class World:
    """One Bitbucket Pipelines pull-request step against a fake Bitbucket (a ``fakes.scenario.ScenarioWorld``),
    and what a person then sees on the commit and the pull request."""

    def __init__(self, spec: OpenApiSpec, fault_rate: float = 0.0, seed: int = 1) -> None:
        self.fake = FakeBitbucket(spec, tokens={TOKEN: "write"}, pull_requests=(PR,), fault_rate=fault_rate,
                                  seed=seed, per_resource_faults=True)

    def __enter__(self) -> World:
        self.fake.__enter__()
        if self.fake.fault_rate:
            # whatever the seed: the first answer of every kind of write is lost after the fake made it
            for method, path in (("PUT", "/reports/[^/]+$"), ("POST", "/annotations$"), ("POST", "/statuses/build$"),
                                 ("POST", "/comments$"), ("PUT", "/comments/"), ("POST", "/downloads$")):
                self.fake.inject("lost", method, path)
            for kind, method, path in (("502", "GET", "/comments$"), ("429", "POST", "/annotations$"),
                                       ("reset", "GET", "/downloads$"), ("503", "PUT", "/reports/")):
                self.fake.inject(kind, method, path, retry_after=0)
        return self

    def __exit__(self, *exc: object) -> None:
        self.fake.__exit__(*exc)

    def job_env(self, root: Path, *, tokens: bool = True) -> dict[str, str]:
        root.mkdir(parents=True, exist_ok=True)
        env = {
            "CI": "true", "BITBUCKET_BUILD_NUMBER": "77", "BITBUCKET_COMMIT": SHA, "BITBUCKET_WORKSPACE": "team",
            "BITBUCKET_REPO_SLUG": "widgets", "BITBUCKET_REPO_FULL_NAME": "team/widgets",
            "BITBUCKET_BRANCH": "feature", "BITBUCKET_PR_ID": str(PR), "BITBUCKET_PR_DESTINATION_BRANCH": "main",
            "BITBUCKET_PIPELINE_UUID": "{aaaa-bbbb}", "BITBUCKET_STEP_UUID": "{c0ffee00-1111-4222-8333-444455556666}",
            "BITBUCKET_GIT_HTTP_ORIGIN": "http://bitbucket.org/team/widgets",
            "CI_SIDECAR_BITBUCKET_BASE_URL": self.fake.api_url,
            "CI_SIDECAR_OUTPUT_DIR": str(root / "ci-sidecar-out"),
        }
        if tokens:
            env["BITBUCKET_TOKEN"] = TOKEN
        return env

    def view(self) -> View:
        return View(self.fake.snapshot())

    def calls(self) -> list[Recorded]:
        return self.fake.calls()

    def rest_calls(self) -> list[Recorded]:
        """The requests of everything but the artifacts (what bench_bitbucket counts against GitHub's)."""
        return [r for r in self.fake.calls() if "/downloads" not in r.path]

    def artifact_calls(self) -> list[Recorded]:
        return self.fake.calls(path="/downloads")

    def violations(self) -> list[str]:
        return self.fake.violations

    def remote_started(self) -> bool:
        return bool(self.fake.repo.statuses or self.fake.repo.reports)

    def wait_idle(self) -> None:
        self.fake.wait_idle()

    def check_capabilities(self, roles: dict[str, Any]) -> None:
        caps = roles["ci"]
        assert caps["test_run"]["via"] == "code insights report" and caps["artifacts"]["via"] == "downloads", caps

    def secrets(self) -> list[str]:
        return [TOKEN]
