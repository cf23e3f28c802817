"""The content-addressed store, name rules and type detection, without a daemon."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import trio

from ci_sidecar.protocol.errors import PathNotAllowed
from ci_sidecar.service.artifacts import ArtifactSettings, normalise_name
from ci_sidecar.service.casstore import CHUNK, COPY_CHUNK, CasStore, NotRegularFile, TooLarge
from ci_sidecar.service.mime import detect_mime, detect_type


def test_stage_file_hashes_in_one_pass_and_commits_once(tmp_path: Path) -> None:
    cas = CasStore(tmp_path / "cas")
    data = os.urandom(3 * CHUNK + 17)  # several buffers plus a tail
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    staged = cas.stage_file(src)
    assert staged.sha256 == hashlib.sha256(data).hexdigest() and staged.size == len(data)
    assert staged.head == data[:1024]
    assert cas.commit(staged) is True
    blob = cas.path(staged.sha256)
    assert blob.read_bytes() == data
    assert oct(blob.stat().st_mode & 0o777) == oct(0o444)
    again = cas.stage_bytes(data)
    assert cas.commit(again) is False  # identical content is stored once
    assert cas.all_digests() == {staged.sha256} and list((tmp_path / "cas" / "tmp").iterdir()) == []


async def test_stage_file_async_stores_and_names_exactly_the_source(tmp_path: Path) -> None:
    """An upload by path holds the source's bytes, named by their SHA-256, with the sniffing head and size;
    past the limit it fails and leaves nothing in tmp/."""
    cas = CasStore(tmp_path / "cas")
    data = os.urandom(2 * COPY_CHUNK + 5)  # several kernel copies plus a tail
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    staged = await cas.stage_file_async(src)
    assert (staged.sha256, staged.size, staged.head) == (hashlib.sha256(data).hexdigest(), len(data), data[:1024])
    assert staged.tmp_path.read_bytes() == data
    cas.discard(staged)
    with pytest.raises(TooLarge):
        await cas.stage_file_async(src, limit=len(data) - 1)
    assert (await cas.stage_file_async(src, limit=len(data))).size == len(data)  # exactly the limit is fine
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert (await cas.stage_file_async(empty)).sha256 == hashlib.sha256(b"").hexdigest()


async def test_a_cancelled_upload_by_path_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An upload by path cancelled while the file is being copied stops there and discards the partial copy."""
    cas = CasStore(tmp_path / "cas")
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(4 * COPY_CHUNK))
    copied: list[int] = []
    real_copy = os.copy_file_range

    def copy_then_cancel(*args: object) -> int:
        copied.append(real_copy(*args))  # type: ignore[arg-type]
        trio.from_thread.run_sync(scope.cancel)  # the upload is cancelled after its first chunk
        return copied[-1]

    monkeypatch.setattr(os, "copy_file_range", copy_then_cancel)
    with trio.CancelScope() as scope:
        await cas.stage_file_async(src)
    assert scope.cancelled_caught and copied == [COPY_CHUNK]
    assert list((tmp_path / "cas" / "tmp").iterdir()) == []


def test_limits_and_non_regular_sources(tmp_path: Path) -> None:
    cas = CasStore(tmp_path / "cas")
    src = tmp_path / "big"
    src.write_bytes(b"x" * 101)
    with pytest.raises(TooLarge) as e:
        cas.stage_file(src, limit=100)
    assert (e.value.limit, e.value.actual) == (100, 101)
    with pytest.raises(TooLarge):
        cas.stage_bytes(b"y" * 101, limit=100)
    link = tmp_path / "link"
    link.symlink_to(src)
    with pytest.raises(NotRegularFile):
        cas.stage_file(link)  # callers pass resolved paths: a symlink there was swapped in
    with pytest.raises(NotRegularFile):
        cas.stage_file(tmp_path)
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(NotRegularFile):
        cas.stage_file(tmp_path / "fifo")  # never blocks on a FIFO
    assert list((tmp_path / "cas" / "tmp").iterdir()) == []  # nothing half-written is left


