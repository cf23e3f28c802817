"""Can the service user run the ``ExecStart=`` that ``install-units`` is about to write?

A venv under ``/root`` or a 0700 home is out of reach of the unprivileged service user, and one under
``/tmp`` is hidden by ``PrivateTmp=yes``; systemd then reports only a failed start. This finds out
before the units are written: every directory on the way must be searchable by the user, the entry
point readable and executable, and the interpreter its ``#!`` line names executable.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from pathlib import Path

__all__ = ["ServiceUser", "unreachable_reason"]

_PRIVATE_TMP = ("/tmp", "/var/tmp")


class ServiceUser:
    """The uid and groups permissions are checked for (root would pass every check)."""

    def __init__(self, name: str, fallback_group: str | None = None) -> None:
        self.name = name
        try:
            pw = pwd.getpwnam(name)
            self.uid: int | None = pw.pw_uid
            self.gids = {pw.pw_gid} | {g.gr_gid for g in grp.getgrall() if name in g.gr_mem}
        except KeyError:  # not created yet: judge as "any other user" (plus the socket's group if it exists)
            self.uid = None
            self.gids = set()
            if fallback_group:
                try:
                    self.gids.add(grp.getgrnam(fallback_group).gr_gid)
                except KeyError:
                    pass

    def may(self, st: os.stat_result, want: int) -> bool:
        """``want`` is a combination of the owner bits (stat.S_IRUSR, stat.S_IXUSR)."""
        if self.uid == 0:
            return True
        if self.uid is not None and st.st_uid == self.uid:
            shift = 0
        elif st.st_gid in self.gids:
            shift = 3
        else:
            shift = 6
        return (st.st_mode & (want >> shift)) == (want >> shift)


def _shebang(path: Path) -> str | None:
    try:
        with open(path, "rb") as fh:
            first = fh.readline(4096)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    words = first[2:].decode(errors="replace").split()
    return words[0] if words else None


def _walk(path: Path, user: ServiceUser, want: int) -> str | None:
    """Why ``user`` cannot use ``path`` (each directory searchable, the file itself ``want``), or None."""
    for candidate in (path, Path(os.path.realpath(path))):
        for parent in reversed(candidate.parents):
            try:
                st = os.stat(parent)
            except OSError as exc:
                return f"{parent}: {exc.strerror}"
            if not user.may(st, stat.S_IXUSR):
                return f"{parent} (mode {stat.S_IMODE(st.st_mode):04o}, owner uid {st.st_uid}) is not searchable by {user.name}"
        try:
            st = os.stat(candidate)
        except OSError as exc:
            return f"{candidate}: {exc.strerror}"
        if not user.may(st, want):
            return f"{candidate} (mode {stat.S_IMODE(st.st_mode):04o}) is not usable by {user.name}"
    return None


def unreachable_reason(program: str, user: ServiceUser, *, private_tmp: bool) -> str | None:
    """Why the service cannot start ``program`` (the first word of ``ExecStart=``), or None."""
    path = Path(program)
    checks = [(path, stat.S_IRUSR | stat.S_IXUSR)]
    interpreter = _shebang(path)
    if interpreter:
        checks.append((Path(interpreter), stat.S_IXUSR))
    for target, want in checks:
        real = os.path.realpath(target)
        for where in (str(target), real):
            hidden = [t for t in _PRIVATE_TMP if private_tmp and (where + "/").startswith(t + "/")]
            if hidden:
                return f"{where} is under {hidden[0]}, which the service's PrivateTmp=yes hides"
        why = _walk(target, user, want)
        if why:
            return why
    return None
