"""Tests for ci_sidecar.state.records: the per-run file of per-test records."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec
import pytest
import trio

from ci_sidecar.protocol.records import TestResult
from ci_sidecar.state import RecordStore

from .helpers import mode_of


def result(i: int) -> bytes:
    """An encoded test result, as the service would store it."""
    return msgspec.msgpack.encode(
        TestResult(name=f"test_case_{i}", status="passed", suite="unit", file="tests/test_x.py", duration=i / 1000)
    )


class TestRecordStore:
    def test_records_iterate_back_in_order_across_chunks(self, state_dir: Path) -> None:
        """More records than one read chunk holds come back complete and in append order."""
        store = RecordStore.open(state_dir / "run-1.rec")
        expected = [result(i) for i in range(60_000)]  # ~4.5 MB, more than the 4 MiB read chunk
        store.append_many(expected[:30_000])
        store.commit_sync(fsync=False)
        store.append_many(expected[30_000:])
        store.commit_sync()
        assert expected == list(store.iter_records())
        decoded = msgspec.msgpack.decode(next(store.iter_records()), type=TestResult)
        assert "test_case_0" == decoded.name
        store.close()

    def test_size_is_the_file_size_after_commit(self, state_dir: Path) -> None:
        """``size`` counts buffered records, so a snapshot can record it before the write happens."""
        store = RecordStore.open(state_dir / "r.rec")
        store.append(b"abc")
        expected = store.size
        store.commit_sync()
        assert expected == os.path.getsize(store.path)
        store.close()

    def test_uncommitted_records_are_not_iterated(self, state_dir: Path) -> None:
        """Iteration reads what was written; records still buffered or appended meanwhile are left out."""
        store = RecordStore.open(state_dir / "r.rec")
        store.append(b"written")
        store.commit_sync(fsync=False)
        store.append(b"buffered")
        it = store.iter_records()
        store.commit_sync(fsync=False)  # written after the iteration started
        assert [b"written"] == list(it)
        assert [b"written", b"buffered"] == list(store.iter_records())
        store.close()

    def test_reopen_with_valid_size_cuts_what_the_snapshot_does_not_cover(self, state_dir: Path) -> None:
        """Opening with the size a snapshot recorded drops later bytes (the journal re-adds them)."""
        store = RecordStore.open(state_dir / "r.rec")
        store.append(b"one")
        covered = store.size
        store.append(b"two")
        store.close()
        store = RecordStore.open(state_dir / "r.rec", valid_size=covered)
        store.append(b"two again")
        store.commit_sync()
        assert [b"one", b"two again"] == list(store.iter_records())
        store.close()

    def test_reopen_empty_for_runs_the_snapshot_does_not_know(self, state_dir: Path) -> None:
        """``valid_size=RecordStore.EMPTY`` keeps only the file header."""
        store = RecordStore.open(state_dir / "r.rec")
        store.append(b"x")
        store.close()
        store = RecordStore.open(state_dir / "r.rec", valid_size=RecordStore.EMPTY)
        assert [] == list(store.iter_records())
        store.close()

    def test_reopen_without_size_cuts_a_torn_tail(self, state_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
        """A store used as its own log finds its valid end; new records follow the good ones cleanly."""
        path = state_dir / "r.rec"
        store = RecordStore.open(path)
        store.append_many([b"a", b"b"])
        store.close()
        path.write_bytes(path.read_bytes()[:-1])
        store = RecordStore.open(path)
        assert 1 == store.records
        store.append(b"c")
        store.commit_sync()
        assert [b"a", b"c"] == list(store.iter_records())
        assert "torn tail" in caplog.text
        store.close()

    async def test_async_commit_keeps_records_appended_meanwhile(self, state_dir: Path) -> None:
        """Records appended while a commit is in its worker thread are written by the next commit."""
        store = RecordStore.open(state_dir / "r.rec")
        store.append(b"first")

        async def append_soon() -> None:
            await trio.lowlevel.checkpoint()
            store.append(b"second")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(append_soon)
            await store.commit()
        await store.commit(fsync=False)
        assert [b"first", b"second"] == list(store.iter_records())
        store.close()

    def test_modes_and_remove(self, state_dir: Path) -> None:
        """The file is 0600 in a 0700 directory, and removing a run's store deletes it."""
        store = RecordStore.open(state_dir / "runs" / "r.rec")
        assert 0o600 == mode_of(store.path)
        assert 0o700 == mode_of(state_dir / "runs")
        store.remove()
        assert not store.path.exists()

    def test_valid_size_below_header_is_refused(self, state_dir: Path) -> None:
        """A size smaller than the file header can only be a caller bug."""
        RecordStore.open(state_dir / "r.rec").close()
        with pytest.raises(ValueError):
            RecordStore.open(state_dir / "r.rec", valid_size=3)


class TestParkedRecordStore:
    def test_a_parked_store_holds_no_descriptor_and_still_takes_writes(self, state_dir: Path) -> None:
        """Parking closes the file; a later write reopens it for that write only; nothing is lost."""
        before = len(os.listdir("/proc/self/fd"))
        store = RecordStore.open(state_dir / "run-p.rec")
        store.append(result(0))
        store.commit_sync(fsync=False)
        store.park()
        assert not store.is_open and before == len(os.listdir("/proc/self/fd"))
        store.append(result(1))

        async def commit() -> None:
            await store.commit(fsync=False)
            await store.commit(fsync=True)  # the unsynced bytes are fsynced (reopening briefly)

        trio.run(commit)
        assert not store.is_open and before == len(os.listdir("/proc/self/fd"))
        assert [result(0), result(1)] == list(store.iter_records())
        store.unpark()
        store.append(result(2))
        store.commit_sync(fsync=False)
        assert store.is_open
        store.close()
        reopened = RecordStore.open(state_dir / "run-p.rec")
        assert 3 == len(list(reopened.iter_records()))
        reopened.close()
