"""Durable state: an append-only journal with group commit, snapshots, and per-run record files.

Used only by the service and delivery layers. Everything here stores opaque bytes; callers encode
their own records (msgspec msgpack of ``protocol`` Structs). Files are ``0600`` in a ``0700``
directory; every replacement is atomic; a torn tail is skipped with a warning.
"""

from __future__ import annotations

from ci_sidecar.atomic import atomic_write_bytes, ensure_private_dir, fsync_dir

from .journal import Journal, JournalBroken, JournalGap, ReplayReport, StateError
from .records import RecordStore
from .snapshot import Recovery, Snapshot, SnapshotStore, checkpoint, recover

__all__ = [
    "Journal",
    "JournalBroken",
    "JournalGap",
    "RecordStore",
    "Recovery",
    "ReplayReport",
    "Snapshot",
    "SnapshotStore",
    "StateError",
    "atomic_write_bytes",
    "checkpoint",
    "ensure_private_dir",
    "fsync_dir",
    "recover",
]
