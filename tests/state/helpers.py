"""Helpers shared by the state layer tests."""

from __future__ import annotations

import os
from pathlib import Path

def read_segment_paths(directory: Path, name: str = "state") -> list[Path]:
    """Journal segment files of ``name``, oldest first."""
    return sorted(p for p in directory.iterdir() if p.name.startswith(f"{name}.") and p.suffix == ".wal")


def mode_of(path: Path) -> int:
    """Permission bits of ``path``."""
    return os.stat(path).st_mode & 0o777
