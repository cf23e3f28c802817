"""A fake Bitbucket Data Center/Server on 127.0.0.1 serving, below ``/rest``, what the Bitbucket provider's Data
Center flavour uses; the Data Center scenario world.

No official machine-readable description of Data Center's API is available, so requests are validated against
``bitbucket_dc_spec.DC_SPEC``, written by hand from Atlassian's public REST documentation (see there); a
violation answers 400 and fails the test unless announced. Behaviour where our client could notice it, with the
status codes the documentation gives:

* credentials: ``Authorization: Bearer`` HTTP access tokens (``write`` or ``read``: writes with ``read`` answer
  403), Basic ``user:password``; 401 otherwise;
* Code Insights: report PUT (200, the report back), GET (404 when absent), DELETE (204, its annotations with it);
  annotations POSTed as ``{"annotations": [...]}`` (204), ≤ 1,000 per report (400 beyond), an external id
  already on the report answers 409 (the documentation promises no upsert, so the client must not rely on one),
  DELETE ``?externalId=…`` removes those (204);
* build statuses: ``/api/latest/…/builds`` (204; a ``key`` posted again replaces its status), or, with
  ``legacy=True`` (a server before 7.4), only ``/build-status/1.0/commits/{sha}`` and 404 for the new one;
* pull request comments: created (201, ``version`` 0), edited and deleted naming their ``version`` (409 when
  stale), listed only through the pull request's ``activities``, newest first, in pages of at most 50
  (``start``/``limit``, ``isLastPage``, ``nextPageStart``), other users' and inline comments present, deleted
  ones shown by a DELETED activity;
* errors as ``{"errors": [{"message", "exceptionName"}]}``, 429 with ``Retry-After``, the kit's faults.
"""

from __future__ import annotations

import base64
import copy
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from ._server import FakeServer, Fault, Recorded, Reply
from .bitbucket import World
from .bitbucket_dc_spec import DC_SPEC
from .spec import OpenApiSpec

__all__ = ["FakeBitbucketDC", "DCWorld", "SHA", "PR", "TOKEN"]

PREFIX = "/rest"
ANNOTATIONS_PER_REPORT = 1000
ACTIVITY_PAGE_MAX = 50
SHA = "d3" * 20
PR = 7
TOKEN = "bbdc-scenario-token-never-shown"
_SPEC = OpenApiSpec(DC_SPEC)


def _timeless(report: dict[str, Any]) -> dict[str, Any]:
    data = [{**d, "value": "<duration>"} if d.get("type") == "DURATION" else d for d in report.get("data") or []]
    return {**report, "data": data}


@dataclass
class Repo:
    """One repository's remote state."""

    reports: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    annotations: dict[tuple[str, str], dict[str, dict[str, Any]]] = field(default_factory=dict)
    builds: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    #: per pull request, newest last: (action, comment id)
    activities: dict[int, list[tuple[str, int, bool]]] = field(default_factory=dict)


