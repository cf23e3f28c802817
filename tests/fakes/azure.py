"""A fake Azure DevOps (Services) REST API 7.1 on 127.0.0.1 (the fake kit's server), serving one organization
for what the provider uses: test runs, results and attachments, commit and pull request statuses, pull request
threads.

Every request is validated against Microsoft's official descriptions (``azure-devops/test_7.1_test.json`` and
``git_7.1_git.json``, Swagger 2.0): a violation answers 400 and fails the test unless announced — ``api-version``
is a required query parameter of every operation there. Azure's behaviour where our client could notice it:

* credentials: ``Authorization: Bearer`` (the pipeline's ``System.AccessToken``) or Basic with an empty user and a
  PAT as the password; anything else answers **203 with an HTML sign-in page**, as Azure DevOps does;
* lists answer ``{"count": n, "value": [...]}`` — also ``POST …/results`` (Results_Add), which the description
  declares as a bare array; pull request threads come in pages of ``thread_page`` with ``x-ms-continuationtoken``
  (sent back as ``continuationToken``: the REST docs give every list that parameter, the description declares it
  on none of the operations used here, so the fake takes it off before validating);
* results are added ≤ 1,000 per request (more answers 400), a run counts its results (``totalTests``,
  ``passedTests``, ``unanalyzedTests`` for failures, each by the result's own outcome) and has a ``webAccessUrl``;
* reruns: a result with ``resultGroupType`` other than ``none`` holds its attempts as ``subResults``
  (``TestSubResult``, each given an id), either when added or by ``PATCH …/results`` (Results_Update: each item
  names an existing result of the run by ``id`` and replaces the fields it gives, ``subResults`` whole);
  sub-results on a result that is no group answer 400. Lists carry the sub-results only with
  ``detailsToInclude=subResults``, as Azure's, and pages are cut to ``$top``'s documented maximum (1,000, or 200
  with details);
* attachments: base64 ``stream``, ≤ 100 MB decoded; answered ``{id, url}``;
* a comment over 150,000 characters answers 400 with Azure's message;
* errors as ``{"$id": "1", "message", "typeName", "typeKey", "errorCode", "eventId"}``; rate limits as 429
  ``TF400733`` with ``Retry-After`` and the ``X-RateLimit-*`` headers; the kit's faults.
"""

from __future__ import annotations

import base64
import binascii
import copy
import itertools
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from ._server import FakeServer, Fault, Recorded, Reply, page_token
from .spec import OpenApiSpec

__all__ = ["FakeAzure", "ORG", "PROJECT", "SIGN_IN_PAGE"]

ORG = "fabrikam"
PROJECT = "Fabrikam Fiber"
RESULTS_PER_POST = 1000
COMMENT_CHARS = 150_000
ATTACHMENT_BYTES = 100 * 1024 * 1024
SIGN_IN_PAGE = (b"<!DOCTYPE html><html><head><title>Azure DevOps Services | Sign In</title></head>"
                b"<body>Sign in to your account</body></html>")
_OPS = {
    "Runs_Create": "run-create", "Runs_List": "run-list", "Runs_Get Test Run By Id": "run-get",
    "Runs_Update": "run-update", "Results_Add": "results-add", "Results_List": "results-list",
    "Results_Update": "results-update",
    "Attachments_Create Test Run Attachment": "attachment-create",
    "Attachments_Get Test Run Attachments": "attachment-list",
    "Statuses_Create": "commit-status-create", "Statuses_List": "commit-status-list",
    "Pull Request Statuses_Create": "pr-status-create", "Pull Request Statuses_List": "pr-status-list",
    "Pull Request Threads_List": "thread-list", "Pull Request Threads_Create": "thread-create",
    "Pull Request Threads_Get": "thread-get", "Pull Request Threads_Update": "thread-update",
    "Pull Request Thread Comments_Update": "comment-update", "Pull Request Thread Comments_Create": "comment-create",
}


@dataclass
class Project:
    """One project's remote state."""

    runs: dict[int, dict[str, Any]] = field(default_factory=dict)
    results: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    attachments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    commit_statuses: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    pr_statuses: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    threads: dict[int, list[dict[str, Any]]] = field(default_factory=dict)


