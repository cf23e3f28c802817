"""The provider interface: provider-neutral operations in, one attempt, an outcome out.

Designed against all eight providers (docs/providers.md explains the mapping):

* an **operation** is what the service wants published — a run's current state (plus the range of
  per-test records not yet sent, for providers that take results: Azure batches, TeamCity service
  messages, GitHub/Bitbucket annotations), a build status, a PR comment, an artifact;
* a provider makes **one attempt** per call and returns an :class:`Outcome`; retrying, pacing,
  coalescing and persistence belong to the delivery layer;
* what a provider learns about the remote side (a check-run id, a comment id, an Azure run id, how
  many results it already sent) comes back in ``Outcome.remote`` and is handed to the next attempt
  for the same target as ``TargetState`` — persisted, so a restart never duplicates remote objects;
* ``capabilities`` says per role how each operation is done (native / fallback / staged / local /
  none), which ``initialize``, ``ci-sidecar doctor`` and ``TestRun.targets`` report;
* optional abilities are small Protocols of their own (:data:`CAPABILITIES`: reads runs back, looks up
  artifact URLs, presigns URLs, probes access for ``doctor --check``, writes to the job log, reports status);
  a provider has one by defining its method, which is checked once when the provider loads
  (:func:`capabilities_of`), and the service asks the registry for it instead of probing attributes.

Providers know no JSON-RPC and no journal; they see plain Structs and a :class:`ProviderEnv`.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import msgspec

from ci_sidecar.credentials import CredentialRef
from ci_sidecar.protocol.history import RunDelta
from ci_sidecar.protocol.shards import ShardReport
from ci_sidecar.protocol.records import CIContext, Counts, ProviderCaps, TestResult

from .writes import WriteBudget, WriteGate

__all__ = [
    "RunSnapshot",
    "PublishRun",
    "SetStatus",
    "PostComment",
    "UploadArtifact",
    "SendNotification",
    "SmtpSettings",
    "Operation",
    "Outcome",
    "ProviderEnv",
    "Provider",
    "CAPABILITIES",
    "CheckItem",
    "CheckReport",
    "FindsCredentials",
    "LooksUpArtifacts",
    "PresignsUrls",
    "ProbesAccess",
    "ReadsRuns",
    "ReportsStatus",
    "DeclaresWriteBudget",
    "ResumesUnrecorded",
    "WritesJobLog",
    "StreamsJobLog",
    "JobLogStream",
    "CredentialRef",
    "capabilities_of",
]


class RunSnapshot(msgspec.Struct, kw_only=True):
    """A run as providers need it: identity, where it belongs, its state and counts."""

    id: str
    name: str
    status: Literal["running", "finished"]
    conclusion: str | None = None
    start_time: str
    end_time: str | None = None
    counts: Counts
    external_id: str | None = None
    commit_sha: str | None = None
    head_sha: str | None = None
    branch: str | None = None
    pr_number: int | None = None
    build_id: str | None = None
    details_url: str | None = None
    repository: str | None = None
    output_dir: str
    #: per-test records available for this run (providers that stream results send [sent, results_end))
    results_end: int = 0
    #: code coverage in percent (0–100), when a client reported it
    coverage: float | None = None
    #: once finished: the run compared with its base in the history (reports show it)
    delta: RunDelta | None = None
    #: a run merged from shards: its shards section (every report shows it)
    shards: ShardReport | None = None


class PublishRun(msgspec.Struct, tag="publish_run", kw_only=True):
    """Create or update the provider's representation of a run (coalesced: latest state wins)."""

    run: RunSnapshot
    final: bool = False


class SetStatus(msgspec.Struct, tag="set_status", kw_only=True):
    """A build/commit status for ``context`` on ``sha`` (coalesced per sha+context)."""

    state: Literal["pending", "running", "success", "failure", "error"]
    context: str
    sha: str | None = None
    description: str | None = None
    target_url: str | None = None
    run_id: str | None = None
    output_dir: str | None = None


class PostComment(msgspec.Struct, tag="post_comment", kw_only=True):
    """A PR comment; ``key`` makes it sticky (coalesced per key: latest body wins)."""

    body: str
    mode: Literal["create", "upsert", "replace", "delete"]
    key: str | None = None
    pr_number: int | None = None
    run_id: str | None = None
    output_dir: str | None = None
    full_report_url: str | None = None


class UploadArtifact(msgspec.Struct, tag="upload_artifact", kw_only=True):
    """Hand a stored artifact's bytes to the provider."""

    run_id: str
    name: str
    stored_path: str
    sha256: str
    size: int
    mime_type: str
    output_dir: str | None = None


