"""A fake GitLab REST v4 API on 127.0.0.1 (the fake kit's server), serving ``/api/v4`` for what the provider uses.

Every request is validated against GitLab's own OpenAPI v2 subset (``gitlab/openapi_v2.ci-subset.json``); a
violation answers 400 and fails the test unless announced. GitLab's behaviour where our client could notice it:

* tokens: ``PRIVATE-TOKEN`` (or ``Authorization: Bearer``) with the ``api`` or only ``read_api`` scope (writes
  answer 403 ``insufficient_scope``), ``JOB-TOKEN`` accepted for generic packages only (anything else 401);
  ``401 {"message": "401 Unauthorized"}`` for unknown tokens, ``404 Project Not Found`` for unknown projects;
* commit statuses as GitLab's state machine: a pending/running status of the same (sha, ref, name) is moved on,
  a finished one is followed by a new status; an illegal transition answers 400 "Cannot transition status via
  :run from :running …"; description, target URL, name and ref longer than 255 characters answer 400;
* merge request notes by project-scoped iid, listed with ``X-Next-Page``/``X-Total``/``Link`` pagination (20 per
  page by default, 100 at most, newest first unless ``sort=asc``), a body over 1,000,000 characters answers 400,
  system notes and other users' notes present;
* generic packages: PUT of the raw file (``select=package_file`` answers the package file; a file PUT again
  under its name is a second file, as GitLab keeps it), GET of the latest file of that name, the project's
  packages listed (``package_name`` a fuzzy search, as GitLab's) and a package's files listed, both paginated;
  the job token may list them (GitLab 15.11 and later) unless ``job_token_lists=False`` (an older GitLab: 401).
  The spec subset does not describe the two lists: they are validated against ``gitlab_packages_spec``, written
  by hand from GitLab's documentation;
* faults from the kit (502/503/resets before the change, lost answers after it) and GitLab's 429 with
  ``RateLimit-*`` and ``Retry-After`` headers, and ``held``: the change is made and its answer held back until
  :meth:`FakeServer.release_held` (then dropped), so a test can kill the client between the two.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlencode

from ._server import FakeServer, Fault, Recorded, Reply, page_number_header
from .gitlab_packages_spec import with_packages_api
from .spec import OpenApiSpec

__all__ = ["FakeGitLab", "Token", "TRANSITIONS", "View", "World"]

PREFIX = "/api/v4"
TEXT_LIMIT = 255
NOTE_LIMIT = 1_000_000
_PACKAGES = r"/packages(/|$)"
_FILE_NAME = re.compile(r"^[A-Za-z0-9._~@+-]+$")
_VERSION = re.compile(r"^(\.?[\w+-]+\.?)+$")
#: GitLab's commit-status events: wanted state → (event, states it may leave from); "created" is a new status
TRANSITIONS = {
    "pending": ("enqueue", {"created"}),
    "running": ("run", {"pending"}),
    "success": ("success", {"created", "pending", "running"}),
    "failed": ("drop", {"created", "pending", "running"}),
    "canceled": ("cancel", {"created", "pending", "running"}),
    "skipped": ("skip", {"created", "pending"}),
}
_SHORT = {
    "GET /user": "user", "GET /personal_access_tokens/self": "token-self", "GET /projects/{id}": "project",
    "POST /projects/{id}/statuses/{sha}": "status-create",
    "GET /projects/{id}/repository/commits/{sha}/statuses": "status-list",
    "GET /projects/{id}/merge_requests/{merge_request_iid}": "mr",
    "GET /projects/{id}/merge_requests/{noteable_id}/notes": "note-list",
    "POST /projects/{id}/merge_requests/{noteable_id}/notes": "note-create",
    "GET /projects/{id}/merge_requests/{noteable_id}/notes/{note_id}": "note-get",
    "PUT /projects/{id}/merge_requests/{noteable_id}/notes/{note_id}": "note-update",
    "DELETE /projects/{id}/merge_requests/{noteable_id}/notes/{note_id}": "note-delete",
    "PUT /projects/{id}/packages/generic/{package_name}/{package_version}/{file_name}": "package-put",
    "GET /projects/{id}/packages/generic/{package_name}/{package_version}/{file_name}": "package-get",
    "GET /projects/{id}/packages": "package-list",
    "GET /projects/{id}/packages/{package_id}/package_files": "package-files",
}
_JOB_TOKEN_OPS = {"package-put", "package-get"}
_JOB_TOKEN_LISTS = {"package-list", "package-files"}  # GitLab 15.2 (packages) and 15.11 (their files)
#: what the package files API shows of a file
_FILE_FIELDS = ("id", "package_id", "created_at", "file_name", "size", "file_md5", "file_sha1", "file_sha256")


@dataclass
class Token:
    """A credential the fake accepts: ``api`` or ``read_api`` scope (personal/project tokens), or ``job``."""

    kind: str
    user_id: int = 11
    username: str = "project_7_bot"


@dataclass
class _Project:
    id: int
    path: str
    statuses: list[dict[str, Any]] = field(default_factory=list)
    notes: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    packages: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


class FakeGitLab(FakeServer):
    """Start with ``with FakeGitLab(spec) as gl:``; ``gl.api_url`` is ``CI_API_V4_URL``."""

    def __init__(self, spec: OpenApiSpec | None, *, tokens: dict[str, Token] | None = None,
                 merge_requests: tuple[int, ...] = (5,), job_token_lists: bool = True, **kit: Any) -> None:
        super().__init__(spec=with_packages_api(spec) if spec is not None else None, **kit)
        self.job_token_ops = _JOB_TOKEN_OPS | (_JOB_TOKEN_LISTS if job_token_lists else set())
        self.tokens = tokens if tokens is not None else {
            "glpat-apitoken": Token("api"), "glpat-readonly": Token("read_api", 12, "reader"),
            "job-token-123": Token("job", 13, "job"),
        }
        self.project = _Project(7, "group/proj")
        self.project.notes = {iid: [] for iid in merge_requests}
        self.rate_limited = 0  # 429s answered
        self._ids = itertools.count(1000)

    @property
    def api_url(self) -> str:
        return self.origin + PREFIX

    # --- test helpers --------------------------------------------------------------------------------

    def statuses(self, sha: str | None = None) -> list[dict[str, Any]]:
        """Every status (oldest first), or those on ``sha``."""
        with self.lock:
            return [dict(s) for s in self.project.statuses if sha is None or s["sha"] == sha]

    def latest_statuses(self, sha: str) -> dict[str, dict[str, Any]]:
        """name → the newest status of that name on ``sha`` (what the MR's pipeline widget shows)."""
        out: dict[str, dict[str, Any]] = {}
        for status in self.statuses(sha):
            out[status["name"]] = status
        return out

    def notes(self, iid: int) -> list[dict[str, Any]]:
        """The MR's notes, oldest first."""
        with self.lock:
            return [dict(n) for n in self.project.notes.get(iid, [])]

    def add_note(self, iid: int, body: str, *, user_id: int = 99, username: str = "someone",
                 system: bool = False) -> dict[str, Any]:
        """A note by somebody else, a system note, or a leftover of ours."""
        with self.lock:
            return self._new_note(iid, body, user_id, username, system)

    def add_package_file(self, name: str, version: str, file_name: str, data: bytes) -> None:
        """A generic package file somebody else (or an earlier job) stored."""
        with self.lock:
            self._store(name, version, file_name, data)

    def package_files(self, name: str = "ci-sidecar") -> list[dict[str, Any]]:
        """Every uploaded generic package file of ``name`` (duplicates included), oldest first."""
        with self.lock:
            return [dict(f) for (pkg, _v), p in self.project.packages.items() if pkg == name for f in p["files"]]

    # --- the kit's hooks -----------------------------------------------------------------------------

    def _token(self, rec: Recorded) -> tuple[str, Token | None]:
        if "job-token" in rec.headers:
            token = self.tokens.get(rec.headers["job-token"])
            return "job", token if token is not None and token.kind == "job" else None
        value = rec.headers.get("private-token") or ""
        auth = rec.headers.get("authorization", "")
        if not value and auth.lower().startswith("bearer "):
            value = auth[7:]
        token = self.tokens.get(value)
        return "private", token if token is not None and token.kind != "job" else None

    def gate(self, rec: Recorded) -> Reply | None:
        if not rec.path.startswith(PREFIX + "/"):
            return self.error(404, "404 Not Found")
        checked = self.check_spec(rec, rec.path)
        if isinstance(checked, Reply):
            return checked
        route, _params = checked
        rec.operation = _SHORT.get(f"{route.method} {route.template.removeprefix(PREFIX)}", rec.operation)
        _how, token = self._token(rec)
        if token is None or (token.kind == "job" and rec.operation not in self.job_token_ops):
            return self.error(401, "401 Unauthorized")
        if token.kind == "read_api" and rec.method != "GET":
            return Reply(403, {"error": "insufficient_scope", "error_description": "The request requires higher "
                               "privileges than provided by the access token.", "scope": "api"})
        ident = unquote(rec.params.get("id", ""))
        if ident and ident not in (str(self.project.id), self.project.path):
            return self.error(404, "404 Project Not Found")
        return None

    def error(self, status: int, message: Any) -> Reply:
        return Reply(status, {"message": message})

    def check_spec(self, rec: Recorded, path: str) -> Any:
        checked = super().check_spec(rec, path)
        if isinstance(checked, Reply) and checked.status == 422:
            checked.status = 400  # GitLab answers invalid parameters with 400
        return checked

    def resource(self, rec: Recorded) -> str:
        name = rec.body.get("name", "") if isinstance(rec.body, dict) else ""
        return f"{rec.method} {rec.path} {name}"

    def fault_reply(self, fault: Fault, rec: Recorded) -> Reply:
        if fault.kind != "429":
            return super().fault_reply(fault, rec)
        self.rate_limited += 1
        reset = int(time.time()) + (fault.retry_after or 0)
        headers = {"RateLimit-Name": "throttle_authenticated_api", "RateLimit-Limit": "60",
                   "RateLimit-Observed": "61", "RateLimit-Remaining": "0", "RateLimit-Reset": str(reset),
                   "RateLimit-ResetTime": formatdate(reset, usegmt=True)}
        if fault.retry_after is not None:
            headers["Retry-After"] = str(fault.retry_after)
        return Reply(429, {"message": {"error": "This endpoint has been requested too many times. Try again later."}},
                     headers)

    def respond(self, rec: Recorded) -> Reply:
        _how, token = self._token(rec)
        assert token is not None
        handler = getattr(self, "_" + (rec.operation or "").replace("-", "_"), None)
        if handler is None:
            return self.error(404, "404 Not Found")
        return handler(rec, token)

    # --- behaviour -----------------------------------------------------------------------------------

    def _user(self, rec: Recorded, token: Token) -> Reply:
        return Reply(200, {"id": token.user_id, "username": token.username, "name": token.username,
                           "state": "active", "bot": token.username.endswith("_bot")})

    def _token_self(self, rec: Recorded, token: Token) -> Reply:
        return Reply(200, {"id": 1, "name": "ci", "revoked": False, "active": True, "user_id": token.user_id,
                           "scopes": [token.kind], "expires_at": None})

    def _project(self, rec: Recorded, token: Token) -> Reply:
        p = self.project
        return Reply(200, {"id": p.id, "path_with_namespace": p.path, "web_url": f"https://gitlab.example/{p.path}"})

    def _mr(self, rec: Recorded, token: Token) -> Reply:
        iid = int(rec.params["merge_request_iid"])
        if iid not in self.project.notes:
            return self.error(404, "404 Not found")
        return Reply(200, {"iid": iid, "id": 90000 + iid, "project_id": self.project.id, "state": "opened"})

    def _status_create(self, rec: Recorded, token: Token) -> Reply:
        body = rec.body if isinstance(rec.body, dict) else {}
        sha = rec.params["sha"]
        for key in ("description", "target_url", "name", "ref"):
            if len(str(body.get(key) or "")) > TEXT_LIMIT:
                return self.error(400, {key: [f"is too long (maximum is {TEXT_LIMIT} characters)"]})
        name = body.get("name") or body.get("context") or "default"
        ref = body.get("ref") or "main"
        wanted = body["state"]
        status = next((s for s in reversed(self.project.statuses) if s["sha"] == sha and s["name"] == name
                       and s["ref"] == ref and s["status"] in ("pending", "running")), None)
        current = status["status"] if status is not None else "created"
        if wanted == "running" and current == "created":
            current = "pending"  # GitLab enqueues a new status before running it
        event, allowed = TRANSITIONS[wanted]
        if current not in allowed:
            return self.error(400, f"Cannot transition status via :{event} from :{current} "
                                   f"(Reason(s): Status cannot transition via \"{event}\")")
        if status is None:
            status = {"id": next(self._ids), "sha": sha, "ref": ref, "name": name, "created_at": _now(),
                      "started_at": None, "finished_at": None, "allow_failure": False, "coverage": None,
                      "author": {"id": token.user_id, "username": token.username},
                      "pipeline_id": body.get("pipeline_id")}
            self.project.statuses.append(status)
        status["status"] = wanted
        for key in ("description", "target_url", "coverage"):
            if key in body:
                status[key] = body[key]
        status.setdefault("description", None)
        status.setdefault("target_url", None)
        if wanted == "running":
            status["started_at"] = _now()
        if wanted in ("success", "failed", "canceled", "skipped"):
            status["finished_at"] = _now()
        return Reply(201, dict(status))

    def _status_list(self, rec: Recorded, token: Token) -> Reply:
        sha, q = rec.params["sha"], rec.query
        items = [s for s in self.project.statuses if s["sha"] == sha
                 and all(s.get(k) == q[k][0] for k in ("name", "ref") if k in q)]
        if (q.get("all") or ["false"])[0] != "true":
            latest: dict[tuple[str, str], dict[str, Any]] = {}
            for s in items:
                latest[(s["name"], s["ref"])] = s
            items = sorted(latest.values(), key=lambda s: s["id"])
        return self._paged(rec, [dict(s) for s in items])

    def _paged(self, rec: Recorded, items: list[Any]) -> Reply:
        chunk, headers = page_number_header(items, rec.query, default=20, cap=100)
        per = int(headers["X-Per-Page"])
        page = int(headers["X-Page"])
        pages = max(1, -(-len(items) // per))
        headers.update({"X-Total-Pages": str(pages), "X-Prev-Page": str(page - 1) if page > 1 else ""})
        if headers["X-Next-Page"]:
            q = {k: v[0] for k, v in rec.query.items()}
            q.update(page=headers["X-Next-Page"], per_page=str(per))
            headers["Link"] = f'<{self.origin}{rec.path}?{urlencode(q)}>; rel="next"'
        return Reply(200, chunk, headers)

    def _notes_of(self, rec: Recorded) -> list[dict[str, Any]] | None:
        return self.project.notes.get(int(rec.params["noteable_id"]))

    def _new_note(self, iid: int, body: str, user_id: int, username: str, system: bool = False) -> dict[str, Any]:
        note = {"id": next(self._ids), "type": None, "body": body, "system": system, "noteable_iid": iid,
                "noteable_type": "MergeRequest", "author": {"id": user_id, "username": username},
                "created_at": _now(), "updated_at": _now(), "resolvable": False, "internal": False}
        self.project.notes.setdefault(iid, []).append(note)
        return note

    def _note_list(self, rec: Recorded, token: Token) -> Reply:
        notes = self._notes_of(rec)
        if notes is None:
            return self.error(404, "404 Not found")
        ordered = sorted(notes, key=lambda n: n["id"], reverse=(rec.query.get("sort") or ["desc"])[0] == "desc")
        return self._paged(rec, [dict(n) for n in ordered])

    def _note_body(self, rec: Recorded) -> str | Reply:
        body = rec.body.get("body") if isinstance(rec.body, dict) else None
        if not isinstance(body, str) or not body:
            return self.error(400, "400 Bad request - body is missing")
        if len(body) > NOTE_LIMIT:
            return self.error(400, {"note": [f"is too long (maximum is {NOTE_LIMIT} characters)"]})
        return body

    def _note_create(self, rec: Recorded, token: Token) -> Reply:
        if self._notes_of(rec) is None:
            return self.error(404, "404 Not found")
        body = self._note_body(rec)
        if isinstance(body, Reply):
            return body
        return Reply(201, dict(self._new_note(int(rec.params["noteable_id"]), body, token.user_id, token.username)))

    def _find_note(self, rec: Recorded) -> dict[str, Any] | None:
        return next((n for n in self._notes_of(rec) or [] if n["id"] == int(rec.params["note_id"])), None)

    def _note_get(self, rec: Recorded, token: Token) -> Reply:
        note = self._find_note(rec)
        return Reply(200, dict(note)) if note else self.error(404, "404 Note Not Found")

    def _note_update(self, rec: Recorded, token: Token) -> Reply:
        note = self._find_note(rec)
        if note is None:
            return self.error(404, "404 Note Not Found")
        if note["author"]["id"] != token.user_id:
            return self.error(403, "403 Forbidden")
        body = self._note_body(rec)
        if isinstance(body, Reply):
            return body
        note.update(body=body, updated_at=_now())
        return Reply(200, dict(note))

    def _note_delete(self, rec: Recorded, token: Token) -> Reply:
        note = self._find_note(rec)
        if note is None:
            return self.error(404, "404 Note Not Found")
        self._notes_of(rec).remove(note)  # type: ignore[union-attr]
        return Reply(204)

    def _package_put(self, rec: Recorded, token: Token) -> Reply:
        name, version, file_name = (unquote(rec.params[k]) for k in ("package_name", "package_version", "file_name"))
        if not _FILE_NAME.match(file_name) or not _VERSION.match(version):
            return self.error(400, "400 Bad request - file_name or package_version is invalid")
        item = self._store(name, version, file_name, rec.raw)
        if (rec.query.get("select") or [""])[0] == "package_file":
            return Reply(201, {k: v for k, v in item.items() if k not in ("data", "version")})
        return Reply(201, {"message": "201 Created"})

    def _store(self, name: str, version: str, file_name: str, data: bytes) -> dict[str, Any]:
        package = self.project.packages.setdefault((name, version), {"id": next(self._ids), "files": [],
                                                                     "created_at": _now()})
        item = {"id": next(self._ids), "package_id": package["id"], "file_name": file_name, "size": len(data),
                "file_md5": hashlib.md5(data).hexdigest(), "file_sha1": hashlib.sha1(data).hexdigest(),
                "file_sha256": hashlib.sha256(data).hexdigest(), "created_at": _now(), "version": version,
                "data": data}
        package["files"].append(item)
        return item

    def _package_get(self, rec: Recorded, token: Token) -> Reply:
        name, version, file_name = (unquote(rec.params[k]) for k in ("package_name", "package_version", "file_name"))
        files = [f for f in (self.project.packages.get((name, version)) or {}).get("files", [])
                 if f["file_name"] == file_name]
        if not files:
            return self.error(404, "404 Package Not Found")
        return Reply(200, files[-1]["data"], content_type="application/octet-stream")

    def _package_list(self, rec: Recorded, token: Token) -> Reply:
        q = {k: v[0] for k, v in rec.query.items()}
        fuzzy = q.get("package_name", "").lower()  # GitLab: ILIKE %name%
        found = [{"id": p["id"], "name": name, "version": version, "package_type": "generic", "status": "default",
                  "created_at": p["created_at"], "tags": [], "pipeline": None,
                  "_links": {"web_path": f"/{self.project.path}/-/packages/{p['id']}",
                             "delete_api_path": f"{self.api_url}/projects/{self.project.id}/packages/{p['id']}"}}
                 for (name, version), p in self.project.packages.items()
                 if fuzzy in name.lower() and q.get("package_version") in (None, version)
                 and q.get("package_type") in (None, "generic")]
        order = {"type": "package_type"}.get(q.get("order_by", "created_at"), q.get("order_by", "created_at"))
        found.sort(key=lambda p: (p[order], p["id"]), reverse=q.get("sort") == "desc")
        return self._paged(rec, found)

    def _package_files(self, rec: Recorded, token: Token) -> Reply:
        package = next((p for p in self.project.packages.values() if p["id"] == int(rec.params["package_id"])), None)
        if package is None:
            return self.error(404, "404 Package Not Found")
        files = [{k: f[k] for k in _FILE_FIELDS} | {"pipelines": []} for f in package["files"]]
        order = rec.query.get("order_by", ["id"])[0]
        files.sort(key=lambda f: (f[order], f["id"]), reverse=rec.query.get("sort", ["asc"])[0] == "desc")
        return self._paged(rec, files)


# --- the provider-neutral scenario (fakes.scenario) on GitLab ------------------------------------------


@dataclass(frozen=True)
class View:
    """What a person sees on the MR: the newest status per name, the notes, the pipeline's package files."""

    #: (name, state, description) of the newest status per name on the MR's source commit
    statuses: tuple[tuple[str, str, str | None], ...]
    #: every status ever written on it (a duplicate would show here)
    status_count: int
    #: bodies of the MR's notes, oldest first
    notes: tuple[str, ...]
    #: (file name, size) of every generic package file, duplicates included
    packages: tuple[tuple[str, int], ...]

    def differences(self, other: View) -> list[str]:
        return [f"{name}: {getattr(self, name)!r} != {getattr(other, name)!r}"
                for name in ("statuses", "status_count", "notes", "packages")
                if getattr(self, name) != getattr(other, name)]


class World:
    """One GitLab merge request pipeline job against a fake GitLab (a ``fakes.scenario.ScenarioWorld``)."""

    SOURCE = "e5" * 20  # CI_MERGE_REQUEST_SOURCE_BRANCH_SHA
    MERGE = "f6" * 20  # CI_COMMIT_SHA of a merged-results pipeline
    IID = 5
    TOKEN = "glpat-scenarioT0kenNeverShown"

    def __init__(self, spec: OpenApiSpec, *, fault_rate: float = 0.0, seed: int = 1) -> None:
        self.fault_rate = fault_rate
        self._kill_on_hold = False
        self.gitlab = FakeGitLab(spec, tokens={self.TOKEN: Token("api")}, fault_rate=fault_rate, seed=seed,
                                 lost_methods=("POST", "PUT"), per_resource_faults=True)

    def __enter__(self) -> World:
        self.gitlab.__enter__()
        if self.gitlab.fault_rate:
            # whatever the seed: the first answer of every kind of write is lost after the fake made it, and
            # every kind of failure before the fake commits happens at least once
            for method, path in (("POST", "/statuses/"), ("POST", "/notes$"), ("PUT", "/packages/")):
                self.gitlab.inject("lost", method, path)
            for kind, method, path in (("502", "GET", "/notes$"), ("503", "POST", "/statuses/"),
                                       ("429", "PUT", "/notes/"), ("reset", "PUT", "/packages/")):
                self.gitlab.inject(kind, method, path, retry_after=0)
        return self

    def __exit__(self, *exc: object) -> None:
        self.gitlab.__exit__(*exc)

    def job_env(self, root: Path, *, tokens: bool = True) -> dict[str, str]:
        project = root / "project"
        project.mkdir(parents=True, exist_ok=True)
        env = {
            "CI": "true", "GITLAB_CI": "true", "CI_API_V4_URL": self.gitlab.api_url, "CI_PROJECT_ID": "7",
            "CI_PROJECT_PATH": "group/proj", "CI_PROJECT_URL": "https://gitlab.example/group/proj",
            "CI_PROJECT_DIR": str(project), "CI_JOB_ID": "77", "CI_JOB_NAME": "test", "CI_PIPELINE_ID": "321",
            "CI_PIPELINE_SOURCE": "merge_request_event", "CI_COMMIT_SHA": self.MERGE, "CI_COMMIT_REF_NAME": "feature",
            "CI_MERGE_REQUEST_IID": str(self.IID), "CI_MERGE_REQUEST_SOURCE_BRANCH_SHA": self.SOURCE,
            "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": "feature", "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main",
            "CI_SIDECAR_OUTPUT_DIR": str(root / "ci-sidecar-out"),
        }
        if tokens:
            env["GITLAB_TOKEN"] = self.TOKEN
        return env

    def check_capabilities(self, roles: dict[str, Any]) -> None:
        caps = roles["ci"]
        assert caps["test_run"]["via"] == "commit status" and caps["artifacts"]["kind"] == "native", caps

    def hold_for_kill(self) -> None:
        """The job will be killed: at the first upload of the job's fourth artifact (a first attempt, as no other
        fault takes precedence), the file is stored and its answer held back, and that is when
        :meth:`remote_started` says to kill — the window between GitLab storing a file and the daemon journaling
        it, where a daemon that does not look before uploading again stores a second copy."""
        self._kill_on_hold = True
        with self.gitlab.lock:
            self.gitlab.faults.insert(0, Fault("held", "PUT", r"/packages/generic/.*_shard-03\.log$"))

    def remote_started(self) -> bool:
        return bool(self.gitlab.held) if self._kill_on_hold else bool(self.gitlab.statuses())

    def wait_idle(self) -> None:
        self.gitlab.release_held()
        self.gitlab.wait_idle()

    def secrets(self) -> list[str]:
        return [self.TOKEN]

    def calls(self) -> list[Recorded]:
        return self.gitlab.calls()

    def view(self) -> View:
        latest = self.gitlab.latest_statuses(self.SOURCE)
        return View(
            statuses=tuple(sorted((k, v["status"], v["description"]) for k, v in latest.items())),
            status_count=len(self.gitlab.statuses(self.SOURCE)),
            notes=tuple(n["body"] for n in self.gitlab.notes(self.IID)),
            packages=tuple(sorted((f["file_name"], f["size"]) for f in self.gitlab.package_files())),
        )

    def rest_calls(self) -> list[Recorded]:
        return [r for r in self.gitlab.calls() if not re.search(_PACKAGES, r.path)]

    def artifact_calls(self) -> list[Recorded]:
        """Package uploads and the package lookups before a retried one."""
        return self.gitlab.calls(path=_PACKAGES)

    def violations(self) -> list[str]:
        return self.gitlab.violations
