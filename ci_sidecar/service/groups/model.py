"""What a sharded group keeps in the object store, and where.

Under ``<prefix>/groups/<group>/`` (``<group>``: a readable slug of the key plus a hash of it, so two keys never
share a folder)::

    group.json                          the group: version, publish lease, provider remote state, merge log
    <shard>/state.json                  one shard's compact state (written by that shard only)
    <shard>/<run id>/<start>-<end>.mp   immutable segments of that shard's per-test records (msgpack)

A shard writes segments first and its state after, so a state never names a segment that is not there.
``group.json`` changes only by conditional writes (create: ``If-None-Match: *``; update: ``If-Match``), so two
shards never both think they published version N.
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING, Annotated

import msgspec

from ci_sidecar.protocol.records import Counts

if TYPE_CHECKING:
    from ..model import GroupMeta

__all__ = ["ShardDoc", "GroupDoc", "LogEntry", "holds_log", "slug", "group_run_id", "GROUP_FILE", "STATE_FILE",
           "SEGMENT_SUFFIX", "encode", "decode_shard", "decode_group"]

GROUP_FILE = "group.json"
STATE_FILE = "state.json"
SEGMENT_SUFFIX = ".mp"

#: what another shard's daemon wrote is checked as it is read: a run id becomes part of an object key, so it may
#: hold no ``/`` or dot segment (an HTTP client folds ``../`` away, which would lead outside the group's folder)
RunId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
Position = Annotated[int, msgspec.Meta(ge=0)]

#: (shard, run id, start, end): one segment, in the order the group's merged records hold them
LogEntry = tuple[Position, RunId, Position, Position]


class ShardDoc(msgspec.Struct, kw_only=True):
    """One shard's compact state."""

    shard: Position
    total: int | None = None
    run_id: RunId
    name: str
    status: str = "running"  # running | finished
    conclusion: str | None = None
    counts: Counts = msgspec.field(default_factory=Counts)
    #: [start, end) of each segment written, in order
    segments: list[tuple[Position, Position]] = []
    machine: str = ""
    start_wall: float
    end_wall: float | None = None
    updated_wall: float


class GroupDoc(msgspec.Struct, kw_only=True):
    """The group object: who publishes now, what the provider knows, which segments are merged in which order."""

    version: int = 1
    key: str
    created_wall: float
    deadline_wall: float
    total: int | None = None
    #: the shard publishing now (its shard run's id) and until when its lease holds (renewed while it publishes)
    lease_holder: str | None = None
    lease_until: float = 0.0
    #: the providers a publication under way may write to before ``remote`` records it (a claim taken with the
    #: lease, cleared with the record): found set by the next holder, their objects are looked up before a create
    publishing: list[str] = []
    #: per provider, what it learnt about the group's object (check run id, annotations sent...)
    remote: dict[str, dict] = {}
    log: list[LogEntry] = []
    #: per shard, the counts and status of its latest state included in a publication (for reports)
    shards: dict[str, ShardDoc] = {}
    published_wall: float | None = None
    final: bool = False
    #: the lease holder that made the final publication (its daemon keeps the merged run in its history)
    final_by: str | None = None
    conclusion: str | None = None
    missing: list[int] = []


def holds_log(group: GroupMeta | None, records: int, log: list[LogEntry]) -> bool:
    """Whether a merged run (its ``group`` meta and record count) holds exactly the records of the log entries it
    counts as applied: a kill -9 between journaling results and the count leaves the two apart."""
    if group is None or group.applied > len(log):
        return False
    return records == sum(end - start for _, _, start, end in log[:group.applied])


def slug(key: str) -> str:
    """The key's folder name: readable, bounded, and unique per key (the hash)."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "-", key).strip("-.")[:60] or "group"
    return f"{readable}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def group_run_id(key: str) -> str:
    """The merged run's id: the same on every shard's daemon (providers find their object by it)."""
    return "group-" + hashlib.sha256(key.encode()).hexdigest()[:26]


encode = msgspec.json.Encoder().encode
decode_shard = msgspec.json.Decoder(ShardDoc).decode
decode_group = msgspec.json.Decoder(GroupDoc).decode