def test_writer_offsets_make_resends_harmless(tmp_path: Path) -> None:
    cas = CasStore(tmp_path / "cas")
    w = cas.writer(limit=10)
    assert w.write_at(0, b"abcd") == 4
    assert w.write_at(0, b"abcd") == 0  # a resend
    assert w.write_at(2, b"cdef") == 2  # overlaps: only the new tail is stored
    with pytest.raises(ValueError):
        w.write_at(9, b"z")  # a gap
    with pytest.raises(TooLarge):
        w.write_at(6, b"ghijk")
    staged = w.finish()
    assert staged.tmp_path.read_bytes() == b"abcdef" and staged.sha256 == hashlib.sha256(b"abcdef").hexdigest()


def test_torn_uploads_are_removed_at_open(tmp_path: Path) -> None:
    cas = CasStore(tmp_path / "cas")
    w = cas.writer()
    w.write(b"half of something")  # the daemon dies here
    assert len(list(cas.tmp.iterdir())) == 1
    cas2 = CasStore(tmp_path / "cas")
    assert list(cas2.tmp.iterdir()) == [] and cas2.all_digests() == set()


def test_remove_frees_the_blob(tmp_path: Path) -> None:
    cas = CasStore(tmp_path / "cas")
    staged = cas.stage_bytes(b"content")
    cas.commit(staged)
    assert cas.total_bytes() == 7
    assert cas.remove(staged.sha256) == 7 and cas.remove(staged.sha256) == 0
    assert not cas.exists(staged.sha256)


@pytest.mark.parametrize("raw,reason", [
    ("../x", "outside"), ("a/../../x", "outside"), ("..", "outside"), ("/etc/passwd", "absolute"),
    ("C:\\x", "absolute"), ("..\\..\\x", "outside"), ("a\x00b", "NUL"), ("", "empty"), ("a\nb", "control"),
    ("a/..", "outside"), ("x" * 300, "too long"),
])
def test_bad_names_are_refused(raw: str, reason: str) -> None:
    with pytest.raises(PathNotAllowed) as e:
        normalise_name(raw)
    assert e.value.data["path"] == raw and reason in e.value.data["reason"]


def test_names_are_normalised() -> None:
    assert normalise_name("./a//b/./c.txt") == "a/b/c.txt"
    assert normalise_name("a/x/../b.log") == "a/b.log"
    assert normalise_name("logs\\run.log") == "logs/run.log"


@pytest.mark.parametrize("name,kind", [
    ("x_perf.json", "performance_report"), ("coverage.xml", "coverage_report"), ("run_summary.txt", "test_summary"),
    ("m_metrics.json", "metrics"), ("junit.xml", "test_report"), ("results.json", "test_report"),
    ("console.log", "test_log"), ("notes.txt", "test_log"), ("shot.PNG", "image"), ("logs.tar.gz", "archive"),
    ("net.onnx", "model"), ("fw.bin", "binary"), ("core.1234", "crash_dump"), ("app.trace", "trace"),
    ("cpu.pprof", "profiling"), ("dir/lcov.info", "coverage_report"), ("README", "generic"),
])
def test_type_detection_prefers_specific_patterns(name: str, kind: str) -> None:
    assert detect_type(name) == kind
    assert detect_type(name, "custom") == "custom"


def test_mime_types() -> None:
    assert detect_mime("a.json") == "application/json"
    assert detect_mime("a.tar.gz") == "application/gzip"
    assert detect_mime("a.log") == "text/plain"
    assert detect_mime("noext", b"plain words\n") == "text/plain"
    assert detect_mime("noext", b"\x00\x01\x02") == "application/octet-stream"
    assert detect_mime("noext", "é".encode() * 600) == "text/plain"


def test_settings_from_env_and_config() -> None:
    s = ArtifactSettings.from_config(object(), {"CI_SIDECAR_ARTIFACT_MAX_FILE_BYTES": "5",
                                                "CI_SIDECAR_ARTIFACT_STREAM_IDLE_S": "0.5",
                                                "CI_SIDECAR_ARTIFACT_MAX_RUN_BYTES": "nope"})
    assert (s.max_file_bytes, s.stream_idle_s, s.max_run_bytes) == (5, 0.5, 10 * 1024 ** 3)

    class Cfg:
        artifact_max_run_bytes = 7

    assert ArtifactSettings.from_config(Cfg(), {"CI_SIDECAR_ARTIFACT_MAX_RUN_BYTES": "9"}).max_run_bytes == 7