class SmtpSettings(msgspec.Struct, kw_only=True, frozen=True):
    """Where an e-mail goes (the password is the write's credential, never here)."""

    host: str
    port: int
    security: Literal["starttls", "tls", "none"]
    sender: str
    recipients: list[str]
    username: str | None = None
    ca_bundle: str | None = None


class SendNotification(msgspec.Struct, tag="send_notification", kw_only=True):
    """One finished run's message to one notification channel, rendered when it was recorded (one per run and
    channel: its target is ``notify:<channel>:<run id>``, and the write's idempotency key identifies the message
    to the receiver). The webhook URL, signing key or SMTP password is the write's credential."""

    channel: str
    kind: Literal["slack", "teams", "webhook", "email"]
    run_id: str
    #: slack/teams/webhook: the JSON body
    body: dict[str, Any] = {}
    #: email
    subject: str = ""
    text: str = ""
    html: str = ""
    smtp: SmtpSettings | None = None
    output_dir: str | None = None


Operation = PublishRun | SetStatus | PostComment | UploadArtifact | SendNotification


class Outcome(msgspec.Struct, kw_only=True):
    """The result of one attempt.

    ``delivered``: done; ``retry``: a transient failure (429, 5xx, timeout, reset) — try again, not
    before ``retry_after`` seconds when the provider said so; ``refused``: the provider said no (other
    4xx) — final; ``unsupported``: the provider cannot do this operation at any tier — final;
    ``deferred``: the write budget held a request back (nothing more was sent) — try again after
    ``retry_after`` seconds, not counted as a failed attempt.
    """

    kind: Literal["delivered", "retry", "refused", "unsupported", "deferred"]
    message: str = ""
    status: int | None = None
    retry_after: float | None = None
    #: what the provider knows about the remote object now (ids, sent counts); replaces TargetState
    remote: dict[str, Any] | None = None
    url: str | None = None
    #: for comments: created / updated / deleted / skipped
    action: str | None = None
    #: the tier that actually carried it (e.g. "commit status" when check runs were refused)
    tier: str | None = None

    @classmethod
    def delivered(cls, **kw: Any) -> Outcome:
        return cls(kind="delivered", **kw)

    @classmethod
    def retry(cls, message: str, **kw: Any) -> Outcome:
        return cls(kind="retry", message=message, **kw)

    @classmethod
    def refused(cls, message: str, status: int | None = None, **kw: Any) -> Outcome:
        return cls(kind="refused", message=message, status=status, **kw)

    @classmethod
    def unsupported(cls, message: str, **kw: Any) -> Outcome:
        return cls(kind="unsupported", message=message, **kw)

    @classmethod
    def deferred(cls, message: str, retry_after: float, **kw: Any) -> Outcome:
        return cls(kind="deferred", message=message, retry_after=retry_after, **kw)


@dataclass
class ProviderEnv:
    """Everything a provider may use for one attempt (built by the delivery layer)."""

    ci: CIContext
    config: dict[str, Any] = field(default_factory=dict)
    base_url: str | None = None
    token: str | None = None  # the secret, resolved at delivery time; never logged or stored
    #: reads per-test records [start, end) of a run (encoded TestResult msgpack, in order)
    read_results: Callable[[str, int, int], AsyncIterator[Any]] | None = None
    #: say something to the user (window/logMessage on the sessions that care)
    log: Callable[[str], None] | None = None
    #: one key per logical write, the same across retries and restarts (for APIs that take one)
    idempotency_key: str | None = None
    #: Basic-auth user name where the provider needs one (Jenkins)
    username: str | None = None
    #: writes every report format of a run into its output dir (blocking: call in a worker thread)
    render_reports: Callable[[str], Any] | None = None
    #: what ``token`` is (``credential.provider`` is its kind: the provider's name, or a further kind such as
    #: ``github-actions-runtime``), never the secret
    credential: CredentialRef | None = None

    @classmethod
    def build(cls, ci: CIContext, config: Mapping[str, Any], credential: CredentialRef | None, token: str | None,
              **hooks: Any) -> ProviderEnv:
        """The one way an environment is made for a provider call: a token goes only to the URL its credential
        is bound to (a daemon-held token never follows a session's ``base_url``)."""
        settings = dict(config)
        base_url = settings.get("base_url")
        if token is not None and credential is not None and credential.base_url:
            base_url = settings["base_url"] = credential.base_url
        return cls(ci=ci, config=settings, base_url=base_url, token=token, credential=credential,
                   username=credential.username if credential is not None else None, **hooks)
    #: the delivery layer's write budget for this attempt: the HTTP layer passes mutating requests through it
    writes: WriteGate | None = None
    #: no earlier attempt of this write can have reached the provider: this daemon recorded it and this is its
    #: first attempt. False on a retry and for every write a restarted daemon resumes from its journal (an
    #: attempt cut short by kill -9 leaves no trace there), so a provider whose write is not idempotent looks for
    #: an earlier copy before writing again unless this is set
    never_sent: bool = False


