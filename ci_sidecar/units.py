"""systemd unit files for running ci-sidecar as a service (``ci-sidecar install-units``).

Two deployments share one renderer:

- **system** (hardware test machines): ``ci-sidecar.socket`` listens on
  :data:`SYSTEM_SOCKET_PATH` (mode 0660, group = the CI users' group) and activates
  ``ci-sidecar.service``, a hardened ``Type=notify`` service with a watchdog that runs as the
  dedicated user :data:`SYSTEM_USER`.
- **user** (a developer's or agent's login): the same pair under the user manager, the socket at
  ``%t/ci-sidecar/ci-sidecar.sock`` (``$XDG_RUNTIME_DIR``), only the user may connect.

The committed templates in ``systemd/`` are :func:`render_templates` output; a test keeps them in
sync. Unit text is generated (not read from package data) so ``ExecStart=`` can point at whatever
entry point this installation has.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = [
    "DEFAULT_EXEC_START",
    "NOFILE",
    "SERVICE_NAME",
    "SOCKET_NAME",
    "SYSTEM_SOCKET_PATH",
    "SYSTEM_USER",
    "USER_SOCKET_PATH",
    "WATCHDOG_SEC",
    "default_exec_start",
    "install_units",
    "quote_exec_args",
    "render_templates",
    "render_units",
    "unit_dir",
    "write_templates",
]

SERVICE_NAME = "ci-sidecar.service"
SOCKET_NAME = "ci-sidecar.socket"
#: Where the system socket lives. Deliberately *not* inside a ``RuntimeDirectory=`` of the
#: service: systemd deletes that directory when the service stops, taking the socket unit's
#: socket with it (RPC-NOTES §5). The socket unit creates ``/run/ci-sidecar`` itself.
SYSTEM_SOCKET_PATH = "/run/ci-sidecar/ci-sidecar.sock"
#: ``%t`` is ``$XDG_RUNTIME_DIR`` under the user manager; matches the daemon's default socket
#: path (platformdirs user runtime dir + ``ci-sidecar.sock``).
USER_SOCKET_PATH = "%t/ci-sidecar/ci-sidecar.sock"
#: The dedicated system user the service runs as (see the comment in the rendered unit).
SYSTEM_USER = "ci-sidecar"
#: The daemon pings every ``WATCHDOG_USEC / 2``; a loop wedged longer than this gets restarted.
WATCHDOG_SEC = 30
#: ``LimitNOFILE=`` of the services (soft and hard): far above the daemon's connection cap
NOFILE = 65536
#: ``ExecStart=`` entry of the committed templates (``pip install`` into /usr/local).
DEFAULT_EXEC_START = "/usr/local/bin/ci-sidecar"

# Characters that make systemd split or re-interpret a word in ExecStart=.
_NEEDS_QUOTES = set(" \t\n\"'\\;")


def quote_exec_args(argv: Sequence[str]) -> str:
    """Join ``argv`` into an ``ExecStart=`` command line that systemd parses back into ``argv``.

    ``%`` (specifiers) and ``$`` (environment expansion) are escaped, so a path containing them
    reaches the process literally.
    """
    words = []
    for arg in argv:
        word = arg.replace("%", "%%").replace("$", "$$")
        if not word or _NEEDS_QUOTES & set(word):
            word = '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'
        words.append(word)
    return " ".join(words)


def entry_point(prefix: str | os.PathLike[str] | None = None) -> str:
    """The program :func:`default_exec_start` starts (the first word of ``ExecStart=``)."""
    if prefix is not None:
        return str(Path(prefix).absolute() / "bin" / "ci-sidecar")
    found = shutil.which("ci-sidecar")
    return str(Path(found).absolute()) if found else sys.executable


def default_exec_start(prefix: str | os.PathLike[str] | None = None) -> str:
    """The command that starts this installation's entry point, for ``ExecStart=``.

    ``prefix`` (an install prefix such as ``/usr/local`` or a venv) wins and gives
    ``<prefix>/bin/ci-sidecar``; otherwise the ``ci-sidecar`` found on ``$PATH``; otherwise
    ``<this interpreter> -m ci_sidecar`` (always exists, e.g. in a source checkout).
    """
    program = entry_point(prefix)
    return quote_exec_args([program] if program != sys.executable else [program, "-m", "ci_sidecar"])


def unit_dir(root: Path, *, user_mode: bool, env: Mapping[str, str] = os.environ) -> Path:
    """The directory units go to: ``<root>/etc/systemd/system`` for the system manager.

    For the user manager ``root`` is the home directory: ``$XDG_CONFIG_HOME/systemd/user`` when
    that variable holds an absolute path (as systemd itself decides), else
    ``<root>/.config/systemd/user``.
    """
    if not user_mode:
        return Path(root) / "etc" / "systemd" / "system"
    xdg = env.get("XDG_CONFIG_HOME", "")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "systemd" / "user"
    return Path(root) / ".config" / "systemd" / "user"


def render_units(*, exec_start: str, user_mode: bool, system_group: str = "ci") -> dict[str, str]:
    """Render ``{file name: unit text}`` for ``ci-sidecar.service`` and ``ci-sidecar.socket``.

    Args:
        exec_start: the entry point command, already in ``ExecStart=`` syntax (see
            :func:`quote_exec_args`); ``serve --socket … [--system]`` is appended.
        user_mode: units for the per-user manager instead of the system manager.
        system_group: the group of the CI users; it owns the socket (mode 0660) and is the
            service's primary group, so CI jobs can read the reports it writes. Unused in user mode.
    """
    if user_mode:
        return {SERVICE_NAME: _user_service(exec_start), SOCKET_NAME: _user_socket()}
    return {
        SERVICE_NAME: _system_service(exec_start, system_group),
        SOCKET_NAME: _system_socket(system_group),
    }


def render_templates() -> dict[str, str]:
    """The committed ``systemd/`` templates: system units with :data:`DEFAULT_EXEC_START`."""
    return render_units(exec_start=DEFAULT_EXEC_START, user_mode=False)


def write_templates(directory: str | os.PathLike[str]) -> list[Path]:
    """Regenerate the committed templates (``systemd/`` in the repository) from :func:`render_templates`."""
    written = []
    for name, text in render_templates().items():
        path = Path(directory) / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def install_units(
    root: Path,
    *,
    user_mode: bool,
    prefix: str | None,
    exec_start: str | None = None,
    system_group: str = "ci",
    env: Mapping[str, str] = os.environ,
) -> list[Path]:
    """Write both units under ``root`` (see :func:`unit_dir`) and return their paths.

    ``exec_start`` overrides the entry point, else :func:`default_exec_start` with ``prefix``.
    Files are replaced atomically and made 0644. The caller runs ``systemctl daemon-reload``.
    """
    command = exec_start if exec_start is not None else default_exec_start(prefix)
    target = unit_dir(Path(root), user_mode=user_mode, env=env)
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_units(exec_start=command, user_mode=user_mode, system_group=system_group).items():
        path = target / name
        tmp = path.with_name(f".{name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.chmod(0o644)
        tmp.replace(path)
        written.append(path)
    return written


def _system_service(exec_start: str, group: str) -> str:
    return f"""\
