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
  none), which ``initialize``, ``ci-sidecar doctor`` and ``TestRun.targets`` report.

Providers know no JSON-RPC and no journal; they see plain Structs and a :class:`ProviderEnv`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol

import msgspec

from ci_sidecar.credentials import CredentialRef
from ci_sidecar.protocol.records import CIContext, Counts, ProviderCaps

__all__ = [
    "RunSnapshot",
    "PublishRun",
    "SetStatus",
    "PostComment",
    "UploadArtifact",
    "Operation",
    "Outcome",
    "ProviderEnv",
    "Provider",
    "LooksUpArtifacts",
    "CredentialRef",
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


Operation = PublishRun | SetStatus | PostComment | UploadArtifact


class Outcome(msgspec.Struct, kw_only=True):
    """The result of one attempt.

    ``delivered``: done; ``retry``: a transient failure (429, 5xx, timeout, reset) — try again, not
    before ``retry_after`` seconds when the provider said so; ``refused``: the provider said no (other
    4xx) — final; ``unsupported``: the provider cannot do this operation at any tier — final.
    """

    kind: Literal["delivered", "retry", "refused", "unsupported"]
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


class Provider(Protocol):
    """One provider. Stateless between calls except for connection pools."""

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


class LooksUpArtifacts(Protocol):
    """Optional provider method: find an artifact through the provider's own API (``get_artifact_url`` when
    the write is pending, was restarted, or its URL is unknown).

    ``remote`` is what the outbox knows of the target. Returns ``Outcome.delivered(url=…, remote={"expires_at":
    …, "ephemeral_url": …})`` only when the provider holds *this* content (``op.sha256``) and says so; ``None``
    when it is absent or cannot be verified. One attempt, no retries; never raises for a provider failure.
    """

    async def lookup_artifact(self, op: UploadArtifact, env: ProviderEnv, remote: dict[str, Any]) -> Outcome | None:
        ...
