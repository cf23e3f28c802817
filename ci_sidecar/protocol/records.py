"""Domain values that travel on the wire (docs/protocol.md), defined once as msgspec Structs.

Every Struct here is used both to validate what clients send and to encode what the daemon answers;
``rpc.discover`` and the client typings are generated from them. Field names are the wire names.
Optional fields default to ``None`` (or an empty container) and are omitted from encoded output.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from .history import RunDelta
from .shards import ShardReport

__all__ = [
    "Wire",
    "Source",
    "ScmContext",
    "CIContext",
    "Tier",
    "ProviderCaps",
    "Capabilities",
    "ErrorInfo",
    "DeliveryState",
    "DeliverySummary",
    "Undelivered",
    "TestStatus",
    "TestResult",
    "Counts",
    "Summary",
    "Target",
    "CommentRef",
    "RunStatus",
    "Conclusion",
    "TestRun",
    "UploadInfo",
    "Artifact",
]

NonNegInt = Annotated[int, msgspec.Meta(ge=0)]
NonNegFloat = Annotated[float, msgspec.Meta(ge=0)]


class Wire(msgspec.Struct, omit_defaults=True):
    """Base of every wire struct: fields left at their default are omitted when encoding, so every
    field that must always be sent is declared without a default (and therefore comes first)."""


# --- CI context -------------------------------------------------------------------------------

ProviderName = Literal[
    "github", "gitlab", "jenkins", "azure", "circleci", "teamcity", "travis", "bitbucket", "local"
]


class Source(Wire):
    """Where a CIContext field came from: an env var, a file, git, config, or derived from others."""

    kind: Literal["env", "file", "git", "config", "derived"]
    name: str


class ScmContext(Wire):
    """The code host, when it differs from the CI (Jenkins building a GitHub repository)."""

    provider: str
    repository: str | None = None
    server_url: str | None = None


class CIContext(Wire):
    """Where a session's client runs: which CI, repository, commit, PR and build (docs/protocol.md §CIContext)."""

    provider: str
    sources: dict[str, Source]
    repository: str | None = None
    commit_sha: str | None = None
    head_sha: str | None = None
    branch: str | None = None
    target_branch: str | None = None
    tag: str | None = None
    event: str | None = None
    pr_number: int | None = None
    is_fork: bool | None = None
    build_id: str | None = None
    build_number: str | None = None
    job: str | None = None
    run_attempt: int | None = None
    build_url: str | None = None
    job_url: str | None = None
    server_url: str | None = None
    scm: ScmContext | None = None


# --- capabilities -------------------------------------------------------------------------------


class Tier(Wire):
    """How a provider performs one role: natively, through a fallback, staged for the CI, locally, or not at all."""

    kind: Literal["native", "fallback", "staged", "local", "none"]
    via: str | None = None
    note: str | None = None


class ProviderCaps(Wire):
    """What one provider can do for a session, per operation, with its size limits."""

    provider: str
    test_run: Tier
    build_status: Tier
    pr_comment: Tier
    artifacts: Tier
    limits: dict[str, int]


class Capabilities(Wire):
    """``initialize`` result: the methods served and, per role, the provider capabilities."""

    methods: list[str]
    roles: dict[str, ProviderCaps] = {}


# --- delivery -----------------------------------------------------------------------------------


class ErrorInfo(Wire):
    """A JSON-RPC style error carried inside a result (a failed delivery, a failed batch item)."""

    code: int
    message: str
    data: Any = None


class DeliveryState(Wire):
    """Whether one write reached its provider. Nothing is ever reported delivered that wasn't."""

    state: Literal["pending", "delivered", "failed"]
    error: ErrorInfo | None = None


class Undelivered(Wire):
    """One write that is not delivered (yet): what, where to, and why."""

    provider: str
    target: str  # e.g. ``run:<id>``, ``status:<context>``, ``comment:<key>``
    operation: str  # PublishRun, SetStatus, PostComment, UploadArtifact...
    state: Literal["pending", "failed"]
    attempts: int = 0
    #: seconds until the next attempt (pending writes waiting for a retry or a credential)
    next_attempt_s: float | None = None
    error: str | None = None  # the last error (failed writes: why they were given up)


class DeliverySummary(Wire):
    """Pending and failed writes of a run or a session (``pending`` and ``failed`` are always sent).

    When something is undelivered, ``undelivered`` lists the writes (at most 100; the counts are exact)
    and ``kept_in`` names the state directory holding the pending ones: a later daemon under the same
    state root delivers them."""

    pending: int
    failed: int
    last_error: str | None = None
    undelivered: list[Undelivered] = []
    kept_in: str | None = None


