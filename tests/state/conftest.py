"""Fixtures for the state layer tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    """A state directory path that does not exist yet (the code under test creates it)."""
    return tmp_path / "state"
