"""Tests for ci_sidecar.state.journal and the record framing in ci_sidecar.state.segments."""

from __future__ import annotations

import logging
import os
import shutil
import struct
from pathlib import Path

import pytest
import trio

from ci_sidecar.state import Journal, JournalBroken, JournalGap, ReplayReport
from ci_sidecar.state.segments import FILE_HEADER, RECORD_HEADER, AppendFile

from .helpers import mode_of, read_segment_paths


def payload(i: int) -> bytes:
    """A recognisable record of varying length."""
    return f"record-{i}-".encode() + b"x" * (i % 37)


def write_journal(directory: Path, count: int) -> Path:
    """A closed journal holding ``count`` committed records in one segment; returns the segment path."""
    j = Journal.open(directory, "state")
    for i in range(count):
        j.append(payload(i))
    j.commit_sync()
    j.close()
    (segment,) = read_segment_paths(directory)
    return segment


def replay_all(directory: Path) -> tuple[list[bytes], ReplayReport]:
    """Reopen the journal and read back every record."""
    j = Journal.open(directory, "state")
    report = ReplayReport()
    try:
        return list(j.replay(0, report)), report
    finally:
        j.close()


class TestRoundTrip:
    def test_records_come_back_in_order_after_reopen(self, state_dir: Path) -> None:
        """Committed records survive closing and reopening, in append order, across segments."""
        j = Journal.open(state_dir, "state")
        j.append(b"a")
        j.append_many([b"b", b"c"])
        j.commit_sync()
        j.rotate()
        j.append(b"d")
        j.close()
        records, report = replay_all(state_dir)
        assert [b"a", b"b", b"c", b"d"] == records
        assert (0, 0) == (report.torn, report.corrupt)

    def test_every_open_starts_a_new_segment(self, state_dir: Path) -> None:
        """Reopening never appends to an old file, so an old torn tail is never followed by new records."""
        Journal.open(state_dir, "state").close()
        j = Journal.open(state_dir, "state")
        assert [1, 2] == j.segments()
        assert 2 == j.seq
        j.close()

    def test_empty_and_large_records(self, state_dir: Path) -> None:
        """Empty payloads and payloads larger than the read chunk round-trip."""
        big = os.urandom(5 * 1024 * 1024)
        j = Journal.open(state_dir, "state")
        j.append_many([b"", big, b"tail"])
        j.commit_sync()
        j.close()
        assert [b"", big, b"tail"] == replay_all(state_dir)[0]

    def test_bytearray_is_copied_at_append(self, state_dir: Path) -> None:
        """Mutating a bytearray after appending it does not change the record."""
        data = bytearray(b"before")
        j = Journal.open(state_dir, "state")
        j.append(data)
        data[:] = b"after!"
        j.close()
        assert [b"before"] == replay_all(state_dir)[0]

    def test_str_is_rejected(self, state_dir: Path) -> None:
        """Records are bytes the caller encoded; a str is a bug and is refused at once."""
        j = Journal.open(state_dir, "state")
        with pytest.raises(TypeError):
            j.append("text")  # type: ignore[arg-type]
        j.close()

    def test_pending_and_size(self, state_dir: Path) -> None:
        """``pending`` counts uncommitted records and ``size`` tracks the segment's bytes."""
        j = Journal.open(state_dir, "state")
        assert (0, FILE_HEADER.size) == (j.pending, j.size)
        j.append(b"12345")
        assert (1, FILE_HEADER.size + RECORD_HEADER.size + 5) == (j.pending, j.size)
        j.commit_sync()
        assert 0 == j.pending
        assert os.path.getsize(read_segment_paths(state_dir)[0]) == j.size
        j.close()

    def test_file_modes(self, state_dir: Path) -> None:
        """The state directory is 0700 and segment files are 0600."""
        j = Journal.open(state_dir, "state")
        j.append(b"x")
        j.rotate()
        j.close()
        assert 0o700 == mode_of(state_dir)
        assert [0o600, 0o600] == [mode_of(p) for p in read_segment_paths(state_dir)]

    def test_invalid_name(self, state_dir: Path) -> None:
        """Names that could escape the directory or confuse the file pattern are refused."""
        with pytest.raises(ValueError):
            Journal.open(state_dir, "../x")