# --- test runs ----------------------------------------------------------------------------------

TestStatus = Literal["passed", "failed", "error", "skipped"]


class TestResult(Wire):
    """One test's outcome for one attempt. Keyed by (suite, classname, name, attempt)."""

    __test__ = False  # not a pytest test class

    name: Annotated[str, msgspec.Meta(min_length=1)]
    status: TestStatus
    suite: str | None = None
    classname: str | None = None
    file: str | None = None
    line: NonNegInt | None = None
    duration: NonNegFloat | None = None
    message: str | None = None
    details: str | None = None
    stdout: str | None = None
    stderr: str | None = None
    attempt: Annotated[int, msgspec.Meta(ge=1)] | None = None
    properties: dict[str, Any] | None = None


class Counts(msgspec.Struct, kw_only=True):
    """Counts over tests (not attempts), using each test's latest attempt."""

    total: int = 0
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    flaky: int = 0


class Summary(Wire):
    """Counts a client reports without per-test results; the seed's shapes are accepted too."""

    total: NonNegInt | None = None
    passed: NonNegInt | None = None
    failed: NonNegInt | None = None
    errors: NonNegInt | None = None
    skipped: NonNegInt | None = None
    duration: NonNegFloat | None = None
    # seed shapes
    total_tasks: NonNegInt | None = None
    task_statuses: dict[str, NonNegInt] | None = None
    total_tests: NonNegInt | None = None
    passed_tests: NonNegInt | None = None
    failed_tests: NonNegInt | None = None
    skipped_tests: NonNegInt | None = None
    duration_seconds: NonNegFloat | None = None


class Target(Wire):
    """Where a run was published, by which role and through which tier."""

    #: ``notify``: a notification channel (``provider`` is the channel's name, ``kind`` its kind)
    role: Literal["ci", "scm", "notify"]
    provider: str
    kind: str
    url: str | None = None
    #: why a target is a fallback or absent (e.g. "no GITHUB_TOKEN in the job's environment")
    note: str | None = None
    #: whether the latest publication reached it
    delivery: DeliveryState | None = None
    #: the run as the provider shows it, read back by get_test_run_status (e.g. the GitHub check run)
    remote_status: str | None = None
    remote_conclusion: str | None = None


class CommentRef(Wire):
    """A PR comment attached to a run, with what happened to it."""

    action: str
    delivery: DeliveryState
    key: str | None = None
    id: str | None = None
    url: str | None = None


RunStatus = Literal["running", "finished"]
Conclusion = Literal["success", "failure", "cancelled", "neutral", "timed_out"]


class TestRun(Wire):
    """A test run as clients see it."""

    __test__ = False

    id: str
    name: str
    status: RunStatus
    start_time: str
    counts: Counts
    delivery: DeliverySummary
    targets: list[Target]
    comments: list[CommentRef]
    conclusion: Conclusion | None = None
    end_time: str | None = None
    duration: float | None = None
    external_id: str | None = None
    #: why the daemon finished a run itself (e.g. abandoned: nobody wrote to it for 6 h)
    note: str | None = None
    #: where the run's local output (reports, results, comments) is written (a daemon-side path)
    output_dir: str | None = None
    #: the code coverage a client reported for the run, in percent (0–100)
    coverage: float | None = None
    #: once finished: what changed against the base run (see :class:`~ci_sidecar.protocol.history.RunDelta`)
    delta: RunDelta | None = None
    #: a run merged from shards: one row per shard, the slowest, the balance hint (see :mod:`~.shards`)
    shards: ShardReport | None = None


# --- artifacts ----------------------------------------------------------------------------------


class UploadInfo(Wire):
    """Where an artifact's bytes went and what the upload did."""

    state: Literal["uploaded", "staged", "local", "pending", "failed"]
    action: Literal["created", "replaced", "unchanged"]
    provider: str
    error: ErrorInfo | None = None


class Artifact(Wire):
    """One named file attached to a run."""

    name: str
    type: str
    test_run_id: str
    size: int
    sha256: str
    mime_type: str
    created_at: str
    stored_path: str
    upload: UploadInfo
    labels: list[str]
    metadata: dict[str, Any]
    url: str | None = None
    url_expires_at: str | None = None
    #: the file reached the CI provider inside this zip artifact of the run (the provider caps the artifacts of
    #: a job): ``upload`` and ``url`` are that zip's
    inside: str | None = None