class FakeBitbucketDC(FakeServer):
    """Start with ``with FakeBitbucketDC() as dc:``; ``dc.rest_url`` is the base URL to configure."""

    def __init__(self, *, tokens: dict[str, str] | None = None, users: dict[str, str] | None = None,
                 repository: str = "PROJ/widgets", pull_requests: tuple[int, ...] = (PR,), legacy: bool = False,
                 **kit: Any) -> None:
        super().__init__(spec=_SPEC, **kit)
        self.tokens = tokens if tokens is not None else {"dc-http-token": "write", "dc-read-token": "read"}
        self.users = users if users is not None else {"builder": "dc-password-1"}
        self.repository = repository
        self.legacy = legacy
        self.repo = Repo(comments={pr: [] for pr in pull_requests}, activities={pr: [] for pr in pull_requests})
        self._ids = itertools.count(900)

    @property
    def rest_url(self) -> str:
        return self.origin + PREFIX

    # --- test helpers --------------------------------------------------------------------------------

    def report(self, sha: str, key: str) -> dict[str, Any] | None:
        with self.lock:
            found = self.repo.reports.get((sha, key))
            return copy.deepcopy(found) if found else None

    def annotations(self, sha: str, key: str) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(a) for a in self.repo.annotations.get((sha, key), {}).values()]

    def builds(self, sha: str) -> dict[str, dict[str, Any]]:
        with self.lock:
            return {key: dict(b) for (c, key), b in self.repo.builds.items() if c == sha}

    def comments(self, pr: int) -> list[dict[str, Any]]:
        with self.lock:
            return [copy.deepcopy(c) for c in self.repo.comments.get(pr, []) if not c["deleted"]]

    def add_comment(self, pr: int, text: str, *, user: str = "someone", inline: bool = False) -> dict[str, Any]:
        with self.lock:
            return self._new_comment(pr, text, user, inline=inline)

    def edit_behind_our_back(self, pr: int, comment_id: int, text: str) -> None:
        """Another user's edit: the comment's version moves on."""
        with self.lock:
            comment = next(c for c in self.repo.comments[pr] if c["id"] == comment_id)
            comment.update(text=text, version=comment["version"] + 1)

    def snapshot(self) -> dict[str, Any]:
        """What a person sees, without ids and times (two runs compare equal when they look alike)."""
        with self.lock:
            return {
                "reports": {k: _timeless(r) for k, r in sorted(self.repo.reports.items())},
                "annotations": {k: sorted((a.get("externalId"), a["message"], a.get("path"), a.get("line"))
                                          for a in v.values()) for k, v in sorted(self.repo.annotations.items())},
                "statuses": {k: (b["state"], b.get("description")) for k, b in sorted(self.repo.builds.items())},
                "comments": {pr: [c["text"] for c in cs if not c["deleted"]]
                             for pr, cs in sorted(self.repo.comments.items())},
            }

    # --- the kit's hooks -----------------------------------------------------------------------------

    def error(self, status: int, message: Any, exception: str = "com.atlassian.bitbucket.ServiceException") -> Reply:
        return Reply(status, {"errors": [{"context": None, "message": message, "exceptionName": exception}]})

    def _who(self, rec: Recorded) -> str | None:
        auth = rec.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return self.tokens.get(auth[7:])
        if auth.lower().startswith("basic "):
            try:
                user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            except ValueError:
                return None
            return "write" if self.users.get(user) == password else None
        return None

    def gate(self, rec: Recorded) -> Reply | None:
        if not rec.path.startswith(PREFIX + "/"):
            return self.error(404, "Not Found")
        path = rec.path.removeprefix(PREFIX)
        if self.legacy and "/api/latest/" in path:
            return Reply(404, b"<html><body>Not Found</body></html>", content_type="text/html")
        ids = rec.query.pop("externalId", [])  # an array parameter (the kit checks scalars only)
        checked = self.check_spec(rec, path)
        if ids:
            rec.query["externalId"] = ids
        if isinstance(checked, Reply):
            return checked
        who = self._who(rec)
        if who is None:
            return self.error(401, "Authentication failed. Please check your credentials and try again.",
                              "com.atlassian.bitbucket.AuthorisationException")
        if who == "read" and rec.method != "GET":
            return self.error(403, "You are not permitted to access this resource",
                              "com.atlassian.bitbucket.AuthorisationException")
        params = {k: unquote(v) for k, v in rec.params.items()}
        if "projectKey" in params and f"{params['projectKey']}/{params['repositorySlug']}" != self.repository:
            return self.error(404, f"Repository {params['repositorySlug']} does not exist.",
                              "com.atlassian.bitbucket.repository.NoSuchRepositoryException")
        return None

    def check_spec(self, rec: Recorded, path: str) -> Any:
        checked = super().check_spec(rec, path)
        if isinstance(checked, Reply) and checked.status == 422:
            checked.status = 400
        return checked

    def fault_reply(self, fault: Fault, rec: Recorded) -> Reply:
        reply = super().fault_reply(fault, rec)
        if fault.kind == "429":
            reply.body = self.error(429, "Rate limit exceeded").body
        return reply

    def respond(self, rec: Recorded) -> Reply:
        handler = getattr(self, "_" + (rec.operation or "").replace("-", "_"), None)
        if handler is None:
            return self.error(404, f"{rec.method} {rec.path} is not served by this fake")
        return handler(rec, {k: unquote(v) for k, v in rec.params.items()})

    # --- repository, Code Insights -------------------------------------------------------------------

    def _repo_get(self, rec: Recorded, p: dict[str, str]) -> Reply:
        return Reply(200, {"slug": p["repositorySlug"], "project": {"key": p["projectKey"]}, "scmId": "git"})

    def _report_put(self, rec: Recorded, p: dict[str, str]) -> Reply:
        body = {**rec.body, "key": p["key"], "createdDate": 1_700_000_000_000}
        self.repo.reports[(p["commitId"], p["key"])] = body
        return Reply(200, body)

    def _report_get(self, rec: Recorded, p: dict[str, str]) -> Reply:
        found = self.repo.reports.get((p["commitId"], p["key"]))
        return Reply(200, found) if found else self.error(404, "No report found", "NoSuchInsightReportException")

    def _report_delete(self, rec: Recorded, p: dict[str, str]) -> Reply:
        self.repo.reports.pop((p["commitId"], p["key"]), None)
        self.repo.annotations.pop((p["commitId"], p["key"]), None)
        return Reply(204)

    def _report_list(self, rec: Recorded, p: dict[str, str]) -> Reply:
        values = [r for (c, _), r in self.repo.reports.items() if c == p["commitId"]]
        return Reply(200, {"values": values, "size": len(values), "start": 0, "isLastPage": True, "limit": 25})

    def _annotations_post(self, rec: Recorded, p: dict[str, str]) -> Reply:
        key = (p["commitId"], p["key"])
        if key not in self.repo.reports:
            return self.error(404, "No report found", "NoSuchInsightReportException")
        items = rec.body["annotations"]
        have = self.repo.annotations.setdefault(key, {})
        ids = [a.get("externalId") for a in items if a.get("externalId")]
        if len(set(ids)) != len(ids) or any(i in have for i in ids):
            return self.error(409, "An annotation with this external ID already exists on this report")
        if len(have) + len(items) > ANNOTATIONS_PER_REPORT:
            return self.error(400, f"A report can have at most {ANNOTATIONS_PER_REPORT} annotations")
        for item in items:
            have[item.get("externalId") or f"#{next(self._ids)}"] = dict(item)
        return Reply(204)

    def _annotations_list(self, rec: Recorded, p: dict[str, str]) -> Reply:
        values = list(self.repo.annotations.get((p["commitId"], p["key"]), {}).values())
        return Reply(200, {"annotations": values, "totalCount": len(values)})

    def _annotations_delete(self, rec: Recorded, p: dict[str, str]) -> Reply:
        have = self.repo.annotations.get((p["commitId"], p["key"]), {})
        ids = rec.query.get("externalId")
        for i in ids if ids is not None else list(have):
            have.pop(i, None)
        return Reply(204)

    # --- build statuses ------------------------------------------------------------------------------

    def _build_post(self, rec: Recorded, p: dict[str, str]) -> Reply:
        self.repo.builds[(p["commitId"], rec.body["key"])] = dict(rec.body)
        return Reply(204)

    def _legacy_build_post(self, rec: Recorded, p: dict[str, str]) -> Reply:
        self.repo.builds[(p["commitId"], rec.body["key"])] = {**rec.body, "legacy": True}
        return Reply(204)

    def _build_list(self, rec: Recorded, p: dict[str, str]) -> Reply:
        values = [b for (c, _), b in self.repo.builds.items() if c == p["commitId"]]
        return Reply(200, {"values": values, "size": len(values), "start": 0, "isLastPage": True})

    _legacy_build_list = _build_list

    # --- pull request comments -----------------------------------------------------------------------

    def _new_comment(self, pr: int, text: str, user: str, *, inline: bool = False) -> dict[str, Any]:
        comment: dict[str, Any] = {"id": next(self._ids), "version": 0, "text": text, "author": {"name": user},
                                   "deleted": False, "comments": []}
        if inline:
            comment["anchor"] = {"path": "src/app.py", "line": 3, "lineType": "ADDED"}
        self.repo.comments[pr].append(comment)
        self.repo.activities[pr].append(("ADDED", comment["id"], inline))
        return comment

    def _pr(self, p: dict[str, str]) -> int | None:
        pr = int(p["pullRequestId"])
        return pr if pr in self.repo.comments else None

    def _find(self, p: dict[str, str]) -> dict[str, Any] | None:
        pr = self._pr(p)
        return next((c for c in self.repo.comments.get(pr or -1, []) if c["id"] == int(p["commentId"])
                     and not c["deleted"]), None)

    @staticmethod
    def _shown(comment: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in comment.items() if k != "deleted"}

    def _activity_list(self, rec: Recorded, p: dict[str, str]) -> Reply:
        pr = self._pr(p)
        if pr is None:
            return self.error(404, "Pull request not found", "NoSuchPullRequestException")
        by_id = {c["id"]: c for c in self.repo.comments[pr]}
        values = []
        for n, (action, cid, inline) in enumerate(reversed(self.repo.activities[pr])):
            activity: dict[str, Any] = {"id": 10_000 - n, "action": "COMMENTED", "commentAction": action,
                                        "comment": self._shown(by_id[cid])}
            if inline:
                activity["commentAnchor"] = by_id[cid]["anchor"]
            values.append(activity)
        start = int((rec.query.get("start") or ["0"])[0])
        limit = min(ACTIVITY_PAGE_MAX, int((rec.query.get("limit") or ["25"])[0]))
        page = values[start:start + limit]
        body: dict[str, Any] = {"values": page, "size": len(page), "start": start, "limit": limit,
                                "isLastPage": start + limit >= len(values)}
        if not body["isLastPage"]:
            body["nextPageStart"] = start + limit
        return Reply(200, body)

    def _comment_post(self, rec: Recorded, p: dict[str, str]) -> Reply:
        pr = self._pr(p)
        if pr is None:
            return self.error(404, "Pull request not found", "NoSuchPullRequestException")
        return Reply(201, self._shown(self._new_comment(pr, rec.body["text"], "ci-bot")))

    def _comment_get(self, rec: Recorded, p: dict[str, str]) -> Reply:
        comment = self._find(p)
        return Reply(200, self._shown(comment)) if comment else self.error(404, "Comment not found",
                                                                           "NoSuchCommentException")

    def _stale(self, comment: dict[str, Any], version: int) -> Reply | None:
        if comment["version"] != version:
            return self.error(409, f"You are attempting to modify a comment based on out-of-date information "
                                   f"(version {version}, current {comment['version']})",
                              "com.atlassian.bitbucket.comment.CommentOutOfDateException")
        return None

    def _comment_put(self, rec: Recorded, p: dict[str, str]) -> Reply:
        comment = self._find(p)
        if comment is None:
            return self.error(404, "Comment not found", "NoSuchCommentException")
        stale = self._stale(comment, rec.body["version"])
        if stale:
            return stale
        comment.update(text=rec.body["text"], version=comment["version"] + 1)
        return Reply(200, self._shown(comment))

    def _comment_delete(self, rec: Recorded, p: dict[str, str]) -> Reply:
        comment = self._find(p)
        if comment is None:
            return self.error(404, "Comment not found", "NoSuchCommentException")
        stale = self._stale(comment, int(rec.query["version"][0]))
        if stale:
            return stale
        comment["deleted"] = True
        self.repo.activities[int(p["pullRequestId"])].append(("DELETED", comment["id"], False))
        return Reply(204)


