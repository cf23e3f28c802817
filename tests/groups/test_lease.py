"""The group's publish lease on a real S3 protocol server (moto behind the suite's proxy, which passes
conditional writes one at a time: moto checks ``If-Match`` but not atomically, S3 does both at once).

Only the lease is in process here; ``test_groups_e2e.py`` kills real shard daemons while they hold it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
import trio

from ci_sidecar.protocol.records import CIContext
from ci_sidecar.providers.base import ProviderEnv
from ci_sidecar.providers.s3 import S3Provider, S3Secret, S3Settings
from ci_sidecar.providers.s3objects import ConditionFailed, ObjectStore
from ci_sidecar.service.groups import lease as lease_module
from ci_sidecar.service.groups.lease import Lease
from ci_sidecar.service.groups.model import GroupDoc, decode_group, encode
from s3_fixtures import DUMMY_KEY, REGION, FaultProxy, Moto, moto  # noqa: F401

KEY = "groups/g/group.json"


@pytest.fixture
async def stores(moto: Moto) -> AsyncIterator[list[ObjectStore]]:  # noqa: F811
    """Six independent clients of one fresh bucket (six shard daemons), through the proxy."""
    bucket = moto.bucket()
    with FaultProxy(moto.url) as proxy:
        settings = S3Settings(bucket=bucket, endpoint_url=proxy.url, region=REGION)
        secret = S3Secret(access_key_id=DUMMY_KEY[0], secret_access_key=DUMMY_KEY[1])
        env = ProviderEnv(ci=CIContext(provider="local", sources={}))
        providers = [S3Provider() for _ in range(6)]
        try:
            yield [ObjectStore(p, settings, secret, env) for p in providers]
        finally:
            for p in providers:
                await p.aclose()


def group(holder: str | None, until: float) -> GroupDoc:
    return GroupDoc(key="k", created_wall=0.0, deadline_wall=time.time() + 600, lease_holder=holder,
                    lease_until=until)


async def test_of_shards_racing_for_an_expired_lease_exactly_one_takes_it(stores: list[ObjectStore]) -> None:
    """Five shards that all saw a dead holder's lease run out write their claim at once: one wins, the others
    are told they lost and the object names the winner."""
    await stores[0].put(KEY, encode(group("dead-shard", time.time() - 1)), create_only=True)
    won: list[str] = []
    lost: list[str] = []
    read = [await stores[n].get(KEY) for n in range(1, 6)]  # every contender read the same version

    async def contend(n: int) -> None:
        got = read[n - 1]
        assert got is not None
        doc = decode_group(got[0])
        doc.lease_holder = f"shard-{n}"
        try:
            await Lease(stores[n], KEY, doc, got[1]).write()
            won.append(f"shard-{n}")
        except ConditionFailed:
            lost.append(f"shard-{n}")

    async with trio.open_nursery() as nursery:
        for n in range(1, 6):
            nursery.start_soon(contend, n)
    assert len(won) == 1 and len(lost) == 4, (won, lost)
    stored = await stores[0].get(KEY)
    assert stored is not None and decode_group(stored[0]).lease_holder == won[0]


async def test_a_heartbeat_keeps_the_lease_and_a_taken_over_holder_stops(stores: list[ObjectStore],
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A holder publishing for longer than the lease's TTL keeps it (the heartbeat renews it); once another
    shard takes the group over, the old holder's next renewal loses and its publication is cancelled."""
    monkeypatch.setattr(lease_module, "LEASE_S", 1.0)
    monkeypatch.setattr(lease_module, "RENEW_S", 0.2)
    etag = await stores[0].put(KEY, encode(group("a", 0.0)), create_only=True)
    holder = Lease(stores[0], KEY, group("a", 0.0), etag)
    await holder.write()
    seen: list[tuple[float, GroupDoc]] = []

    async def publish() -> str:
        await trio.sleep(2.5)  # longer than two TTLs
        got = await stores[1].get(KEY)
        assert got is not None
        seen.append((time.time(), decode_group(got[0])))
        await trio.sleep_forever()  # until another shard takes over
        return "never"

    async def take_over() -> None:
        await trio.sleep(2.6)
        while True:  # as if the lease had run out (a stalled holder); a renewal between read and write wins
            got = await stores[2].get(KEY)
            assert got is not None
            doc = decode_group(got[0])
            doc.lease_holder, doc.lease_until = "b", time.time() + 60
            try:
                await stores[2].put(KEY, encode(doc), if_match=got[1])
                return
            except ConditionFailed:
                continue

    async with trio.open_nursery() as nursery:
        nursery.start_soon(take_over)
        with trio.fail_after(10):
            outcome = await holder.hold(publish)
    read_at, doc = seen[0]
    assert doc.lease_holder == "a" and doc.lease_until > read_at  # still valid 2.5 s after a 1 s lease
    assert holder.renewals >= 3
    assert outcome is None and holder.lost
    with pytest.raises(ConditionFailed):
        await holder.write(release=True)  # and it can no longer write the group