class TestTornTail:
    COUNT = 20

    def test_cut_at_every_offset_of_the_last_record(self, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
        """Whatever byte the last record is cut at, every earlier record is recovered and a warning says so."""
        src = tmp_path / "src"
        segment = write_journal(src, self.COUNT)
        full = segment.read_bytes()
        last_len = RECORD_HEADER.size + len(payload(self.COUNT - 1))
        start = len(full) - last_len
        expected = [payload(i) for i in range(self.COUNT - 1)]
        for cut in range(start, len(full)):
            work = tmp_path / f"cut{cut}"
            shutil.copytree(src, work)
            (work / segment.name).write_bytes(full[:cut])
            caplog.clear()
            records, report = replay_all(work)
            assert expected == records, cut
            if cut == start:
                assert 0 == report.torn  # a clean record boundary is not damage
            else:
                assert (1, 0, cut - start) == (report.torn, report.corrupt, report.skipped_bytes), cut
                assert "torn tail" in caplog.text
            shutil.rmtree(work)

    def test_zero_filled_tail(self, state_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
        """Zeros after the last record (size extended, data lost) are a torn tail, not records."""
        segment = write_journal(state_dir, 3)
        with open(segment, "ab") as f:
            f.write(b"\0" * 100)
        records, report = replay_all(state_dir)
        assert [payload(i) for i in range(3)] == records
        assert (1, 0) == (report.torn, report.corrupt)
        assert "zero-filled" in caplog.text

    def test_crc_mismatch_in_last_record(self, state_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
        """A last record whose payload does not match its checksum is skipped as a torn tail."""
        segment = write_journal(state_dir, 3)
        data = bytearray(segment.read_bytes())
        data[-1] ^= 0xFF
        segment.write_bytes(data)
        records, report = replay_all(state_dir)
        assert [payload(0), payload(1)] == records
        assert (1, 0) == (report.torn, report.corrupt)

    def test_new_records_after_a_torn_tail_are_replayed(self, state_dir: Path) -> None:
        """After a crash left a torn tail, records committed after the restart are read too."""
        segment = write_journal(state_dir, 3)
        segment.write_bytes(segment.read_bytes()[:-2])
        j = Journal.open(state_dir, "state")
        j.append(b"after restart")
        j.close()
        records, report = replay_all(state_dir)
        assert [payload(0), payload(1), b"after restart"] == records
        assert 1 == report.torn


class TestCorruption:
    def test_crc_mismatch_in_the_middle_stops_that_segment(
        self, state_dir: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A bad record followed by more data is reported as corruption; later segments are still read."""
        j = Journal.open(state_dir, "state")
        j.append_many([payload(i) for i in range(5)])
        j.rotate()
        j.append(b"next segment")
        j.close()
        first = read_segment_paths(state_dir)[0]
        data = bytearray(first.read_bytes())
        # Flip a payload byte of record 2.
        offset = FILE_HEADER.size
        for i in range(2):
            offset += RECORD_HEADER.size + len(payload(i))
        data[offset + RECORD_HEADER.size] ^= 0x01
        first.write_bytes(data)
        with caplog.at_level(logging.WARNING):
            records, report = replay_all(state_dir)
        assert [payload(0), payload(1), b"next segment"] == records
        assert (0, 1) == (report.torn, report.corrupt)
        assert "corruption at offset" in caplog.text

    def test_garbage_header_in_the_middle(self, state_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
        """A record header without the magic, followed by data, is corruption (not resynchronised past)."""
        segment = write_journal(state_dir, 4)
        data = bytearray(segment.read_bytes())
        struct.pack_into("<I", data, FILE_HEADER.size + RECORD_HEADER.size + len(payload(0)), 0xDEADBEEF)
        segment.write_bytes(data)
        records, report = replay_all(state_dir)
        assert [payload(0)] == records
        assert 1 == report.corrupt

    def test_missing_segment_is_a_gap(self, state_dir: Path) -> None:
        """A lost segment in the middle raises instead of silently dropping acknowledged records."""
        j = Journal.open(state_dir, "state")
        j.append(b"1")
        j.rotate()
        j.append(b"2")
        j.rotate()
        j.append(b"3")
        j.close()
        read_segment_paths(state_dir)[1].unlink()
        j = Journal.open(state_dir, "state")
        with pytest.raises(JournalGap):
            list(j.replay())
        j.close()


class TestCommit:
    async def test_group_commit_uses_few_fsyncs(self, state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Many tasks committing at once share fsyncs, and every one of their records is durable."""
        syncs = 0
        real_sync = AppendFile.sync

        def counting_sync(self: AppendFile) -> None:
            nonlocal syncs
            syncs += 1
            real_sync(self)

        monkeypatch.setattr(AppendFile, "sync", counting_sync)
        j = Journal.open(state_dir, "state")

        async def writer(k: int) -> None:
            j.append(b"task-%d" % k)
            await j.commit()

        async with trio.open_nursery() as nursery:
            for k in range(50):
                nursery.start_soon(writer, k)
        assert syncs < 50
        j.close()
        assert sorted(b"task-%d" % k for k in range(50)) == sorted(replay_all(state_dir)[0])

    async def test_commit_returns_only_when_written(self, state_dir: Path) -> None:
        """When commit returns, the record is in the file (another process would read it)."""
        j = Journal.open(state_dir, "state")
        j.append(b"acked")
        await j.commit()
        other = Journal.open(state_dir, "state")
        assert [b"acked"] == list(other.replay())
        other.close()
        await j.aclose()

    async def test_commit_with_nothing_pending_is_a_checkpoint(self, state_dir: Path) -> None:
        """An empty commit returns at once and writes nothing."""
        j = Journal.open(state_dir, "state")
        size = j.size
        await j.commit()
        assert size == os.path.getsize(read_segment_paths(state_dir)[0])
        await j.aclose()

    async def test_write_failure_breaks_the_journal(self, state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """After a failed write nothing more is accepted; reopening recovers what was committed."""
        j = Journal.open(state_dir, "state")
        j.append(b"committed")
        await j.commit()

        def fail(self: AppendFile, data: bytes) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(AppendFile, "write", fail)
        j.append(b"lost")
        with pytest.raises(JournalBroken):
            await j.commit()
        with pytest.raises(JournalBroken):
            j.append(b"more")
        monkeypatch.undo()
        j.close()
        assert [b"committed"] == replay_all(state_dir)[0]

    def test_delete_segments_before(self, state_dir: Path) -> None:
        """Compaction deletes only segments below the given number, never the active one."""
        j = Journal.open(state_dir, "state")
        j.rotate()
        j.rotate()
        j.commit_sync()
        assert [1, 2] == j.delete_segments_before(3)
        assert [3] == j.segments()
        assert [] == j.delete_segments_before(10)
        j.close()