class DCWorld(World):
    """A Jenkins-style pull-request build of a Bitbucket Data Center repository (a ``fakes.scenario.ScenarioWorld``):
    the job names the commit, pull request, project and repository, and the Data Center REST URL. What a person
    sees, the calls and the violations are read as in the Cloud world."""

    def __init__(self, fault_rate: float = 0.0, seed: int = 1) -> None:
        self.fault_rate = fault_rate
        self.fake = FakeBitbucketDC(tokens={TOKEN: "write"}, fault_rate=fault_rate, seed=seed,  # type: ignore[assignment]
                                    per_resource_faults=True)

    def __enter__(self) -> DCWorld:
        self.fake.__enter__()
        if self.fault_rate:
            # whatever the seed: the first answer of every kind of write is lost after the fake made it
            for method, path in (("PUT", "/reports/[^/]+$"), ("POST", "/annotations$"), ("POST", "/builds$"),
                                 ("POST", "/comments$"), ("PUT", "/comments/")):
                self.fake.inject("lost", method, path)
            for kind, method, path in (("502", "GET", "/activities$"), ("429", "POST", "/annotations$"),
                                       ("503", "PUT", "/reports/")):
                self.fake.inject(kind, method, path, retry_after=0)
        return self

    def job_env(self, root: Path, *, tokens: bool = True) -> dict[str, str]:
        root.mkdir(parents=True, exist_ok=True)
        env = {
            "CI": "true", "BITBUCKET_COMMIT": SHA, "BITBUCKET_PR_ID": str(PR),
            "BITBUCKET_BRANCH": "feature", "BITBUCKET_PROJECT_KEY": "PROJ", "BITBUCKET_REPO_SLUG": "widgets",
            "CI_SIDECAR_BITBUCKET_BASE_URL": self.fake.rest_url,  # type: ignore[attr-defined]
            "CI_SIDECAR_OUTPUT_DIR": str(root / "ci-sidecar-out"),
        }
        if tokens:
            env["BITBUCKET_TOKEN"] = TOKEN
        return env

    def remote_started(self) -> bool:
        return bool(self.fake.repo.builds or self.fake.repo.reports)  # type: ignore[attr-defined]

    def check_capabilities(self, roles: dict[str, Any]) -> None:
        caps = roles["ci"]
        assert caps["test_run"]["via"] == "code insights report" and caps["build_status"]["kind"] == "native", caps
        assert caps["artifacts"]["kind"] != "native", caps  # Data Center has no Downloads

    def secrets(self) -> list[str]:
        return [TOKEN]
