"""Instances under one state root: which directory a daemon keeps its state in, and orphans to adopt.

Layout of a state root::

    <root>/private/lock ...          the main instance (what one daemon per root always used)
    <root>/instances/<name>/private  one instance per further daemon: own lock, journal, runs
    <root>/instances/.new-<name>     an instance being created (renamed once its lock is held)

Every instance is owned by whoever holds the ``flock`` on its ``private/lock``. The kernel drops the lock
when the holder dies (``kill -9``, OOM, power cut), so a free lock on an instance directory means an
orphan: any daemon may take it over (adopt it). Taking the lock is the whole protocol, so two daemons
racing for one orphan never both get it; the winner checks the lock file is still the directory's own
(the previous holder may have removed the instance meanwhile) before it trusts its lock.

``owner.json`` beside the lock says who holds it (pid, mode, when, and who adopted it), for
``sidecar/status`` and ``ci-sidecar doctor``; the lock, not this file, decides.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ci_sidecar.atomic import ensure_private_dir
from ci_sidecar.protocol.errors import StateError

__all__ = ["Instance", "InstanceInfo", "InstanceBusy", "claim_exact", "claim_instance", "adopt_orphans",
           "survey", "INSTANCES_DIR"]

log = logging.getLogger("ci_sidecar.state")

INSTANCES_DIR = "instances"
_NEW_PREFIX = ".new-"
_STALE_NEW_S = 600.0  # a half-created instance this old lost its creator


class InstanceBusy(StateError):
    """The directory's lock is held by another process."""


