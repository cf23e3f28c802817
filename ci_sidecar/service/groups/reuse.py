"""A group key reused after its group concluded: the new shard cannot join, and is told why.

A key names one pipeline run. A later pipeline run that gives the same key (a fixed ``key`` in a workflow file,
a re-run on a CI whose default key does not change) finds the group's ``group.json`` final: no publication would
ever merge its shard again, so its results would reach nobody. ``create_test_run`` asks :func:`concluded` first
and makes such a shard a run of its own (published like any run) with a note naming the key.
"""

from __future__ import annotations

import logging

import msgspec

from ci_sidecar.providers.s3 import S3Failed, S3Provider, S3Secret, S3Settings
from ci_sidecar.providers.s3objects import ObjectStore

from ..model import GroupMeta
from ..session_context import SessionContext
from .model import GROUP_FILE, decode_group, slug

__all__ = ["session_store", "concluded"]

log = logging.getLogger("ci_sidecar.groups")


def session_store(ctx: SessionContext) -> ObjectStore | None:
    """The session's object store, None when it has none configured (or no credentials for it)."""
    store_name = ctx.store or "s3"
    settings = S3Settings.from_config(ctx.provider_config(store_name))
    cred = ctx.credentials.get(store_name)
    secret = S3Secret.decode(cred.secret.reveal()) if cred is not None else None
    impl = ctx.providers.get(store_name)
    if settings is None or secret is None or not isinstance(impl, S3Provider):
        return None
    return ObjectStore(impl, settings, secret, ctx.provider_env(store_name))


async def concluded(ctx: SessionContext, group: GroupMeta) -> str | None:
    """Why a new shard cannot join ``group`` (its group concluded already), or None: it may. None too when the
    store is missing (joining then says so), does not answer or holds no readable group object (the shard joins
    and its task reads the group again)."""
    store = session_store(ctx)
    if store is None:
        return None
    try:
        got = await store.get(f"{store.key('groups', slug(group.key))}/{GROUP_FILE}")
    except S3Failed as exc:
        log.warning("group %s: could not read the group (%s): joining it", group.key, exc.outcome.message)
        return None
    try:
        doc = decode_group(got[0]) if got is not None else None
    except msgspec.DecodeError:
        return None
    if doc is None or not doc.final:
        return None
    return (f"group {group.key!r} concluded already ({doc.conclusion or 'no conclusion'}): a group key names one "
            f"pipeline run, so shard {group.shard} is published as a run of its own; give each pipeline run its "
            "own key")