# ci-sidecar: CI work (test runs, results, PR comments, artifacts) for the test jobs on this machine.
# Generated by `ci-sidecar install-units`; re-run it rather than editing, or override with
# `systemctl edit ci-sidecar.service`.
#
# Before the first start (see docs/systemd.md):
#   groupadd --system {group}
#   useradd --system --gid {group} --home-dir /var/lib/ci-sidecar --shell /usr/sbin/nologin {SYSTEM_USER}
#   usermod -aG {group} <each CI user>
[Unit]
Description=ci-sidecar CI daemon (JSON-RPC over a Unix socket)
Requires={SOCKET_NAME}
After={SOCKET_NAME} network-online.target
Wants=network-online.target

[Service]
Type=notify
# Only the daemon itself may send READY=1 / WATCHDOG=1 / STOPPING=1.
NotifyAccess=main
# The socket comes from {SOCKET_NAME} (fd 3); --socket names the same path for logs and clients.
ExecStart={exec_start} serve --socket {SYSTEM_SOCKET_PATH} --system
# Pings come from the event loop every WATCHDOG_USEC/2: a wedged loop is killed and restarted.
WatchdogSec={WATCHDOG_SEC}s
Restart=on-failure
RestartSec=2s
TimeoutStartSec=20s
# shutdown flushes pending provider writes under a deadline shorter than this.
TimeoutStopSec=30s

# A dedicated user whose primary group is the CI users' group: reports written to the output root
# are group-readable by CI jobs. (DynamicUser= would put every state directory under
# /var/lib/private, which the CI group cannot enter.)
User={SYSTEM_USER}
Group={group}
UMask=0027
# $STATE_DIRECTORY=/var/lib/ci-sidecar (journal, snapshots, output root), $CACHE_DIRECTORY,
# $LOGS_DIRECTORY, $CONFIGURATION_DIRECTORY=/etc/ci-sidecar (ci-sidecar.toml, owned by root).
StateDirectory=ci-sidecar
StateDirectoryMode=0750
CacheDirectory=ci-sidecar
CacheDirectoryMode=0750
LogsDirectory=ci-sidecar
LogsDirectoryMode=0750
ConfigurationDirectory=ci-sidecar
ConfigurationDirectoryMode=0755
# No RuntimeDirectory=ci-sidecar here: stopping the service would delete /run/ci-sidecar and the
# socket of {SOCKET_NAME} with it.