class Provider(Protocol):
    """One provider. Stateless between calls except for connection pools.

    """

    name: ClassVar[str]

    def capabilities(self, env: ProviderEnv) -> ProviderCaps:
        """How this provider does each role for a session with this environment."""
        ...

    async def deliver(self, op: Operation, env: ProviderEnv, remote: dict[str, Any]) -> Outcome:
        """Make exactly one attempt; never raise for a provider-side failure (return an Outcome)."""
        ...

    async def aclose(self) -> None:
        """Release connection pools."""
        ...


# --- optional capabilities ---------------------------------------------------------------------


@runtime_checkable
class ReadsRuns(Protocol):
    """Reads a published run back as the provider shows it (``get_test_run_status``: e.g. GitHub's check run)."""

    async def read_run(self, run: RunSnapshot, env: ProviderEnv, remote: dict[str, Any]) -> dict[str, Any] | None:
        """``{"status", "conclusion", "url", ...}`` of the remote object; None when there is none or the provider
        did not answer. One attempt; never raises for a provider failure."""
        ...


@runtime_checkable
class LooksUpArtifacts(Protocol):
    """Finds an artifact through the provider's own API (``get_artifact_url`` when
    the write is pending, was restarted, or its URL is unknown).

    ``remote`` is what the outbox knows of the target. Returns ``Outcome.delivered(url=…, remote={"expires_at":
    …, "ephemeral_url": …})`` only when the provider holds *this* content (``op.sha256``) and says so; ``None``
    when it is absent or cannot be verified. One attempt, no retries; never raises for a provider failure.
    """

    async def lookup_artifact(self, op: UploadArtifact, env: ProviderEnv, remote: dict[str, Any]) -> Outcome | None:
        ...


@runtime_checkable
class PresignsUrls(Protocol):
    """Makes a fresh URL for a delivered artifact without a request (a presigned object-store URL)."""

    def presign_url(self, remote: Mapping[str, Any], env: ProviderEnv) -> tuple[str, str | None] | None:
        """``(url, expires_at or None)``; None when the object or the credentials are unknown."""
        ...


class CheckItem(msgspec.Struct, kw_only=True):
    """One thing ``doctor --check`` tried to prove: ``proven``, ``failed``, ``unproven`` or ``skipped``."""

    name: str
    result: Literal["proven", "failed", "unproven", "skipped"]
    detail: str


class CheckReport(msgspec.Struct, kw_only=True):
    """What ``doctor --check`` found for one provider."""

    provider: str
    tier: str | None = None
    write: bool = False
    items: list[CheckItem] = []

    @property
    def ok(self) -> bool:
        return all(i.result != "failed" for i in self.items)


@runtime_checkable
class ProbesAccess(Protocol):
    """Proves for ``ci-sidecar doctor --check`` that the credentials found can do what the chosen tiers need."""

    async def probe_access(self, ci: CIContext, env: Mapping[str, str], credential: Any, *, write: bool,
                           trust_env: bool) -> CheckReport:
        """Read-only and trace-free unless *write* (then it writes once, visibly named). *credential* is the
        provider's bound :class:`~ci_sidecar.credentials.Credential` or None; *env* the job's environment.
        Every detail is redacted by the provider; the caller redacts the whole report again."""
        ...


@runtime_checkable
class WritesJobLog(Protocol):
    """Has something for the job's own log after ``ci-sidecar exec`` ran the tests (e.g. GitHub's workflow
    commands, the annotation tier that needs no token)."""

    def job_log_format(self, ci: CIContext, counts: Mapping[str, int]) -> str | None:
        """The ``render_report`` format whose text ``exec`` prints to its stdout for a run with these counts,
        or None."""
        ...


class JobLogStream(Protocol):
    """One run rendered into the job's log piece by piece (TeamCity's service messages): what ``ci-sidecar exec``
    prints on its stdout when the run starts, as each page of results arrives, and when the run is done."""

    def begin(self) -> str:
        """Text for the start of the run."""
        ...

    def results(self, results: Sequence[TestResult]) -> str:
        """Text for these results (each printed exactly once, in the order they arrived)."""
        ...

    def end(self, run: Mapping[str, Any], artifacts: Sequence[Mapping[str, Any]]) -> str:
        """Text for the end of the run (``run`` as ``get_test_run_status`` returns it, its artifacts as
        ``get_artifacts_for_test_run`` does), printed once its writes were waited for."""
        ...