@dataclass
class Instance:
    """A state directory whose lock this process holds (``fd``) until :meth:`release`."""

    root: Path  # the state root it belongs to
    path: Path  # the instance's state directory (``root`` itself for the main instance)
    fd: int
    main: bool
    #: the owner record as found when adopted (who left it behind)
    previous: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return "main" if self.main else self.path.name

    def write_owner(self, mode: str, *, adopted_from: dict[str, Any] | None = None) -> None:
        """Say who holds the lock now (best effort: the lock is what counts)."""
        info: dict[str, Any] = {"pid": os.getpid(), "mode": mode, "since": time.time()}
        if adopted_from is not None:
            info["adopted_from"] = {k: adopted_from.get(k) for k in ("pid", "mode", "since")}
        path = self.path / "private" / "owner.json"
        try:  # replaced whole (readers never see half of it), but not fsynced: it only informs
            tmp = path.with_name(f".owner.{os.getpid()}.tmp")
            tmp.write_bytes(json.dumps(info).encode())
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)
        except OSError as exc:
            log.debug("could not write %s/private/owner.json: %s", self.path, exc)

    def remove(self) -> None:
        """Delete the instance (still holding its lock, so nobody adopts it half-deleted), then unlock."""
        if self.main:
            raise ValueError("the main instance is never removed")
        shutil.rmtree(self.path, ignore_errors=True)
        self.release()

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _lock_nb(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise


def _lock_path(instance_dir: Path) -> Path:
    return instance_dir / "private" / "lock"


def claim_exact(directory: str | os.PathLike[str]) -> Instance:
    """The one directory given (``--state-dir``): its lock, or :class:`InstanceBusy`."""
    path = Path(directory)
    private = ensure_private_dir(path / "private")
    fd = os.open(private / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    if not _lock_nb(fd):
        os.close(fd)
        raise InstanceBusy(str(private))
    return Instance(root=path, path=path, fd=fd, main=True)


def claim_instance(root: str | os.PathLike[str], mode: str) -> Instance:
    """The main instance when its lock is free, else a new instance of this process under the root."""
    try:
        return claim_exact(root)
    except InstanceBusy:
        pass
    base = Path(root) / INSTANCES_DIR
    base.mkdir(mode=0o700, parents=True, exist_ok=True)
    name = f"{mode}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    # created under a name adopters skip, locked, then renamed: nobody can lock it before its creator
    tmp = base / f"{_NEW_PREFIX}{name}"
    private = ensure_private_dir(tmp / "private")
    fd = os.open(private / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    if not _lock_nb(fd):  # cannot happen (a fresh name); refuse rather than share
        os.close(fd)
        raise InstanceBusy(str(private))
    final = base / name
    os.rename(tmp, final)
    return Instance(root=Path(root), path=final, fd=fd, main=False)


def _try_adopt(path: Path) -> Instance | None:
    lock = _lock_path(path)
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CLOEXEC)  # never O_CREAT: a removed instance stays removed
    except OSError:
        return None
    try:
        if not _lock_nb(fd):
            os.close(fd)
            return None
        # the previous holder may have removed the instance between our open and our lock
        if os.fstat(fd).st_ino != os.stat(lock).st_ino:
            os.close(fd)
            return None
    except OSError:
        os.close(fd)
        return None
    return Instance(root=path.parent.parent, path=path, fd=fd, main=False, previous=_owner(path))


def adopt_orphans(root: str | os.PathLike[str], *, skip: set[Path] | None = None) -> list[Instance]:
    """Lock every instance under the root whose lock is free (their holders died). Each orphan goes to
    exactly one of the daemons racing for it. Half-created instances whose creator died are removed."""
    base = Path(root) / INSTANCES_DIR
    try:
        entries = sorted(base.iterdir())
    except OSError:
        return []
    adopted = []
    for path in entries:
        if skip and path in skip:
            continue
        if path.name.startswith(_NEW_PREFIX):
            _remove_stale_new(path)
            continue
        inst = _try_adopt(path)
        if inst is not None:
            adopted.append(inst)
    return adopted


def _remove_stale_new(path: Path) -> None:
    try:
        if time.time() - path.stat().st_mtime < _STALE_NEW_S:
            return
    except OSError:
        return
    inst = _try_adopt(path)
    if inst is not None:
        inst.remove()


def _owner(path: Path) -> dict[str, Any]:
    try:
        data = json.loads((path / "private" / "owner.json").read_bytes())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


@dataclass
class InstanceInfo:
    """One instance as ``sidecar/status`` and ``ci-sidecar doctor`` show it."""

    name: str
    path: str
    state: str  # live | orphaned | adopted
    pid: int | None = None
    mode: str | None = None
    adopted_by: int | None = None
    bytes: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def _disk_usage(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total


def _flock_holders() -> dict[int, int] | None:
    """inode → pid of every ``flock`` lock in the system, from ``/proc/locks`` (None where there is none).
    Reading it never takes a lock, so a survey cannot make a starting daemon miss an orphan."""
    try:
        text = Path("/proc/locks").read_text()
    except OSError:
        return None
    out: dict[int, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if "->" in parts or len(parts) < 6 or parts[1] != "FLOCK":
            continue  # "->" marks a waiter, not a holder
        try:
            out[int(parts[5].rsplit(":", 1)[1])] = int(parts[4])
        except (ValueError, IndexError):
            continue
    return out


def _held(path: Path, holders: dict[int, int] | None) -> bool | None:
    """True when the instance's lock is held by someone, None when it has no lock file."""
    lock = _lock_path(path)
    try:
        ino = os.stat(lock).st_ino
    except OSError:
        return None
    if holders is not None:
        return ino in holders
    try:  # no /proc/locks: probe (takes the lock for an instant)
        fd = os.open(lock, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return not _lock_nb(fd)
    finally:
        os.close(fd)


def survey(root: str | os.PathLike[str], *, known: dict[Path, InstanceInfo] | None = None) -> list[InstanceInfo]:
    """Every instance under the root: live (its daemon holds it), adopted (another daemon delivers what it
    left) or orphaned (nobody holds it; the next daemon adopts it). ``known`` describes instances this
    process holds (probing them would say nothing new)."""
    root = Path(root)
    known = known or {}
    candidates = []
    if (root / "private" / "lock").exists():
        candidates.append((root, "main"))
    try:
        candidates += [(p, p.name) for p in sorted((root / INSTANCES_DIR).iterdir())
                       if not p.name.startswith(_NEW_PREFIX)]
    except OSError:
        pass
    holders = _flock_holders()
    out = []
    for path, name in candidates:
        if path in known:
            info = known[path]
        else:
            held = _held(path, holders)
            if held is None:
                continue
            owner = _owner(path)
            adopted = owner.get("adopted_from") if held else None
            info = InstanceInfo(
                name=name, path=str(path), state=("adopted" if adopted else "live") if held else "orphaned",
                pid=(adopted or owner).get("pid") if owner else None, mode=(adopted or owner).get("mode"),
                adopted_by=owner.get("pid") if adopted else None)
        info.bytes = _disk_usage(path / "private") if name == "main" else _disk_usage(path)
        out.append(info)
    return out
