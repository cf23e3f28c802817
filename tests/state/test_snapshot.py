"""Tests for ci_sidecar.state.snapshot: snapshots, recovery and crash safety of checkpoints."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from ci_sidecar import atomic
from ci_sidecar.state import Journal, JournalGap, SnapshotStore, checkpoint, recover
from ci_sidecar.state import snapshot as snapshot_mod

from .helpers import mode_of

enc = msgspec.msgpack.Encoder()
dec_state = msgspec.msgpack.Decoder(list[int])


class Crash(Exception):
    """Stands for the process dying at this exact point."""


class App:
    """A tiny service: its state is the list of numbers it has journaled."""

    def __init__(self, directory: Path) -> None:
        self.journal = Journal.open(directory, "state")
        self.snapshots = SnapshotStore(directory, "state")
        rec = recover(self.journal, self.snapshots)
        self.state: list[int] = dec_state.decode(rec.state) if rec.state is not None else []
        self.state += [int(r) for r in rec.records]
        self.report = rec.report

    def add(self, numbers: range) -> None:
        for n in numbers:
            self.journal.append(b"%d" % n)
            self.state.append(n)
        self.journal.commit_sync()

    async def checkpoint(self) -> int:
        return await checkpoint(self.journal, self.snapshots, lambda: enc.encode(self.state))

    def crash(self) -> None:
        """Drop everything without a final commit, as a killed process would."""
        self.journal._file.close()  # noqa: SLF001


CRASH_POINTS = [
    "before_snapshot_write",
    "inside_snapshot_write",
    "after_snapshot_rename",
    "after_segments_deleted",
    "after_old_snapshots_deleted",
]


def arm(point: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the checkpoint die at ``point``."""

    def crash(*args: object, **kwargs: object) -> None:
        raise Crash(point)

    if point == "before_snapshot_write":
        monkeypatch.setattr(SnapshotStore, "write", crash)
    elif point == "inside_snapshot_write":
        # Half of the temporary file is written; the rename never happens.
        def partial_write(path: Path, data: bytes) -> None:
            (path.parent / f".{path.name}{atomic.TMP_MARKER}crash").write_bytes(data[: len(data) // 2])
            raise Crash(point)

        monkeypatch.setattr(snapshot_mod, "atomic_write_bytes", partial_write)
    elif point == "after_snapshot_rename":
        # Renamed into place, but the directory was not fsynced and nothing was pruned.
        def rename_then_crash(path: Path, data: bytes) -> None:
            tmp = path.parent / f".{path.name}{atomic.TMP_MARKER}crash"
            tmp.write_bytes(data)
            tmp.rename(path)
            raise Crash(point)

        monkeypatch.setattr(snapshot_mod, "atomic_write_bytes", rename_then_crash)
    elif point == "after_segments_deleted":
        monkeypatch.setattr(SnapshotStore, "delete_before", crash)
    elif point == "after_old_snapshots_deleted":
        real = snapshot_mod._prune  # noqa: SLF001

        def prune_then_crash(*args: object) -> None:
            real(*args)  # type: ignore[arg-type]
            raise Crash(point)

        monkeypatch.setattr(snapshot_mod, "_prune", prune_then_crash)


class TestCheckpointCrash:
    @pytest.mark.parametrize("point", CRASH_POINTS)
    async def test_crash_at_each_step_recovers_everything_once(
        self, point: str, state_dir: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Whatever step of a checkpoint the process dies at, recovery yields every record exactly once."""
        app = App(state_dir)
        app.add(range(0, 10))
        await app.checkpoint()
        app.add(range(10, 20))
        with monkeypatch.context() as m:
            arm(point, m)
            with pytest.raises(Crash):
                await app.checkpoint()
        app.crash()

        again = App(state_dir)
        assert list(range(20)) == again.state
        assert [] == list(state_dir.glob(f".*{atomic.TMP_MARKER}*"))
        # And the recovered process keeps working: more records, another checkpoint, another restart.
        again.add(range(20, 25))
        await again.checkpoint()
        again.add(range(25, 30))
        again.crash()
        assert list(range(30)) == App(state_dir).state

    async def test_complete_checkpoint_prunes_and_recovers(self, state_dir: Path) -> None:
        """After a checkpoint only the new snapshot and the segments it does not cover remain."""
        app = App(state_dir)
        app.add(range(5))
        seq = await app.checkpoint()
        app.add(range(5, 8))
        app.crash()
        assert [seq] == app.snapshots.sequences()
        assert [seq] == app.journal.segments()
        again = App(state_dir)
        assert list(range(8)) == again.state
        assert 3 == again.report.records

    async def test_appends_during_a_checkpoint_are_not_lost(self, state_dir: Path) -> None:
        """Records appended while a checkpoint is in flight land in the next segment and are replayed once."""
        app = App(state_dir)
        app.add(range(3))

        async def meanwhile() -> None:
            app.add(range(3, 6))  # after the state was captured, before the snapshot is written

        await checkpoint(app.journal, app.snapshots, lambda: enc.encode(app.state), before_write=meanwhile)
        app.crash()
        again = App(state_dir)
        assert list(range(6)) == again.state
        assert 3 == again.report.records


class TestSnapshotStore:
    def test_round_trip_and_mode(self, state_dir: Path) -> None:
        """A snapshot reads back byte for byte, from a 0600 file."""
        store = SnapshotStore(state_dir, "state")
        store.write(7, b"payload")
        assert b"payload" == store.latest().data  # type: ignore[union-attr]
        assert 7 == store.latest().seq  # type: ignore[union-attr]
        (path,) = state_dir.glob("*.snap")
        assert 0o600 == mode_of(path)

    def test_damaged_newest_falls_back_when_segments_remain(
        self, state_dir: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A damaged newest snapshot is ignored (with a warning) if the older one plus segments suffice."""
        app = App(state_dir)
        app.add(range(4))
        seq = app.journal.rotate()
        app.journal.commit_sync()
        app.snapshots.write(seq, enc.encode(app.state))  # then a crash before pruning
        app.add(range(4, 6))
        app.crash()
        (path,) = state_dir.glob("*.snap")
        data = bytearray(path.read_bytes())
        data[-1] ^= 0xFF
        path.write_bytes(data)
        again = App(state_dir)
        assert list(range(6)) == again.state
        assert "damaged" in caplog.text

    async def test_damaged_newest_with_pruned_segments_raises(self, state_dir: Path) -> None:
        """If the segments an older snapshot would need are gone, recovery refuses instead of losing data."""
        app = App(state_dir)
        app.add(range(4))
        await app.checkpoint()
        app.add(range(4, 6))
        await app.checkpoint()
        app.crash()
        for path in state_dir.glob("*.snap"):
            path.write_bytes(b"\0" * 10)
        app.snapshots.write(1, enc.encode([]))  # an old snapshot that needs the deleted segment 1
        with pytest.raises(JournalGap):
            App(state_dir)
