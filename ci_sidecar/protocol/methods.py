"""The method table: every method's name, kind, params Struct and result type, defined once.

This table is the only place the protocol's methods are declared. The rpc layer validates params and
encodes results from it, ``rpc.discover`` emits OpenRPC from it, and client typings are generated
from that document. Handlers are bound to these names elsewhere (the rpc layer knows no provider).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from .artifact_methods import ARTIFACT_METHODS
from .notify_methods import NOTIFY_METHODS
from .records import Capabilities, CIContext, DeliverySummary, Wire
from .spec import MethodSpec, WaitS
from .shards import MAX_SHARDS, ShardRow

__all__ = [
    "MethodSpec",
    "METHODS",
    "register",
    "NoParams",
    "ClientInfo",
    "InitializeParams",
    "ServerInfo",
    "InitializeResult",
    "CancelParams",
    "ProgressValue",
    "ProgressParams",
    "LogMessageParams",
    "StatusResult",
    "InstanceStatus",
    "SleepParams",
    "SleepResult",
    "RaiseParams",
]


METHODS: dict[str, MethodSpec] = {}


def register(spec: MethodSpec) -> MethodSpec:
    """Add a method to the table (each name once)."""
    if spec.name in METHODS:
        raise ValueError(f"method {spec.name} declared twice")
    METHODS[spec.name] = spec
    return spec


# --- lifecycle -----------------------------------------------------------------------------------


class NoParams(Wire):
    """Methods that take no params accept an absent, empty or any object (unknown fields are ignored)."""


class ClientInfo(Wire):
    name: str
    version: str | None = None


class InitializeParams(Wire):
    """``initialize``: who the client is and the environment it runs in (kept in memory only)."""

    protocolVersion: int = 1
    clientInfo: ClientInfo | None = None
    processId: int | None = None
    cwd: str | None = None
    env: dict[str, str] | None = None
    config: dict[str, Any] | None = None


class ServerInfo(Wire):
    name: str
    version: str


class InitializeResult(Wire):
    serverInfo: ServerInfo
    protocolVersion: int
    ci: CIContext
    capabilities: Capabilities


class CancelParams(Wire):
    id: int | str


class ProgressValue(Wire):
    kind: Literal["begin", "report", "end"]
    title: str | None = None
    message: str | None = None
    percentage: int | None = None


class ProgressParams(Wire):
    token: int | str
    value: ProgressValue


class LogMessageParams(Wire):
    type: Literal[1, 2, 3, 4]
    message: str


register(MethodSpec("initialize", InitializeParams, InitializeResult,
                    "Start a session: protocol version check, client environment, CI context and capabilities.",
                    errors=(-32600,)))
register(MethodSpec("initialized", NoParams, None, "The client received the initialize result.", notification=True))
register(MethodSpec("shutdown", NoParams, DeliverySummary,
                    "Flush this session's pending writes under a deadline; later requests answer -32600."))
register(MethodSpec("exit", NoParams, None,
                    "stdio: the daemon exits (0 after shutdown, else 1). Socket: this session ends.",
                    notification=True))
register(MethodSpec("$/cancelRequest", CancelParams, None,
                    "Cancel an in-flight request; it answers -32800.", notification=True))


# --- daemon --------------------------------------------------------------------------------------


class OutboxStatus(Wire):
    pending: int = 0
    failed: int = 0


class ProviderStatus(Wire):
    rate_limit: dict[str, Any] | None = None
    #: per token: writes sent, live updates held back, share of the hourly budget used, seconds blocked
    write_budget: list[dict[str, Any]] | None = None


class InstanceStatus(Wire):
    """One daemon instance under the state root: ``live`` (its daemon holds it), ``adopted`` (another
    daemon delivers what it left) or ``orphaned`` (nobody holds it: the next daemon adopts it)."""

    name: str
    path: str
    state: Literal["live", "adopted", "orphaned"]
    pid: int | None = None  # the daemon that created it
    mode: str | None = None  # socket, stdio or exec
    adopted_by: int | None = None
    pending: int | None = None  # writes still to deliver (for the instances this daemon holds)
    bytes: int = 0  # disk usage


class StatusResult(Wire):
    """``sidecar/status``: what the daemon is doing."""

    version: str
    protocolVersion: int
    pid: int
    uptime: float
    transport: str
    sessions: int
    runs: int
    outbox: OutboxStatus
    providers: dict[str, ProviderStatus] = {}
    counters: dict[str, int] = {}
    state_dir: str | None = None
    #: this daemon's own instance directory (the state root itself, or one under ``<root>/instances``)
    instance_dir: str | None = None
    instances: list[InstanceStatus] = []
    #: sharded groups this daemon serves: ``{groups, store_requests}`` (absent without any)
    groups: dict[str, int] = {}


class SleepParams(Wire):
    seconds: Annotated[float, msgspec.Meta(ge=0, le=3600)] = 1.0
    workDoneToken: int | str | None = None
    #: also print() to the process's stdout, to prove stray output never reaches the protocol stream
    print_stdout: bool = False


class RaiseParams(Wire):
    message: str = "debug failure"


class SleepResult(Wire):
    slept: float


register(MethodSpec("sidecar/status", NoParams, StatusResult,
                    "Version, uptime, sessions, runs, outbox depth, provider rate limits and request counters."))
register(MethodSpec("sidecar/stop", NoParams, None,
                    "Flush, then stop the daemon (the reply is sent first).",))
register(MethodSpec("rpc.discover", NoParams, dict, "OpenRPC 1.x document of every method this daemon serves."))
register(MethodSpec("sidecar/debug/sleep", SleepParams, SleepResult,
                    "Sleep, reporting $/progress and a window/logMessage (only with --debug-methods).",
                    debug_only=True))
register(MethodSpec("sidecar/debug/raise", RaiseParams, None,
                    "Raise an unexpected exception (only with --debug-methods): answers -32603 with an incident id.",
                    debug_only=True))


# --- test runs -----------------------------------------------------------------------------------

from .records import (  # noqa: E402  (kept next to the methods that use them)
    Conclusion,
    DeliveryState,
    Summary,
    TestResult,
    TestRun,
)


#: the most shards one group may have
MAX_SHARDS = 10000


class GroupParams(Wire):
    """The logical run a shard belongs to (one check run/status/comment per group, merged through the store)."""

    #: names the logical run; default: from the CI (workflow run + job without the matrix part, ...)
    key: Annotated[str, msgspec.Meta(min_length=1, max_length=512)] | None = None
    #: this shard's number, 0-based; default: from the CI (CIRCLE_NODE_INDEX, CI_NODE_INDEX - 1, ...)
    shard: Annotated[int, msgspec.Meta(ge=0, le=MAX_SHARDS - 1)] | None = None
    #: how many shards the group has; the final publish waits for all of them (or the deadline)
    total: Annotated[int, msgspec.Meta(ge=1, le=MAX_SHARDS)] | None = None
    #: seconds from the group's start after which missing shards are reported missing and the group concludes
    deadline_s: Annotated[float, msgspec.Meta(gt=0, le=7 * 86400)] | None = None


#: a run's code coverage in percent, as a client measured it (GitLab shows it on the commit status)
Coverage = Annotated[float, msgspec.Meta(ge=0, le=100)]


class CreateTestRunParams(Wire):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
    commit_sha: str | None = None
    head_sha: str | None = None
    branch: str | None = None
    pr_number: Annotated[int, msgspec.Meta(ge=1)] | None = None
    build_id: str | None = None
    details_url: str | None = None
    external_id: Annotated[str, msgspec.Meta(min_length=1, max_length=512)] | None = None
    provider: str | None = None
    #: join a sharded group: results are merged with the other shards' into one published run
    group: GroupParams | None = None
    #: a fan-in run (``ci-sidecar merge``): the shards whose outputs it merges, shown in its reports
    shards: Annotated[list[ShardRow], msgspec.Meta(max_length=MAX_SHARDS)] | None = None
    wait: bool = False
    wait_s: WaitS = 30.0


class UpdateTestRunParams(Wire):
    test_run_id: str
    status: Literal["running", "completed", "failed", "cancelled"] | None = None
    summary: Summary | None = None
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)] | None = None
    coverage: Coverage | None = None
    wait: bool = False
    wait_s: WaitS = 30.0


class ReportResultsParams(Wire):
    test_run_id: str
    results: list[TestResult]
    coverage: Coverage | None = None


class ReportResultsResult(Wire):
    accepted: int
    total: int


class CompleteTestRunParams(Wire):
    test_run_id: str
    conclusion: Conclusion | None = None
    coverage: Coverage | None = None
    wait: bool = False
    wait_s: WaitS = 30.0


class TestRunIdParams(Wire):
    test_run_id: str


class ReadTestResultsParams(Wire):
    test_run_id: str
    #: a position in the run's record stream: 0, or the ``cursor`` a previous read returned
    cursor: Annotated[int, msgspec.Meta(ge=0)] = 0
    limit: Annotated[int, msgspec.Meta(ge=1, le=5000)] = 1000


class ReadTestResultsResult(Wire):
    #: the records at positions [cursor, next cursor), each test and attempt once
    results: list[TestResult]
    #: where the next read continues (stable across daemon restarts: a client that keeps it reads each
    #: record exactly once)
    cursor: int
    #: positions the run has now
    total: int
    #: the run is finished and nothing is left after ``cursor``
    finished: bool


class ListTestRunsParams(Wire):
    status: Literal["running", "finished"] | None = None
    since: str | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=500)] = 50
    cursor: str | None = None


class ListTestRunsResult(Wire):
    runs: list[TestRun]
    next_cursor: str | None = None


class SetBuildStatusParams(Wire):
    state: Literal["pending", "running", "success", "failure", "error"]
    description: str | None = None
    context: Annotated[str, msgspec.Meta(min_length=1, max_length=255)] = "ci-sidecar"
    target_url: str | None = None
    sha: str | None = None
    test_run_id: str | None = None
    wait: bool = False
    wait_s: WaitS = 30.0


class SetBuildStatusResult(Wire):
    delivery: DeliveryState
    ref: str | None = None


class AddPrCommentParams(Wire):
    body: str
    pr_number: Annotated[int, msgspec.Meta(ge=1)] | None = None
    key: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None
    mode: Literal["create", "upsert", "replace", "delete"] | None = None
    test_run_id: str | None = None
    wait: bool = False
    wait_s: WaitS = 30.0


class AddPrCommentResult(Wire):
    action: Literal["pending", "created", "updated", "deleted", "skipped"]
    truncated: bool
    delivery: DeliveryState
    id: str | None = None
    url: str | None = None


_RUN_ERRORS = (-31001, -31008, -31003, -31004)
register(MethodSpec("create_test_run", CreateTestRunParams, TestRun,
                    "Create a test run (idempotent on external_id); published to the run's providers.",
                    errors=(-31003, -31004)))
register(MethodSpec("update_test_run", UpdateTestRunParams, TestRun,
                    "Rename a run, set counts for runs without per-test results, or finalize it by status.",
                    run_scoped=True, errors=_RUN_ERRORS))
register(MethodSpec("report_results", ReportResultsParams, ReportResultsResult,
                    "Add or replace per-test results, keyed by (suite, classname, name, attempt).",
                    run_scoped=True, errors=(-31001, -31008)))
register(MethodSpec("complete_test_run", CompleteTestRunParams, TestRun,
                    "Finish a run; without a conclusion it is derived from the results.",
                    run_scoped=True, errors=_RUN_ERRORS))
register(MethodSpec("get_test_run_status", TestRunIdParams, TestRun, "A run as it stands.",
                    run_scoped=True, errors=(-31001,)))
register(MethodSpec("read_test_results", ReadTestResultsParams, ReadTestResultsResult,
                    "A run's per-test records from a cursor on, in the order they arrived (for clients that "
                    "stream them into a job log).", errors=(-31001,)))
register(MethodSpec("list_test_runs", ListTestRunsParams, ListTestRunsResult,
                    "Runs, newest first, filtered by status and start time, paged by an opaque cursor."))
register(MethodSpec("set_build_status", SetBuildStatusParams, SetBuildStatusResult,
                    "Set the build/commit status for a context.", errors=(-31001, -31003, -31004, -31007)))
register(MethodSpec("add_pr_comment", AddPrCommentParams, AddPrCommentResult,
                    "Post a PR comment; a key makes it sticky (edited in place).",
                    errors=(-31001, -31003, -31004, -31007)))


class IngestJunitParams(Wire):
    test_run_id: str
    path: Annotated[str, msgspec.Meta(min_length=1)]
    workDoneToken: int | str | None = None


class IngestError(Wire):
    file: str
    message: str
    line: int | None = None


class IngestJunitResult(Wire):
    accepted: int
    files: int
    skipped_files: int
    errors: list[IngestError]


class RenderReportParams(Wire):
    test_run_id: str
    format: Literal["markdown", "html", "json", "junit", "github-annotations", "azure-vso"]
    max_bytes: Annotated[int, msgspec.Meta(ge=64)] | None = None


class RenderReportResult(Wire):
    path: str
    bytes: int
    #: the rendering was shortened to fit max_bytes (markdown, annotations)
    truncated: bool = False


class RenderBadgeParams(Wire):
    label: Annotated[str, msgspec.Meta(max_length=100)] = "tests"
    test_run_id: str | None = None
    status: Annotated[str, msgspec.Meta(max_length=100)] | None = None
    style: Literal["flat", "flat-square", "for-the-badge"] = "flat"


class RenderBadgeResult(Wire):
    svg: str
    path: str | None = None


register(MethodSpec("ingest_junit", IngestJunitParams, IngestJunitResult,
                    "Parse JUnit/xUnit files (a path or a glob, within the source roots) into a run; "
                    "a file already ingested (same sha256) is skipped.", run_scoped=True,
                    errors=(-31001, -31005, -31008)))
register(MethodSpec("render_report", RenderReportParams, RenderReportResult,
                    "Write a report of the run into its output folder.", errors=(-31001,)))
register(MethodSpec("render_badge", RenderBadgeParams, RenderBadgeResult,
                    "A shields-style SVG badge for a run (or a given status); written beside the run's reports."))


# --- artifacts (their Structs live in their own module) -------------------------------------------

for _spec in (*ARTIFACT_METHODS, *NOTIFY_METHODS):
    register(_spec)
