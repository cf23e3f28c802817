"""What the service persists: run metadata, journal records, and the snapshot image.

Journal records are tagged msgspec Structs encoded with msgpack; the same Structs make up the
snapshot image, so there is one definition of every persisted shape.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ci_sidecar.delivery.outbox import OutboxDone, OutboxFailed, OutboxImage, OutboxPut, OutboxRemote
from ci_sidecar.protocol.history import RunDelta
from ci_sidecar.protocol.records import CIContext, CommentRef, Counts, ErrorInfo, Target
from ci_sidecar.protocol.shards import ShardReport

from .tally import Tally

__all__ = ["GroupMeta", "NotifiedChannel", "RunMeta", "RunSaved", "ResultsAdded", "RunDeleted", "ArtifactUpload",
           "ArtifactMeta", "ArtifactSaved", "ArtifactsRemoved", "Record", "RunImage", "StateImage",
           "encode_record", "decode_record"]


class NotifiedChannel(msgspec.Struct, kw_only=True):
    """A notification channel a run has notified: its kind and the outbox writes carrying the message."""

    kind: str
    entries: list[str]


class GroupMeta(msgspec.Struct, kw_only=True):
    """A run's place in a sharded group: a shard's own run, or the merged run this daemon publishes."""

    key: str
    role: str = "shard"  # shard | group
    shard: int = 0
    total: int | None = None
    deadline_s: float = 3600.0
    #: the merged run: how many entries of the group's log its records hold
    applied: int = 0
    #: the merged run: recorded in this daemon's history (by its final publication)
    recorded: bool = False


class RunMeta(msgspec.Struct, kw_only=True):
    """Everything about a run except its per-test records and counting state."""

    id: str
    seq: int
    name: str
    status: str = "running"
    conclusion: str | None = None
    start_time: str
    end_time: str | None = None
    start_wall: float
    last_write: float
    external_id: str | None = None
    commit_sha: str | None = None
    head_sha: str | None = None
    branch: str | None = None
    pr_number: int | None = None
    build_id: str | None = None
    details_url: str | None = None
    repository: str | None = None
    ci_provider: str = "local"
    scm_provider: str | None = None
    output_dir: str
    summary: Counts | None = None
    summary_duration: float | None = None
    note: str | None = None
    coverage: float | None = None
    targets: list[Target] = []
    comments: list[CommentRef] = []
    junit_hashes: list[str] = []
    ci: CIContext | None = None
    results_count: int = 0
    session_config: dict[str, Any] = {}
    #: set at completion: the run compared with its base in the history
    delta: RunDelta | None = None
    #: channel → what was sent to it (each run notifies each channel once)
    notified: dict[str, NotifiedChannel] = {}
    group: GroupMeta | None = None
    #: a run merged from shards (a group's merged run, a ``merge`` fan-in): its shards section
    shards: ShardReport | None = None


class RunSaved(msgspec.Struct, tag="run_saved"):
    meta: RunMeta


class ResultsAdded(msgspec.Struct, tag="results_added"):
    run_id: str
    items: list[bytes]  # each a msgpack-encoded TestResult


class RunDeleted(msgspec.Struct, tag="run_deleted"):
    run_id: str


class ArtifactUpload(msgspec.Struct, kw_only=True):
    """One provider's copy of an artifact: the outbox entry carrying it and what came of it."""

    provider: str
    entry_id: str | None = None
    state: str = "pending"  # pending | delivered | failed
    error: ErrorInfo | None = None
    url: str | None = None
    url_expires_at: str | None = None
    tier: str | None = None
    #: a URL a lookup through the provider's API verified (while the write itself is pending or its URL
    #: unknown), trusted until ``found_until`` (epoch seconds); never one carrying temporary credentials
    found_url: str | None = None
    found_expires_at: str | None = None
    found_until: float | None = None


class ArtifactMeta(msgspec.Struct, kw_only=True):
    """An artifact of a run as persisted (the content itself is a blob in the artifact store)."""

    run_id: str
    name: str
    type: str
    size: int
    sha256: str
    mime_type: str
    created_at: str
    created_wall: float
    labels: list[str] = []
    metadata: dict[str, Any] = {}
    action: str = "created"
    #: the provider whose copy the artifact's ``upload`` and URL report
    primary: str = "local"
    uploads: list[ArtifactUpload] = []
    #: the zip artifact of the run that carries this file to the CI provider (a job's artifact cap), if any
    inside: str | None = None


class ArtifactSaved(msgspec.Struct, tag="artifact_saved"):
    meta: ArtifactMeta


class ArtifactsRemoved(msgspec.Struct, tag="artifacts_removed"):
    run_id: str
    names: list[str]


Record = (RunSaved | ResultsAdded | RunDeleted | OutboxPut | OutboxDone | OutboxFailed | OutboxRemote
          | ArtifactSaved | ArtifactsRemoved)


class RunImage(msgspec.Struct, kw_only=True):
    meta: RunMeta
    tally: Tally
    results_size: int


class StateImage(msgspec.Struct, kw_only=True):
    runs: list[RunImage] = []
    outbox: OutboxImage = msgspec.field(default_factory=OutboxImage)
    next_seq: int = 1
    artifacts: list[ArtifactMeta] = []


_encoder = msgspec.msgpack.Encoder()
_record_decoder = msgspec.msgpack.Decoder(Record)
encode_record = _encoder.encode
decode_record = _record_decoder.decode
encode_image = _encoder.encode
decode_image = msgspec.msgpack.Decoder(StateImage).decode
