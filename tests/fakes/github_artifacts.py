"""A fake GitHub Actions artifact service: the results service's twirp ``ArtifactService`` and an Azure-like blob
store, on one real HTTP server on 127.0.0.1; plus :class:`FakeGitHubArtifacts`, the fake REST API extended with
the run's artifact list (and ``GET /repos/{owner}/{repo}`` and the ``x-oauth-scopes`` header, for doctor).

Messages are checked against the ``@actions/artifact`` definitions (PROVIDERS.md §1c,
``generated/results/api/v1/artifact.ts``): proto field names in snake_case, int64 as JSON strings,
``StringValue`` as plain strings, Timestamps as RFC 3339; a missing, unknown or mistyped field answers twirp's
``400 {"code": "malformed"}`` and is recorded in ``violations`` (the fixture fails the test on any).

Behaviour, as far as it is documented or observed:

* ``Authorization: Bearer <runtime JWT>``; the body's backend ids must be the token's ``Actions.Results`` ids;
* names are unique per workflow run across jobs: ``CreateArtifact`` for a finalized name answers
  ``409 already_exists`` "an artifact with this name already exists on the workflow run" (the message users see);
  for a name the same job created but never finalized it hands out a fresh upload URL (ASSUMPTION: the toolkit
  retries CreateArtifact on 5xx, which only works if the service allows this); ``FinalizeArtifact`` twice
  answers ``409`` (ASSUMPTION);
* at most 500 artifacts per job (``@actions/upload-artifact``'s documented limit): the 501st ``CreateArtifact``
  of a job answers ``400 failed_precondition`` with :data:`TOO_MANY` (ASSUMPTION: code and text are not
  documented; the limit is);
* blobs: single ``PUT`` (``x-ms-blob-type: BlockBlob`` required), Put Block (``comp=block``, base64 ids of one
  length) and Put Block List (``comp=blocklist``, XML); ``Content-Length`` required (no chunked bodies); a bad
  signature answers 403; an ``Authorization`` header is a violation (the runtime token must stay with the
  results service);
* ``FinalizeArtifact`` checks the size and ``sha256:`` hash against the committed blob, and that a version 4
  artifact is a readable zip (what GitHub serves it as).

Faults: ``inject(kind, method)`` with ``kind`` in ``503``, ``429``, ``reset`` (before anything happens) and
``lost`` (the change is made, the answer never arrives); ``method`` is a twirp method name or ``blob``; or
``FakeResults(fault_rate=0.3)`` for a seeded random share of them (``lost`` only where something is created).
Server, recording and fault plumbing come from the fake kit (:mod:`fakes._server`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import shutil
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from typing import Any
from xml.etree import ElementTree

from ._server import Drop, FakeServer, Fault, Recorded, Reply
from .github import FakeGitHub
from .spec import OpenApiSpec, load_spec, spec_path

__all__ = ["FakeResults", "FakeGitHubArtifacts", "make_runtime_token", "extended_github_spec"]

SERVICE_PREFIX = "/twirp/github.actions.results.api.v1.ArtifactService/"
CONFLICT = "an artifact with this name already exists on the workflow run"
#: artifacts one job may create
MAX_PER_JOB = 500
TOO_MANY = f"the maximum number of artifacts for this job ({MAX_PER_JOB}) has been reached"
_IDS = {"workflow_run_backend_id": str, "workflow_job_run_backend_id": str}
_INT64 = re.compile(r"^-?\d+$")
_RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
_HASH = re.compile(r"^sha256:[0-9a-f]{64}$")
_BAD_NAME = re.compile(r'[":<>|*?\r\n\\/]')
#: the calls that create something (a lost answer is only interesting where a retry could duplicate)
_CREATES = ("CreateArtifact", "FinalizeArtifact", "blob")
#: message → (required fields, optional fields); types: str, int, "int64" (a JSON string), "timestamp"
MESSAGES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "CreateArtifact": ({**_IDS, "name": str, "version": int}, {"expires_at": "timestamp", "mime_type": str}),
    "FinalizeArtifact": ({**_IDS, "name": str, "size": "int64"}, {"hash": str}),
    "ListArtifacts": (dict(_IDS), {"name_filter": str, "id_filter": "int64"}),
    "GetSignedArtifactURL": ({**_IDS, "name": str}, {}),
    "DeleteArtifact": ({**_IDS, "name": str}, {}),
}


def make_runtime_token(run: str, job: str, *, exp: float | None = None, extra_scopes: str = "Actions.GenericRead:x") -> str:
    """A JWT shaped like ``ACTIONS_RUNTIME_TOKEN`` (unsigned: only the fake reads it)."""

    def b64(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    claims: dict[str, Any] = {"scp": f"{extra_scopes} Actions.Results:{run}:{job}", "iss": "fake"}
    claims["exp"] = int(exp if exp is not None else time.time() + 3600)
    return f"{b64({'typ': 'JWT', 'alg': 'RS256'})}.{b64(claims)}.{secrets.token_urlsafe(16)}"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass
class FakeArtifact:
    run: str
    job: str
    name: str
    version: int
    blob: str
    finalized: bool = False
    id: int = 0
    size: int = 0
    digest: str = ""
    created_at: str = field(default_factory=_now)


@dataclass
class _BlobState:
    """One blob; committed data and uncommitted blocks live in files (a large upload must not be measured as
    the fake's memory when a test checks the client's)."""

    sig: str
    path: str
    committed: bool = False
    blocks: dict[str, str] = field(default_factory=dict)  # block id → file
    content_type: str | None = None
    writes: int = 0

    def put(self, raw: bytes) -> None:
        with open(self.path, "wb") as fh:
            fh.write(raw)
        self.committed = True

    def data(self) -> bytes | None:
        if not self.committed:
            return None
        with open(self.path, "rb") as fh:
            return fh.read()

    def size(self) -> int:
        return os.path.getsize(self.path) if self.committed else 0

    def sha256(self) -> str:
        digest = hashlib.sha256()
        with open(self.path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest()


class FakeResults(FakeServer):
    """Start with ``with FakeResults() as svc:``; ``svc.url`` is ``ACTIONS_RESULTS_URL``."""

    fault_kinds = ("503", "429", "reset", "lost")

    def __init__(self, *, fault_rate: float = 0.0, seed: int = 1, fault_retry_after: int | None = 0,
                 per_resource_faults: bool = False) -> None:
        #: share of requests answered with a random fault (503, 429, a reset, or — for the calls that
        #: create something — a lost answer after the change is made); 503/429 carry ``fault_retry_after``
        #: (per resource: rolled per artifact); blob bodies are not kept (a large upload would be measured
        #: as the client's memory)
        super().__init__(fault_rate=fault_rate, seed=seed, fault_retry_after=fault_retry_after,
                         per_resource_faults=per_resource_faults, keep_bodies=False)
        #: token → (run backend id, job backend id)
        self.tokens: dict[str, tuple[str, str]] = {}
        self.artifacts: list[FakeArtifact] = []
        self.blobs: dict[str, _BlobState] = {}
        self._ids = iter(range(5000, 10**9))
        self.dir = tempfile.mkdtemp(prefix="fake-blobs-")

    # --- lifecycle and helpers ----------------------------------------------------------------------

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def url(self) -> str:
        return self.origin + "/"

    def token(self, run: str = "run-uuid-1", job: str = "job-uuid-1", *, exp: float | None = None) -> str:
        """A runtime token for one job run, accepted by this service."""
        value = make_runtime_token(run, job, exp=exp)
        with self.lock:
            self.tokens[value] = (run, job)
        return value

    def inject(self, kind: str, method: str | None = None, times: int = 1) -> None:  # type: ignore[override]
        """Queue a fault; ``method`` is a twirp method name or ``blob``."""
        assert kind in self.fault_kinds, kind
        with self.lock:
            self.faults.append(Fault(kind, method, None, times, None))

    def finalized(self, run: str = "run-uuid-1") -> list[FakeArtifact]:
        with self.lock:
            return [a for a in self.artifacts if a.run == run and a.finalized]

    def content(self, artifact: FakeArtifact) -> bytes:
        with self.lock:
            data = self.blobs[artifact.blob].data()
        assert data is not None
        return data

    def calls(self, what: str | None = None) -> list[Recorded]:  # type: ignore[override]
        """Requests seen; ``what`` is a twirp method name or ``blob``."""
        return super().calls(operation=what)

    # --- behaviour ---------------------------------------------------------------------------------------

    def gate(self, rec: Recorded) -> Reply | None:
        is_twirp = rec.path.startswith(SERVICE_PREFIX)
        rec.operation = rec.path[len(SERVICE_PREFIX):] if is_twirp else "blob"
        if rec.chunked:
            self.violation(f"{rec.method} {rec.path}: chunked body (Content-Length required)")
            return Reply(411, b"<Error><Code>MissingContentLengthHeader</Code></Error>", {"Connection": "close"},
                         "application/xml")
        return None

    def resource(self, rec: Recorded) -> str:
        return f"{rec.operation} {self._artifact_of(rec.operation or '', rec.path, rec.raw)}"

    def lost_allowed(self, rec: Recorded) -> bool:
        return rec.operation in _CREATES

    def fault_reply(self, fault: Fault, rec: Recorded) -> Reply:
        if fault.kind == "reset":
            raise Drop
        retry = ({"Retry-After": str(self.fault_retry_after)}
                 if fault.random and self.fault_retry_after is not None else {})
        return Reply(int(fault.kind), {"code": "unavailable", "msg": "try again"}, retry, "application/json")

    def respond(self, rec: Recorded) -> Reply:
        if rec.operation != "blob" and rec.method == "POST":
            status, payload = self._twirp(rec, rec.raw)
            return Reply(status, payload, content_type="application/json")
        if rec.path.startswith("/blob/") and rec.method == "PUT":
            status, code = self.blob(rec, rec.raw)
            data = b"" if code is None else (f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code>'
                                             f"<Message>{code}</Message></Error>").encode()
            return Reply(status, data, content_type="application/xml")
        return Reply(404, b'{"code":"bad_route","msg":"no such route"}', content_type="application/json")

    def _artifact_of(self, operation: str, path: str, raw: bytes) -> str | None:
        """The artifact name a request is about (random faults are rolled per artifact)."""
        if operation == "blob":
            blob = path.rsplit("/", 1)[-1]
            return next((a.name for a in self.artifacts if a.blob == blob), None)
        try:
            body = json.loads(raw)
        except ValueError:
            return None
        return str(body.get("name")) if isinstance(body, dict) else None

    def check_message(self, method: str, body: Any) -> str | None:
        """Why a twirp request body is not a valid JSON ``<method>Request`` (None when it is)."""
        if method not in MESSAGES:
            return f"no such method {method}"
        if not isinstance(body, dict):
            return "the body is not a JSON object"
        required, optional = MESSAGES[method]
        for key in body:
            if key not in required and key not in optional:
                return f"unknown field {key!r} (proto field names are snake_case)"
        for key in required:
            if key not in body:
                return f"missing field {key!r}"
        for key, kind in {**required, **optional}.items():
            if key not in body:
                continue
            value = body[key]
            if kind is str and not isinstance(value, str):
                return f"{key} must be a string"
            if kind is int and (not isinstance(value, int) or isinstance(value, bool)):
                return f"{key} must be a JSON number (int32)"
            if kind == "int64" and not (isinstance(value, str) and _INT64.match(value)):
                return f"{key} is an int64: a decimal string"
            if kind == "timestamp" and not (isinstance(value, str) and _RFC3339.match(value)):
                return f"{key} must be an RFC 3339 timestamp"
        return None

    def twirp(self, method: str, body: dict[str, Any], run: str, job: str, base: str) -> tuple[int, Any]:
        """The real behaviour of one valid, authorised twirp call."""
        name = body.get("name")
        if method == "CreateArtifact":
            if not name or _BAD_NAME.search(name):
                self.violation(f"CreateArtifact: invalid artifact name {name!r}")
                return 400, {"code": "invalid_argument", "msg": f"invalid artifact name {name!r}"}
            if body["version"] not in (4, 7):
                self.violation(f"CreateArtifact: unknown version {body['version']}")
                return 400, {"code": "invalid_argument", "msg": "unsupported artifact version"}
            existing = next((a for a in self.artifacts if a.run == run and a.name == name), None)
            if existing is not None:
                if existing.finalized or existing.job != job:
                    return 409, {"code": "already_exists", "msg": CONFLICT}
                self.artifacts.remove(existing)
            if sum(1 for a in self.artifacts if a.run == run and a.job == job) >= MAX_PER_JOB:
                return 400, {"code": "failed_precondition", "msg": TOO_MANY}
            blob_id = secrets.token_hex(8)
            sig = secrets.token_urlsafe(24)
            self.blobs[blob_id] = _BlobState(sig=sig, path=os.path.join(self.dir, blob_id))
            self.artifacts.append(FakeArtifact(run=run, job=job, name=name, version=body["version"], blob=blob_id))
            url = f"{base}/blob/actions-results/{blob_id}?sv=2023-11-03&sr=b&sp=cw&se=2099-01-01T00%3A00%3A00Z&sig={sig}"
            return 200, {"ok": True, "signed_upload_url": url}
        if method == "FinalizeArtifact":
            art = next((a for a in self.artifacts if a.run == run and a.name == name), None)
            if art is None or art.job != job:
                return 404, {"code": "not_found", "msg": "artifact not found"}
            if art.finalized:
                return 409, {"code": "already_exists", "msg": "artifact is already finalized"}
            blob = self.blobs[art.blob]
            if not blob.committed:
                return 400, {"code": "failed_precondition", "msg": "no blob was uploaded for this artifact"}
            size = blob.size()
            if int(body["size"]) != size:
                self.violation(f"FinalizeArtifact: size {body['size']} but {size} bytes were uploaded")
                return 400, {"code": "invalid_argument", "msg": "size mismatch"}
            digest = "sha256:" + blob.sha256()
            if "hash" in body and (not _HASH.match(body["hash"]) or body["hash"] != digest):
                self.violation(f"FinalizeArtifact: hash {body['hash']} but the blob is {digest}")
                return 400, {"code": "invalid_argument", "msg": "hash mismatch"}
            if art.version == 4:
                try:
                    with zipfile.ZipFile(blob.path) as zf:
                        bad = zf.testzip()
                except zipfile.BadZipFile as exc:
                    bad = str(exc)
                if bad is not None:
                    self.violation(f"FinalizeArtifact: version 4 artifact is not a valid zip ({bad})")
                    return 400, {"code": "invalid_argument", "msg": "not a zip archive"}
            art.finalized, art.id, art.size, art.digest = True, next(self._ids), size, digest
            return 200, {"ok": True, "artifact_id": str(art.id)}
        if method == "ListArtifacts":
            found = [a for a in self.artifacts if a.run == run and a.finalized]
            if "name_filter" in body:
                found = [a for a in found if a.name == body["name_filter"]]
            if "id_filter" in body:
                found = [a for a in found if a.id == int(body["id_filter"])]
            return 200, {"artifacts": [{
                "workflow_run_backend_id": a.run, "workflow_job_run_backend_id": a.job, "database_id": str(a.id),
                "name": a.name, "size": str(a.size), "created_at": a.created_at, "digest": a.digest,
            } for a in found]}
        if method == "DeleteArtifact":
            art = next((a for a in self.artifacts if a.run == run and a.name == name
                        and (a.finalized or a.job == job)), None)
            if art is None:
                return 404, {"code": "not_found", "msg": "artifact not found"}
            self.artifacts.remove(art)
            return 200, {"ok": True, "artifact_id": str(art.id)}
        if method == "GetSignedArtifactURL":
            art = next((a for a in self.artifacts if a.run == run and a.name == name and a.finalized), None)
            if art is None:
                return 404, {"code": "not_found", "msg": "artifact not found"}
            return 200, {"signed_url": f"{base}/blob/actions-results/{art.blob}?sig=read"}
        return 404, {"code": "bad_route", "msg": f"no handler for {method}"}

    def _twirp(self, rec: Recorded, raw: bytes) -> tuple[int, Any]:
        fake = self
        method = rec.operation or ""
        if not rec.headers.get("content-type", "").startswith("application/json"):
            fake.violation(f"{method}: Content-Type {rec.headers.get('content-type')!r}")
            return 404, {"code": "bad_route", "msg": "unexpected Content-Type"}
        auth = rec.headers.get("authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else ""
        ids = fake.tokens.get(token)
        if ids is None:
            return 401, {"code": "unauthenticated", "msg": "invalid or missing token"}
        try:
            claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
        except ValueError:
            claims = {}
        if claims.get("exp", 0) < time.time():
            return 401, {"code": "unauthenticated", "msg": "token expired"}
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        rec.body = body
        problem = fake.check_message(method, body)
        if problem is not None:
            fake.violation(f"{method}: {problem}")
            return 400, {"code": "malformed", "msg": problem}
        run, job = ids
        if body["workflow_run_backend_id"] != run or body["workflow_job_run_backend_id"] != job:
            return 403, {"code": "permission_denied", "msg": "backend ids do not match the token"}
        return fake.twirp(method, body, run, job, self.origin)

    def blob(self, rec: Recorded, raw: bytes) -> tuple[int, str | None]:
        """Azure Blob ``PUT`` semantics for the fake's SAS URLs: (status, error code)."""
        parts = rec.path.split("/")
        state = self.blobs.get(parts[-1]) if len(parts) == 4 else None
        if state is None:
            return 404, "ContainerNotFound"
        if rec.headers.get("authorization"):
            self.violation("blob upload carried an Authorization header (a token sent to blob storage)")
            return 400, "InvalidAuthenticationInfo"
        if rec.query.get("sig", [""])[0] != state.sig:
            return 403, "AuthenticationFailed"
        if "content-length" not in rec.headers:
            return 411, "MissingContentLengthHeader"
        comp = rec.query.get("comp", [None])[0]
        state.writes += 1
        if comp == "block":
            block_id = rec.query.get("blockid", [""])[0]
            try:
                decoded = base64.b64decode(block_id, validate=True)
            except ValueError:
                decoded = b""
            if not decoded or len(decoded) > 64:
                self.violation(f"Put Block: invalid block id {block_id!r}")
                return 400, "InvalidQueryParameterValue"
            if any(len(k) != len(block_id) for k in state.blocks):
                self.violation("Put Block: block ids of different lengths in one blob")
                return 400, "InvalidBlobOrBlock"
            block_path = os.path.join(self.dir, f"{parts[-1]}.block{state.writes}")
            with open(block_path, "wb") as fh:
                fh.write(raw)
            state.blocks[block_id] = block_path
            return 201, None
        if comp == "blocklist":
            try:
                root = ElementTree.fromstring(raw)
            except ElementTree.ParseError:
                self.violation("Put Block List: the body is not XML")
                return 400, "InvalidXmlDocument"
            if root.tag != "BlockList":
                self.violation(f"Put Block List: root element {root.tag}")
                return 400, "InvalidXmlDocument"
            ids = [el.text or "" for el in root if el.tag in ("Latest", "Uncommitted", "Committed")]
            if not ids or any(i not in state.blocks for i in ids):
                return 400, "InvalidBlockList"
            with open(state.path, "wb") as out:
                for block_id in ids:
                    with open(state.blocks[block_id], "rb") as fh:
                        shutil.copyfileobj(fh, out)
            state.committed = True
            state.blocks.clear()
            state.content_type = rec.headers.get("x-ms-blob-content-type")
            return 201, None
        if comp is not None:
            return 400, "InvalidQueryParameterValue"
        if rec.headers.get("x-ms-blob-type") != "BlockBlob":
            self.violation("Put Blob without x-ms-blob-type: BlockBlob")
            return 400, "MissingRequiredHeader"
        state.put(raw)
        state.content_type = rec.headers.get("x-ms-blob-content-type") or rec.headers.get("content-type")
        return 201, None