# Credentials: never on the command line. Either let systemd hand files to the daemon, read from
# $CREDENTIALS_DIRECTORY/<name> (only this service can read them; the source may be mode 0600 root):
#   LoadCredential=github-token:/etc/ci-sidecar/credentials/github-token
#   LoadCredential=gitlab-token:/etc/ci-sidecar/credentials/gitlab-token
# (add such lines with `systemctl edit ci-sidecar.service`), or put NAME=value lines in
# /etc/ci-sidecar/env (mode 0600, root); the leading "-" makes the file optional.
EnvironmentFile=-/etc/ci-sidecar/env

# Hardening (systemd-analyze security ci-sidecar.service). The network stays open: providers'
# APIs are reached over AF_INET/AF_INET6. Jobs' files under /home are readable, never writable.
NoNewPrivileges=yes
CapabilityBoundingSet=
AmbientCapabilities=
SupplementaryGroups=
ProtectSystem=strict
ProtectHome=read-only
PrivateTmp=yes
PrivateDevices=yes
PrivateUsers=yes
PrivateIPC=yes
PrivateMounts=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
ProcSubset=pid
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
RemoveIPC=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
KeyringMode=private
DevicePolicy=closed
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
SystemCallErrorNumber=EPERM
TasksMax=256
MemoryMax=1G
# Descriptors: one per connection plus a bounded working set (retained runs hold none). The daemon
# also raises its soft limit to the hard one at start; setrlimit is filtered above, so set both here.
LimitNOFILE={NOFILE}

[Install]
WantedBy=multi-user.target
Also={SOCKET_NAME}
"""


def _system_socket(group: str) -> str:
    return f"""\
# The listening socket of ci-sidecar. It stays while the service restarts or stops, so jobs
# connecting meanwhile queue instead of failing; the first connection starts the service.
# Who may connect is decided here: members of the "{group}" group (mode 0660).
[Unit]
Description=ci-sidecar socket for CI jobs

[Socket]
ListenStream={SYSTEM_SOCKET_PATH}
SocketUser=root
SocketGroup={group}
SocketMode=0660
DirectoryMode=0755
Accept=no
RemoveOnStop=yes

[Install]
WantedBy=sockets.target
"""


def _user_service(exec_start: str) -> str:
    return f"""\
# ci-sidecar for this user (systemctl --user). Generated by `ci-sidecar install-units --user`.
# State, cache and logs go to the platformdirs user directories (~/.local/state/ci-sidecar, ...).
[Unit]
Description=ci-sidecar CI daemon (per-user)
Requires={SOCKET_NAME}
After={SOCKET_NAME}

[Service]
Type=notify
NotifyAccess=main
ExecStart={exec_start} serve --socket {USER_SOCKET_PATH}
WatchdogSec={WATCHDOG_SEC}s
Restart=on-failure
RestartSec=2s
TimeoutStartSec=20s
TimeoutStopSec=30s
UMask=0077
# Credentials: NAME=value lines in ~/.config/ci-sidecar/env (mode 0600); never on the command line.
EnvironmentFile=-%E/ci-sidecar/env
LimitNOFILE={NOFILE}
# Hardening a user manager can apply (seccomp and prctl need no privileges). The namespace-based
# options of the system unit (ProtectSystem=, ProtectHome=, PrivateTmp=, PrivateDevices=,
# ProtectKernel*=, ...) are left out: a user manager can only set them up through an unprivileged
# user namespace, and where those are disabled the service would fail to start. docs/systemd.md.
NoNewPrivileges=yes
LockPersonality=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
RestrictNamespaces=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
MemoryDenyWriteExecute=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
SystemCallErrorNumber=EPERM

[Install]
WantedBy=default.target
Also={SOCKET_NAME}
"""


def _user_socket() -> str:
    return f"""\
# The listening socket of the per-user ci-sidecar; only this user may connect (mode 0600).
[Unit]
Description=ci-sidecar socket (per-user)

[Socket]
ListenStream={USER_SOCKET_PATH}
SocketMode=0600
DirectoryMode=0700
Accept=no
RemoveOnStop=yes

[Install]
WantedBy=sockets.target
"""
