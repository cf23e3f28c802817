"""Tests for ci_sidecar.atomic: atomic replacement and private directories."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ci_sidecar import atomic
from ci_sidecar.atomic import atomic_write_bytes, ensure_private_dir, remove_stale_temps

from .helpers import mode_of


class TestAtomicWrite:
    def test_writes_content_with_mode_0600(self, tmp_path: Path) -> None:
        """A new file holds exactly the data and only its owner can read it."""
        target = tmp_path / "f.bin"
        atomic_write_bytes(target, b"hello")
        assert b"hello" == target.read_bytes()
        assert 0o600 == mode_of(target)

    def test_mode_is_exact_despite_umask(self, tmp_path: Path) -> None:
        """The requested mode is applied even when the umask would narrow it."""
        old = os.umask(0o077)
        try:
            atomic_write_bytes(tmp_path / "f", b"x", mode=0o640)
        finally:
            os.umask(old)
        assert 0o640 == mode_of(tmp_path / "f")

    def test_failure_keeps_old_content_and_leaves_no_temp(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """If the write fails before the rename, readers still see the previous version."""
        target = tmp_path / "f.bin"
        atomic_write_bytes(target, b"old")

        def boom(fd: int) -> None:
            raise OSError("disk full")

        monkeypatch.setattr(atomic.os, "fsync", boom)
        with pytest.raises(OSError, match="disk full"):
            atomic_write_bytes(target, b"new content")
        monkeypatch.undo()
        assert b"old" == target.read_bytes()
        assert ["f.bin"] == sorted(p.name for p in tmp_path.iterdir())

    def test_directory_is_fsynced_after_rename(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The rename is made durable by fsyncing the directory."""
        synced: list[str] = []
        monkeypatch.setattr(atomic, "fsync_dir", lambda p: synced.append(str(p)))
        atomic_write_bytes(tmp_path / "f", b"x")
        assert [str(tmp_path)] == synced

    def test_stale_temps_are_removed(self, tmp_path: Path) -> None:
        """Temporary files of an interrupted write are cleaned up; other files are kept."""
        (tmp_path / f".state.1.snap{atomic.TMP_MARKER}abc").write_bytes(b"partial")
        (tmp_path / "state.1.snap").write_bytes(b"real")
        (tmp_path / f".other{atomic.TMP_MARKER}abc").write_bytes(b"not ours")
        (tmp_path / f".state-x.1.snap{atomic.TMP_MARKER}abc").write_bytes(b"another journal's")
        assert 1 == remove_stale_temps(tmp_path, "state")
        assert [f".other{atomic.TMP_MARKER}abc", f".state-x.1.snap{atomic.TMP_MARKER}abc", "state.1.snap"] == sorted(
            p.name for p in tmp_path.iterdir()
        )


class TestPrivateDir:
    def test_creates_0700(self, tmp_path: Path) -> None:
        """A missing state directory is created with mode 0700, parents included."""
        d = ensure_private_dir(tmp_path / "a" / "b")
        assert d.is_dir()
        assert 0o700 == mode_of(d)

    def test_tightens_an_open_directory(self, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
        """An existing directory readable by others is tightened to 0700, with a warning."""
        d = tmp_path / "open"
        d.mkdir()
        os.chmod(d, 0o755)
        ensure_private_dir(d)
        assert 0o700 == mode_of(d)
        assert "tightening" in caplog.text
