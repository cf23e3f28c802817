"""The instance rules on disk: who gets the main instance, a fresh instance is never adoptable before its
creator holds it, a free lock means an orphan, a removed instance is never adopted, half-made ones are swept."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from ci_sidecar.state.instances import InstanceBusy, adopt_orphans, claim_exact, claim_instance, survey


def test_the_first_daemon_takes_the_main_instance_and_later_ones_their_own(tmp_path: Path) -> None:
    """Main first; then one instance per daemon under <root>/instances, each locked by its daemon."""
    first = claim_instance(tmp_path, "socket")
    second = claim_instance(tmp_path, "stdio")
    third = claim_instance(tmp_path, "exec")
    assert first.main and first.path == tmp_path
    assert not second.main and second.path.parent == tmp_path / "instances" and second.name.startswith("stdio-")
    assert third.path != second.path and third.name.startswith("exec-")
    assert adopt_orphans(tmp_path) == []  # all held
    with pytest.raises(InstanceBusy):
        claim_exact(tmp_path)
    for inst in (first, second, third):
        inst.release()


def test_a_released_instance_is_an_orphan_adopted_once(tmp_path: Path) -> None:
    """A free lock is an orphan; the first adopter holds it, a second finds nothing."""
    main = claim_instance(tmp_path, "socket")
    gone = claim_instance(tmp_path, "stdio")
    gone.write_owner("stdio")
    gone.release()  # what the kernel does when the daemon is killed
    [adopted] = adopt_orphans(tmp_path)
    assert adopted.path == gone.path and adopted.previous["pid"] == os.getpid()
    assert adopt_orphans(tmp_path) == []
    states = {i.name: i.state for i in survey(tmp_path)}
    assert states == {"main": "live", gone.name: "live"}  # held by its adopter (who says so in owner.json)
    adopted.write_owner("socket", adopted_from=adopted.previous)
    assert {i.name: i.state for i in survey(tmp_path)}[gone.name] == "adopted"
    adopted.remove()
    assert not gone.path.exists() and adopt_orphans(tmp_path) == []
    main.release()
    assert {i.name: i.state for i in survey(tmp_path)} == {"main": "orphaned"}


def test_an_instance_removed_under_a_racing_adopter_is_not_adopted(tmp_path: Path) -> None:
    """An adopter that opened the lock file just before the holder removed the instance gets nothing."""
    inst = claim_instance(tmp_path, "socket")
    other = claim_instance(tmp_path, "stdio")
    fd = os.open(other.path / "private" / "lock", os.O_RDWR)  # the racing adopter's open
    other.remove()
    try:
        assert adopt_orphans(tmp_path) == []
        assert not other.path.exists()
    finally:
        os.close(fd)
        inst.release()


def test_half_made_instances_of_a_dead_creator_are_swept(tmp_path: Path) -> None:
    """A .new- directory nobody holds and older than ten minutes is removed; a young one is left alone."""
    main = claim_instance(tmp_path, "socket")
    old = tmp_path / "instances" / ".new-stdio-1-aaaa"
    young = tmp_path / "instances" / ".new-stdio-2-bbbb"
    for d in (old, young):
        (d / "private").mkdir(parents=True)
        (d / "private" / "lock").write_text("")
    past = time.time() - 3600
    os.utime(old, (past, past))
    assert adopt_orphans(tmp_path) == []
    assert not old.exists() and young.exists()
    main.release()