@runtime_checkable
class StreamsJobLog(Protocol):
    """Streams a run into the job's log while the tests run (TeamCity's service messages): ``ci-sidecar exec``
    reads the run's results with ``read_test_results`` and prints what the stream renders. A session whose
    client does that has the ``job_log = "client"`` setting, so the provider's own writes leave it out."""

    def job_log_stream(self, ci: CIContext, run: Mapping[str, Any]) -> JobLogStream | None:
        """The stream for *run* (as ``create_test_run`` returned it) in this CI context, or None."""
        ...


@runtime_checkable
class FindsCredentials(Protocol):
    """Finds its own credential when that is more than one token (an object store's key pair)."""

    def find_credential(self, settings: Mapping[str, Any], session_env: Mapping[str, str],
                        daemon_env: Mapping[str, str], credentials_dir: str | None) -> tuple[Any, list[str]] | None:
        """``(Credential, secret parts)``: the credential bound to the endpoint of *settings* (the daemon's fixed
        settings) and every part of its secret that must be redacted from logs; None when none is found."""
        ...


@runtime_checkable
class ReportsStatus(Protocol):
    """Contributes to ``sidecar/status`` (e.g. the rate-limit headers last seen)."""

    def status(self) -> dict[str, Any]:
        ...


@runtime_checkable
class DeclaresWriteBudget(Protocol):
    """Declares its write-budget numbers for a token (:mod:`.writes`); the delivery layer's defaults otherwise."""

    def write_budget(self, env: ProviderEnv) -> WriteBudget:
        ...


@runtime_checkable
class ResumesUnrecorded(Protocol):
    """Resumes a target whose ``remote`` may be behind the provider: another writer of the same target (a
    sharded group's publisher killed mid-publication) may have created its object, or added to it, without
    recording so. A provider whose creates and appends are idempotent by themselves (a report PUT under a
    fixed id, annotations with external ids) needs none of this."""

    def unrecorded(self, remote: dict[str, Any]) -> dict[str, Any]:
        """``remote`` marked so that the next attempt finds the object by its deterministic name or id (and
        what it already holds) before creating it or appending to it. No request here."""
        ...


#: every optional capability a provider can declare by defining its method
CAPABILITIES: tuple[type, ...] = (
    ReadsRuns, LooksUpArtifacts, PresignsUrls, ProbesAccess, WritesJobLog, StreamsJobLog, FindsCredentials,
    ReportsStatus, DeclaresWriteBudget, ResumesUnrecorded,
)


def _methods(protocol: type) -> dict[str, Any]:
    return {name: value for name, value in vars(protocol).items()
            if callable(value) and not name.startswith("_")}


def capabilities_of(provider: object) -> frozenset[type]:
    """The optional capabilities *provider* has, each checked against its Protocol: a method of the right
    kind (async where the Protocol's is) taking the same positional arguments.

    Raises:
        TypeError: the provider defines a capability's method with another shape, or lacks the interface.
    """
    cls = type(provider)
    for required in ("capabilities", "deliver", "aclose"):
        if not callable(getattr(provider, required, None)):
            raise TypeError(f"{cls.__name__} is not a provider: it has no {required}()")
    if not isinstance(getattr(cls, "name", None), str):
        raise TypeError(f"{cls.__name__} is not a provider: it has no class attribute 'name'")
    found: set[type] = set()
    for protocol in CAPABILITIES:
        methods = _methods(protocol)
        present = [name for name in methods if getattr(provider, name, None) is not None]
        if not present:
            continue
        for name, expected in methods.items():
            actual = getattr(provider, name, None)
            if not callable(actual):
                raise TypeError(f"{cls.__name__}.{name} must be a method to provide {protocol.__name__}")
            if inspect.iscoroutinefunction(expected) != inspect.iscoroutinefunction(actual):
                kind = "async" if inspect.iscoroutinefunction(expected) else "a plain (not async)"
                raise TypeError(f"{cls.__name__}.{name} must be {kind} method to provide {protocol.__name__}")
            if _positional(expected, bound=False) != _positional(actual, bound=True):
                raise TypeError(f"{cls.__name__}.{name} takes other arguments than {protocol.__name__}.{name}")
        found.add(protocol)
    return frozenset(found)


def _positional(fn: Any, *, bound: bool) -> int:
    params = list(inspect.signature(fn).parameters.values())
    if not bound:
        params = params[1:]  # self
    return sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)