class FakeAzure(FakeServer):
    """Start with ``with FakeAzure(test_spec, git_spec) as az:``; ``az.collection_url`` is the organization URL."""

    def __init__(self, test_spec: OpenApiSpec | None, git_spec: OpenApiSpec | None, *,
                 tokens: tuple[str, ...] = ("azure-pipeline-token",), pats: tuple[str, ...] = ("azure-pat",),
                 repository: str = "a5c6f0de-0000-4000-8000-00000000ad0e", pull_requests: tuple[int, ...] = (42,),
                 thread_page: int = 2, **kit: Any) -> None:
        super().__init__(spec=test_spec, **kit)
        self.git_spec = git_spec
        self.tokens, self.pats = set(tokens), set(pats)
        self.repository = repository
        self.thread_page = thread_page
        self.project = Project(threads={pr: [] for pr in pull_requests},
                               pr_statuses={pr: [] for pr in pull_requests})
        self.rate_limited = 0
        self._ids = itertools.count(1000)

    @property
    def collection_url(self) -> str:
        """``SYSTEM_COLLECTIONURI`` of the fake organization (with its trailing slash, as pipelines export it)."""
        return f"{self.origin}/{ORG}/"

    # --- test helpers --------------------------------------------------------------------------------

    def runs(self) -> list[dict[str, Any]]:
        with self.lock:
            return [copy.deepcopy(self._counted(r)) for r in self.project.runs.values()]

    def results(self, run_id: int) -> list[dict[str, Any]]:
        with self.lock:
            return [copy.deepcopy(r) for r in self.project.results.get(run_id, [])]

    def attachments(self, run_id: int) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(a) for a in self.project.attachments.get(run_id, [])]

    def commit_statuses(self, sha: str) -> list[dict[str, Any]]:
        with self.lock:
            return [copy.deepcopy(s) for s in self.project.commit_statuses.get(sha, [])]

    def pr_statuses(self, pr: int) -> list[dict[str, Any]]:
        with self.lock:
            return [copy.deepcopy(s) for s in self.project.pr_statuses.get(pr, [])]

    def threads(self, pr: int) -> list[dict[str, Any]]:
        with self.lock:
            return [copy.deepcopy(t) for t in self.project.threads.get(pr, [])]

    def add_thread(self, pr: int, content: str, *, key: str | None = None, status: str = "active") -> dict[str, Any]:
        """A thread someone (or an earlier job) left on the PR."""
        with self.lock:
            props = {"ci-sidecar.key": {"$type": "System.String", "$value": key}} if key else {}
            return self._new_thread(pr, content, props, status)

    def snapshot(self) -> dict[str, Any]:
        """What a person sees, without ids and times (two runs compare equal when they look alike)."""
        with self.lock:
            p = self.project
            runs = {}
            for run in map(self._counted, p.runs.values()):
                results = sorted((r["automatedTestName"], r["outcome"], r.get("errorMessage") or None, r.get("comment"),
                                  r.get("resultGroupType"), _attempts(r)) for r in p.results.get(run["id"], []))
                runs[run["name"]] = {
                    "state": run["state"], "totalTests": run["totalTests"], "passedTests": run["passedTests"],
                    "unanalyzedTests": run["unanalyzedTests"], "results": results,
                    "attachments": sorted((a["fileName"], a["size"], a["comment"])
                                          for a in p.attachments.get(run["id"], [])),
                }
            return {
                "runs": runs,
                "commit_statuses": {sha: _latest(ss) for sha, ss in sorted(p.commit_statuses.items())},
                "pr_statuses": {pr: _latest(ss) for pr, ss in sorted(p.pr_statuses.items())},
                "threads": {pr: sorted((_prop(t), t["status"], t["comments"][0]["content"]) for t in ts)
                            for pr, ts in sorted(p.threads.items())},
            }

    # --- the kit's hooks -----------------------------------------------------------------------------

    def error(self, status: int, message: Any, type_key: str = "InvalidArgumentValueException") -> Reply:
        return Reply(status, {"$id": "1", "innerException": None, "message": message,
                              "typeName": f"Microsoft.TeamFoundation.{type_key}, Microsoft.TeamFoundation",
                              "typeKey": type_key, "errorCode": 0, "eventId": 3000})

    def _authenticated(self, rec: Recorded) -> bool:
        auth = rec.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:] in self.tokens
        if auth.lower().startswith("basic "):
            try:
                user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            except (ValueError, binascii.Error):
                return False
            return user == "" and password in self.pats
        return False

    def gate(self, rec: Recorded) -> Reply | None:
        if not self._authenticated(rec):
            # Azure DevOps answers an unauthenticated API call with its sign-in page, not 401
            return Reply(203, SIGN_IN_PAGE, content_type="text/html; charset=utf-8")
        spec = self.git_spec if "/_apis/git/" in rec.path else self.spec
        if spec is None:
            return self.error(500, "fake started without a spec")
        query, rec.query = rec.query, {k: v for k, v in rec.query.items() if k != "continuationToken"}
        try:
            matched = spec.match(rec.method, rec.path)
            if matched is None:
                self.violation(f"{rec.method} {rec.path}: no such operation in the spec")
                return self.error(404, "The resource cannot be found.", "ApiResourceNotFoundException")
            route, params = matched
            rec.operation, rec.params = _OPS.get(route.operation_id, route.operation_id), params
            errors = spec.validate(route, params, rec.query, rec.raw or None)
        finally:
            rec.query = query
        if errors:
            self.violation(f"{route.operation_id}: " + "; ".join(errors))
            return self.error(400, "Invalid request: " + "; ".join(errors))
        if (rec.query.get("api-version") or [""])[0] != "7.1":
            return self.error(400, f"The requested REST API version of {rec.query.get('api-version')} is not "
                                   "supported here", "VssVersionOutOfRangeException")
        p = {k: unquote(v) for k, v in params.items()}
        if p.get("organization") != ORG or p.get("project") != PROJECT:
            return self.error(404, f"The project {p.get('project')!r} does not exist.", "ProjectDoesNotExistException")
        if "repositoryId" in p and p["repositoryId"] != self.repository:
            return self.error(404, "TF401019: The Git repository does not exist.", "GitRepositoryNotFoundException")
        return None

    def fault_reply(self, fault: Fault, rec: Recorded) -> Reply:
        if fault.kind != "429":
            return super().fault_reply(fault, rec)
        self.rate_limited += 1
        reply = self.error(429, "TF400733: The request has been canceled: Request was blocked due to exceeding "
                                "usage of resource 'Concurrency' in namespace 'User'.", "RequestBlockedException")
        wait = fault.retry_after if fault.retry_after is not None else 0
        reply.headers.update({"Retry-After": str(wait), "X-RateLimit-Resource": "Concurrency",
                              "X-RateLimit-Delay": "0.5", "X-RateLimit-Limit": "200", "X-RateLimit-Remaining": "0",
                              "X-RateLimit-Reset": "0"})
        return reply

    def respond(self, rec: Recorded) -> Reply:
        handler = getattr(self, "_" + (rec.operation or "").replace("-", "_"), None)
        if handler is None:
            return self.error(404, f"{rec.method} {rec.path} is not served by this fake")
        return handler(rec, {k: unquote(v) for k, v in rec.params.items()})

    # --- test runs -----------------------------------------------------------------------------------

    def _run(self, p: dict[str, str]) -> dict[str, Any] | None:
        run = self.project.runs.get(int(p["runId"]))
        return None if run is None else self._counted(run)

    def _counted(self, run: dict[str, Any]) -> dict[str, Any]:
        """The run with its totals as its results' outcomes say now (an update may change an outcome)."""
        outcomes = [str(r.get("outcome") or "") for r in self.project.results.get(run["id"], [])]
        run.update(totalTests=len(outcomes), passedTests=outcomes.count("Passed"),
                   unanalyzedTests=sum(o in ("Failed", "Error", "Aborted", "Timeout") for o in outcomes))
        return run

    def _missing_run(self, p: dict[str, str]) -> Reply:
        return self.error(404, f"Test run {p['runId']} not found.", "TestObjectNotFoundException")

    def _run_create(self, rec: Recorded, p: dict[str, str]) -> Reply:
        body = rec.body or {}
        rid = next(self._ids)
        api = f"https://dev.azure.com/{ORG}/{PROJECT}/_apis/test/Runs/{rid}"
        run = {"id": rid, "name": body.get("name"), "url": api, "isAutomated": bool(body.get("automated")),
               "state": body.get("state") or "NotStarted", "comment": body.get("comment"),
               "startedDate": body.get("startDate"), "totalTests": 0, "passedTests": 0, "unanalyzedTests": 0,
               "incompleteTests": 0, "notApplicableTests": 0, "revision": 1,
               "webAccessUrl": f"https://dev.azure.com/{ORG}/{PROJECT}/_TestManagement/Runs?runId={rid}"
                               "&_a=runCharts"}
        if isinstance(body.get("build"), dict):
            run["build"] = {"id": str(body["build"]["id"])}
        self.project.runs[rid] = run
        self.project.results[rid], self.project.attachments[rid] = [], []
        return Reply(200, run)

    def _run_list(self, rec: Recorded, p: dict[str, str]) -> Reply:
        runs = [self._counted(r) for r in self.project.runs.values()]
        build_uri = (rec.query.get("buildUri") or [None])[0]
        if build_uri:
            build = build_uri.rsplit("/", 1)[-1]
            runs = [r for r in runs if (r.get("build") or {}).get("id") == build]
        if (rec.query.get("automated") or [None])[0] == "true":
            runs = [r for r in runs if r["isAutomated"]]
        skip, top = _int(rec, "$skip", 0), _int(rec, "$top", 100)
        page = runs[skip:skip + top]
        return Reply(200, {"count": len(page), "value": page})

    def _run_get(self, rec: Recorded, p: dict[str, str]) -> Reply:
        run = self._run(p)
        return Reply(200, run) if run else self._missing_run(p)

    def _run_update(self, rec: Recorded, p: dict[str, str]) -> Reply:
        run = self._run(p)
        if run is None:
            return self._missing_run(p)
        body = rec.body or {}
        state = body.get("state")
        if state is not None and state not in ("NotStarted", "InProgress", "Completed", "Aborted", "Waiting"):
            return self.error(400, f"Invalid value {state!r} for state.")
        if state:
            run["state"] = state
        if body.get("completedDate"):
            run["completedDate"] = body["completedDate"]
        run["revision"] += 1
        return Reply(200, run)

    def _results_batch(self, rec: Recorded, p: dict[str, str]) -> tuple[dict[str, Any], list[dict[str, Any]]] | Reply:
        """The run and the results a Results_Add or Results_Update carries (≤ 1,000), or the error."""
        run = self._run(p)
        if run is None:
            return self._missing_run(p)
        items = list(rec.body or [])
        if len(items) > RESULTS_PER_POST:
            return self.error(400, f"The number of test results in one request cannot exceed {RESULTS_PER_POST}.")
        return run, items

    def _results_add(self, rec: Recorded, p: dict[str, str]) -> Reply:
        batch = self._results_batch(rec, p)
        if isinstance(batch, Reply):
            return batch
        run, items = batch
        if run["state"] in ("Completed", "Aborted"):
            return self.error(400, f"Test run {run['id']} is completed: results cannot be added.")
        if (bad := self._bad_groups(items)) is not None:
            return bad
        made = []
        for item in items:
            result = {**item, "id": next(self._ids), "testRun": {"id": str(run["id"])}}
            self._number_sub_results(result)
            self.project.results[run["id"]].append(result)
            made.append(_made(result))
        # on the wire Results_Add answers a {count, value} list, not the bare array the description declares
        return Reply(200, {"count": len(made), "value": made})

    def _bad_groups(self, items: list[dict[str, Any]]) -> Reply | None:
        """Sub-results belong to a result group (``resultGroupType`` other than ``none``)."""
        for item in items:
            if item.get("subResults") and item.get("resultGroupType") in (None, "none"):
                return self.error(400, "Sub results can only be added to a result whose resultGroupType is not None.")
        return None

    def _number_sub_results(self, result: dict[str, Any]) -> None:
        for sub in result.get("subResults") or []:
            sub.update(id=next(self._ids), parentId=result["id"],
                       testResult={"id": str(result["id"]), "testRun": result["testRun"]})

    def _results_update(self, rec: Recorded, p: dict[str, str]) -> Reply:
        batch = self._results_batch(rec, p)
        if isinstance(batch, Reply):
            return batch
        run, items = batch
        by_id = {r["id"]: r for r in self.project.results[run["id"]]}
        missing = [item.get("id") for item in items if item.get("id") not in by_id]
        if missing:
            return self.error(404, f"Test results {missing} not found in run {run['id']}.",
                              "TestObjectNotFoundException")
        if (bad := self._bad_groups([{**by_id[item["id"]], **item} for item in items])) is not None:
            return bad
        made = []
        for item in items:
            result = by_id[item["id"]]
            result.update(item)
            if "subResults" in item:
                self._number_sub_results(result)
            made.append(_made(result))
        return Reply(200, {"count": len(made), "value": made})

    def _results_list(self, rec: Recorded, p: dict[str, str]) -> Reply:
        run = self._run(p)
        if run is None:
            return self._missing_run(p)
        details = [d for d in (rec.query.get("detailsToInclude") or [""])[0].split(",") if d and d != "none"]
        # "$top: Maximum is 1000 when detailsToInclude is None and 200 otherwise" (a longer page is cut short)
        skip, top = _int(rec, "$skip", 0), min(_int(rec, "$top", 1000), 200 if details else 1000)
        page = self.project.results[run["id"]][skip:skip + top]
        if "subResults" not in details:
            page = [{k: v for k, v in r.items() if k != "subResults"} for r in page]
        return Reply(200, {"count": len(page), "value": page})

    def _attachment_create(self, rec: Recorded, p: dict[str, str]) -> Reply:
        run = self._run(p)
        if run is None:
            return self._missing_run(p)
        body = rec.body or {}
        try:
            data = base64.b64decode(body.get("stream") or "", validate=True)
        except (ValueError, binascii.Error):
            return self.error(400, "The attachment stream is not valid base64.")
        if len(data) > ATTACHMENT_BYTES:
            return self.error(400, f"The attachment is larger than the maximum allowed size of {ATTACHMENT_BYTES}.")
        aid = next(self._ids)
        url = f"https://dev.azure.com/{ORG}/{PROJECT}/_apis/test/Runs/{run['id']}/Attachments/{aid}"
        self.project.attachments[run["id"]].append({
            "id": aid, "url": url, "fileName": body.get("fileName"), "comment": body.get("comment"),
            "size": len(data), "attachmentType": "generalAttachment", "createdDate": "2026-01-01T00:00:00Z"})
        return Reply(200, {"id": aid, "url": url})

    def _attachment_list(self, rec: Recorded, p: dict[str, str]) -> Reply:
        run = self._run(p)
        if run is None:
            return self._missing_run(p)
        items = list(self.project.attachments[run["id"]])
        return Reply(200, {"count": len(items), "value": items})

    # --- statuses ------------------------------------------------------------------------------------

    def _status(self, rec: Recorded) -> dict[str, Any] | Reply:
        body = dict(rec.body or {})
        if not (body.get("context") or {}).get("name"):
            return self.error(400, "The status context name is required.")
        body.update(id=next(self._ids), creationDate="2026-01-01T00:00:00Z")
        return body

    def _commit_status_create(self, rec: Recorded, p: dict[str, str]) -> Reply:
        status = self._status(rec)
        if isinstance(status, Reply):
            return status
        self.project.commit_statuses.setdefault(p["commitId"], []).append(status)
        return Reply(200, status)

    def _commit_status_list(self, rec: Recorded, p: dict[str, str]) -> Reply:
        items = list(reversed(self.project.commit_statuses.get(p["commitId"], [])))
        return Reply(200, {"count": len(items), "value": items})

    def _pr(self, p: dict[str, str]) -> int | None:
        pr = int(p["pullRequestId"])
        return pr if pr in self.project.threads else None

    def _no_pr(self, p: dict[str, str]) -> Reply:
        return self.error(404, f"TF401180: The requested pull request {p['pullRequestId']} was not found.",
                          "GitPullRequestNotFoundException")

    def _pr_status_create(self, rec: Recorded, p: dict[str, str]) -> Reply:
        pr = self._pr(p)
        if pr is None:
            return self._no_pr(p)
        status = self._status(rec)
        if isinstance(status, Reply):
            return status
        self.project.pr_statuses[pr].append(status)
        return Reply(200, status)

    def _pr_status_list(self, rec: Recorded, p: dict[str, str]) -> Reply:
        pr = self._pr(p)
        if pr is None:
            return self._no_pr(p)
        items = list(self.project.pr_statuses[pr])
        return Reply(200, {"count": len(items), "value": items})

    # --- pull request threads ------------------------------------------------------------------------

    def _new_thread(self, pr: int, content: str, properties: dict[str, Any], status: str) -> dict[str, Any]:
        tid = next(self._ids)
        thread = {"id": tid, "status": status, "isDeleted": False, "properties": properties,
                  "comments": [{"id": 1, "parentCommentId": 0, "content": content, "commentType": "text",
                                "author": {"displayName": "Project Collection Build Service"}}],
                  "publishedDate": "2026-01-01T00:00:00Z",
                  "_links": {"self": {"href": f"https://dev.azure.com/{ORG}/_apis/git/repositories/"
                                              f"{self.repository}/pullRequests/{pr}/threads/{tid}"}}}
        self.project.threads[pr].append(thread)
        return thread

    def _too_long(self, content: Any) -> Reply | None:
        if isinstance(content, str) and len(content) > COMMENT_CHARS:
            return self.error(400, f"A discussion comment cannot be longer than {COMMENT_CHARS} characters.\r\n"
                                   "Parameter name: comment.Content", "ArgumentException")
        return None

    def _thread_list(self, rec: Recorded, p: dict[str, str]) -> Reply:
        pr = self._pr(p)
        if pr is None:
            return self._no_pr(p)
        page, headers = page_token(list(self.project.threads[pr]), rec.query, size=self.thread_page)
        return Reply(200, {"count": len(page), "value": page}, headers=headers)

    def _thread_create(self, rec: Recorded, p: dict[str, str]) -> Reply:
        pr = self._pr(p)
        if pr is None:
            return self._no_pr(p)
        body = rec.body or {}
        comments = body.get("comments") or []
        if not comments:
            return self.error(400, "A thread needs a comment.")
        if (bad := self._too_long(comments[0].get("content"))) is not None:
            return bad
        props = {k: {"$type": "System.String", "$value": v.get("value") if isinstance(v, dict) else v}
                 for k, v in (body.get("properties") or {}).items()}
        status = body.get("status") or "active"
        return Reply(200, self._new_thread(pr, str(comments[0].get("content") or ""), props, status))

    def _find_thread(self, p: dict[str, str]) -> dict[str, Any] | None:
        pr = self._pr(p)
        threads = self.project.threads.get(pr, []) if pr is not None else []
        return next((t for t in threads if t["id"] == int(p["threadId"]) and not t["isDeleted"]), None)

    def _thread_get(self, rec: Recorded, p: dict[str, str]) -> Reply:
        thread = self._find_thread(p)
        return Reply(200, thread) if thread else self.error(404, "The thread was not found.")

    def _thread_update(self, rec: Recorded, p: dict[str, str]) -> Reply:
        thread = self._find_thread(p)
        if thread is None:
            return self.error(404, "The thread was not found.")
        if (rec.body or {}).get("status"):
            thread["status"] = rec.body["status"]
        return Reply(200, thread)

    def _comment_update(self, rec: Recorded, p: dict[str, str]) -> Reply:
        thread = self._find_thread(p)
        comment = next((c for c in (thread or {}).get("comments", []) if c["id"] == int(p["commentId"])), None)
        if comment is None:
            return self.error(404, "The comment was not found.")
        if (bad := self._too_long((rec.body or {}).get("content"))) is not None:
            return bad
        comment["content"] = (rec.body or {}).get("content", comment["content"])
        return Reply(200, comment)

    def _comment_create(self, rec: Recorded, p: dict[str, str]) -> Reply:
        thread = self._find_thread(p)
        if thread is None:
            return self.error(404, "The thread was not found.")
        comment = {"id": len(thread["comments"]) + 1, "parentCommentId": (rec.body or {}).get("parentCommentId", 1),
                   "content": (rec.body or {}).get("content"), "commentType": "text"}
        thread["comments"].append(comment)
        return Reply(200, comment)