# --- the REST side ----------------------------------------------------------------------------------


def extended_github_spec(subset: OpenApiSpec) -> OpenApiSpec:
    """The CI subset plus ``GET /repos/{owner}/{repo}`` taken from the full description (doctor reads it)."""
    full_path = spec_path("github/api.github.com.json")
    doc = json.loads(json.dumps(subset.doc))  # the subset, already loaded
    if full_path is not None:
        full = json.loads(full_path.read_text(encoding="utf-8-sig"))
        op = dict(full["paths"]["/repos/{owner}/{repo}"]["get"])
        op["responses"] = {"200": {"description": "Response"}}  # responses are not validated
        doc["paths"]["/repos/{owner}/{repo}"] = {"get": op}
    return OpenApiSpec(doc)


_EXTENDED: dict[int, OpenApiSpec] = {}


def extended_spec_cached(subset: OpenApiSpec) -> OpenApiSpec:
    key = id(subset)
    if key not in _EXTENDED:
        _EXTENDED[key] = extended_github_spec(subset)
    return _EXTENDED[key]


class FakeGitHubArtifacts(FakeGitHub):
    """The fake REST API plus: the run's artifacts (from a :class:`FakeResults`), ``GET /repos/{owner}/{repo}``,
    ``GET /rate_limit``, ``x-oauth-scopes`` for classic PATs and ``x-accepted-github-permissions``."""

    def __init__(self, spec: OpenApiSpec | None, results: FakeResults | None = None, *, run_id: int = 4242,
                 run_backend_id: str = "run-uuid-1", pat_scopes: str = "repo, workflow",
                 private: bool = True, **kw: Any) -> None:
        super().__init__(spec, **kw)
        self.results = results
        self.run_id = run_id
        self.run_backend_id = run_backend_id
        self.pat_scopes = pat_scopes
        self.private = private
        #: token kind → the repository permissions GET /repos shows it
        self.permissions = {"app": None, "pat": {"admin": False, "maintain": False, "push": True, "triage": True,
                                                 "pull": True},
                            "readonly": {"admin": False, "maintain": False, "push": False, "triage": False,
                                         "pull": True}}

    def rate_headers(self, token: str) -> dict[str, str]:
        headers = super().rate_headers(token)
        if self.tokens.get(token) == "pat":
            headers["x-oauth-scopes"] = self.pat_scopes
            headers["x-accepted-oauth-scopes"] = "repo"
        return headers

    def handle(self, req: Recorded, route_op: str, pp: dict[str, str], login: str,
               kind: str) -> tuple[int, Any, dict[str, str]]:
        repo_name = f"{pp.get('owner')}/{pp.get('repo')}"
        if route_op == "rate-limit/get":
            core = {"limit": self.rate_limit, "remaining": self.rate_limit, "reset": int(time.time()) + 3600,
                    "used": 0}
            return 200, {"resources": {"core": core}, "rate": core}, {}
        if route_op == "repos/get":
            owner, name = repo_name.split("/")
            body: dict[str, Any] = {"id": 1, "name": name, "full_name": repo_name, "private": self.private,
                                    "owner": {"login": owner}, "default_branch": "main"}
            if self.permissions.get(kind) is not None:
                body["permissions"] = self.permissions[kind]
            return 200, body, {"x-accepted-github-permissions": "metadata=read"}
        if route_op == "actions/list-workflow-run-artifacts":
            if int(pp["run_id"]) != self.run_id or self.results is None:
                items: list[dict[str, Any]] = []
            else:
                arts = sorted(self.results.finalized(self.run_backend_id), key=lambda a: -a.id)
                if req.query.get("name"):
                    arts = [a for a in arts if a.name == req.query["name"][0]]
                items = [self._rest_artifact(repo_name, a) for a in arts]
            page, link = self._page(items, req.path, req.query)
            return 200, {"total_count": len(items), "artifacts": page}, ({"Link": link} if link else {})
        return super().handle(req, route_op, pp, login, kind)

    def _rest_artifact(self, repo: str, a: FakeArtifact) -> dict[str, Any]:
        api = f"{self.url}/repos/{repo}/actions/artifacts/{a.id}"
        return {
            "id": a.id, "node_id": f"MDg6QXJ0aWZhY3Q{a.id}", "name": a.name, "size_in_bytes": a.size, "url": api,
            "archive_download_url": f"{api}/zip", "expired": False, "created_at": a.created_at,
            "updated_at": a.created_at, "expires_at": "2099-01-01T00:00:00Z", "digest": a.digest,
            "workflow_run": {"id": self.run_id, "repository_id": 1, "head_repository_id": 1, "head_branch": "main",
                             "head_sha": "a" * 40},
        }


def load_subset() -> OpenApiSpec | None:
    path = spec_path("github/api.github.com.ci-subset.json")
    return load_spec(str(path)) if path is not None else None
