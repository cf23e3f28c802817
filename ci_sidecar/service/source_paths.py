"""Source-path policy, shared by every method that reads a client's file (``ingest_junit``, artifacts).

A path is resolved against the session's cwd, symlinks included, and must land inside one of the
configured roots, never inside the daemon's state or credentials directories. Without configured
roots: the session's cwd and the system temp dir; in system mode (the daemon reads with the service
user's rights on behalf of every CI user) only the session's cwd, and only when the connecting user
owns it. Violations answer -31005 with ``{path, reason}``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ci_sidecar.protocol.errors import PathNotAllowed, PathNotFound

__all__ = ["SourcePolicy"]


def _owner(path: Path) -> int | None:
    try:
        return path.stat().st_uid
    except OSError:
        return None


def _within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


@dataclass
class SourcePolicy:
    """Where a session may read files from."""

    cwd: str
    roots: list[str] = field(default_factory=list)
    forbidden: list[str] = field(default_factory=list)

    @classmethod
    def for_session(cls, cwd: str, configured_roots: Iterable[str], forbidden: Iterable[str | None], *,
                    system_mode: bool = False, peer_uid: int | None = None) -> SourcePolicy:
        """The policy of one session.

        Args:
            cwd: the session's working directory (the client says which).
            configured_roots: ``source_roots`` of the configuration (relative ones are under ``cwd``).
            forbidden: the daemon's private directories.
            system_mode: the daemon serves other users: the temp dir is no default root, and the
                cwd is one only when ``peer_uid`` (the connecting user; ``None``: unknown) owns it.
        """
        roots = [str(Path(cwd, os.path.expanduser(r)).resolve()) for r in configured_roots]
        if not roots:
            real_cwd = Path(cwd).resolve()
            if not system_mode:
                roots = [str(real_cwd), str(Path(tempfile.gettempdir()).resolve())]
            elif peer_uid is None or peer_uid == 0 or _owner(real_cwd) == peer_uid:
                roots = [str(real_cwd)]
        return cls(cwd=cwd, roots=roots, forbidden=[str(Path(f).resolve()) for f in forbidden if f])

    def resolve(self, path: str, *, must_exist: bool = True) -> Path:
        """The real path of ``path`` if reading it is allowed, else -31005."""
        if not path or "\x00" in path:
            raise PathNotAllowed(path, "empty path or NUL byte")
        candidate = Path(self.cwd, os.path.expanduser(path))
        try:
            real = candidate.resolve(strict=must_exist)
        except FileNotFoundError:
            raise PathNotFound(path, str(candidate)) from None
        except (OSError, RuntimeError) as exc:  # symlink loops, permission problems
            raise PathNotAllowed(path, f"cannot resolve: {exc}") from None
        for bad in self.forbidden:
            if _within(real, Path(bad)):
                raise PathNotAllowed(path, "inside the daemon's private directories")
        if not self.roots:
            raise PathNotAllowed(path, "this daemon reads files only under its configured source_roots or a "
                                       "working directory the connecting user owns; send the content instead "
                                       "(content_base64 or an artifact stream)")
        if not any(_within(real, Path(root)) for root in self.roots):
            raise PathNotAllowed(path, "outside the allowed source roots (" + ", ".join(self.roots) + ")")
        return real

    def glob(self, pattern: str) -> list[Path]:
        """Files matching a glob relative to the cwd, each passed through :meth:`resolve`."""
        base = Path(self.cwd)
        pattern_path = Path(os.path.expanduser(pattern))
        if pattern_path.is_absolute():
            anchor = Path(pattern_path.anchor)
            matches = anchor.glob(str(pattern_path.relative_to(anchor)))
        else:
            matches = base.glob(pattern)
        out = []
        for m in sorted(matches):
            if m.is_file():
                out.append(self.resolve(str(m)))
        return out