def _int(rec: Recorded, name: str, default: int) -> int:
    try:
        return int((rec.query.get(name) or [str(default)])[0])
    except ValueError:
        return default


def _latest(statuses: list[dict[str, Any]]) -> dict[str, tuple[Any, ...]]:
    """The status shown per ``genre/name``: the latest posted."""
    shown: dict[str, tuple[Any, ...]] = {}
    for s in statuses:
        ctx = s.get("context") or {}
        shown[f"{ctx.get('genre')}/{ctx.get('name')}"] = (s.get("state"), s.get("description"))
    return dict(sorted(shown.items()))


def _made(result: dict[str, Any]) -> dict[str, Any]:
    """A result as Results_Add and Results_Update answer it."""
    return {"id": result["id"], "project": {}, "testRun": result["testRun"], "url": ""}


def _attempts(result: dict[str, Any]) -> tuple[tuple[Any, ...], ...]:
    """A rerun's attempts as the Tests tab lists them."""
    return tuple((s.get("sequenceId"), s.get("displayName"), s.get("outcome"), s.get("durationInMs"),
                  s.get("errorMessage")) for s in result.get("subResults") or [])


def _prop(thread: dict[str, Any]) -> Any:
    value = (thread.get("properties") or {}).get("ci-sidecar.key")
    return value.get("$value") if isinstance(value, dict) else value
