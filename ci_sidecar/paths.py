"""Where the daemon keeps its socket, state, cache and output, by a fixed precedence:
command-line flag > ``CI_SIDECAR_*`` env var > systemd's ``$STATE_DIRECTORY``/``$RUNTIME_DIRECTORY`` >
platformdirs (site dirs in system mode).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping

import platformdirs

__all__ = ["APP", "default_socket_path", "state_dir", "cache_dir", "SYSTEM_SOCKET_PATH"]

APP = "ci-sidecar"
SYSTEM_SOCKET_PATH = "/run/ci-sidecar/ci-sidecar.sock"


def _dirs() -> platformdirs.PlatformDirs:
    return platformdirs.PlatformDirs(APP, appauthor=False)


def _first_dir(value: str | None) -> str | None:
    # systemd passes colon-separated lists when several directories are configured
    return value.split(":")[0] if value else None


def default_socket_path(env: Mapping[str, str] = os.environ, *, system: bool = False) -> str:
    """``$CI_SIDECAR_SOCKET``, else the runtime dir (``/run/ci-sidecar`` in system mode)."""
    if env.get("CI_SIDECAR_SOCKET"):
        return env["CI_SIDECAR_SOCKET"]
    runtime = _first_dir(env.get("RUNTIME_DIRECTORY"))
    if runtime:
        return os.path.join(runtime, f"{APP}.sock")
    if system:
        return SYSTEM_SOCKET_PATH
    with warnings.catch_warnings():
        # platformdirs warns and falls back to /tmp/runtime-<uid> when XDG_RUNTIME_DIR is unusable
        warnings.simplefilter("ignore")
        return os.path.join(_dirs().user_runtime_dir, f"{APP}.sock")


def state_dir(flag: str | None = None, env: Mapping[str, str] = os.environ, *, system: bool = False) -> str:
    """Durable state: flag > ``$CI_SIDECAR_STATE_DIR`` > ``$STATE_DIRECTORY`` > platformdirs."""
    return (
        flag
        or env.get("CI_SIDECAR_STATE_DIR")
        or _first_dir(env.get("STATE_DIRECTORY"))
        or (_dirs().site_state_dir if system else _dirs().user_state_dir)
    )


def cache_dir(env: Mapping[str, str] = os.environ, *, system: bool = False) -> str:
    """Cache: ``$CI_SIDECAR_CACHE_DIR`` > ``$CACHE_DIRECTORY`` > platformdirs."""
    return (
        env.get("CI_SIDECAR_CACHE_DIR")
        or _first_dir(env.get("CACHE_DIRECTORY"))
        or (_dirs().site_cache_dir if system else _dirs().user_cache_dir)
    )
