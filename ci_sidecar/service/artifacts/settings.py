"""Limits and timings of the artifact service, and how an artifact name is made safe."""

from __future__ import annotations

import logging
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ci_sidecar.protocol import errors as E

__all__ = ["ArtifactSettings", "GiB", "normalise_name"]

log = logging.getLogger("ci_sidecar.artifacts")

GiB = 1024 ** 3
_MAX_NAME_BYTES = 1024
_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True)
class ArtifactSettings:
    """Limits and timings of the artifact service (daemon-wide)."""

    max_file_bytes: int = 1 * GiB
    max_run_bytes: int = 10 * GiB
    #: a stream nobody wrote to for this long is discarded with its partial upload
    stream_idle_s: float = 600.0
    max_streams_per_session: int = 64
    #: how many files one ``upload_artifacts`` copies at once
    concurrency: int = 4
    #: retention of the store: artifacts older than this go (None: no age limit)
    retention_max_age_s: float | None = 30 * 86400.0
    #: retention of the store: past this many bytes of distinct content the oldest artifacts go (None: no limit)
    retention_max_bytes: int | None = None
    #: how long a URL found through a provider's API is trusted before it is looked up again
    lookup_ttl_s: float = 300.0
    #: how long "not found" is remembered (in memory), so a polling client does not hammer the provider
    lookup_miss_ttl_s: float = 2.0

    @property
    def retention_interval_s(self) -> float:
        """How often the age limit is applied: a quarter of it, between 0.2 s and a minute."""
        age = self.retention_max_age_s
        return 60.0 if age is None else max(0.2, min(60.0, age / 4))

    @classmethod
    def from_config(cls, config: Any, env: Mapping[str, str]) -> ArtifactSettings:
        """From the daemon config's ``artifact_*`` keys when its schema has them, else the daemon's
        ``CI_SIDECAR_ARTIFACT_*`` variables, else the defaults."""
        values: dict[str, Any] = {}
        days = getattr(config, "artifact_retention_days", None)
        if days is not None:
            values["retention_max_age_s"] = float(days) * 86400
        values["retention_max_bytes"] = getattr(config, "artifact_retention_max_bytes", None)
        for name, kind in (("max_file_bytes", int), ("max_run_bytes", int), ("stream_idle_s", float),
                           ("max_streams_per_session", int), ("concurrency", int)):
            value = getattr(config, f"artifact_{name}", None)
            if value is None:
                raw = env.get(f"CI_SIDECAR_ARTIFACT_{name.upper()}")
                if raw:
                    try:
                        value = kind(raw)
                    except ValueError:
                        log.warning("ignoring CI_SIDECAR_ARTIFACT_%s=%r: not a number", name.upper(), raw)
            if value is not None and value > 0:
                values[name] = value
        return cls(**values)


def normalise_name(raw: str) -> str:
    """An artifact name as a normalised relative path confined to the run's artifacts, else -31005."""
    if not raw:
        raise E.PathNotAllowed(raw, "empty name")
    if "\x00" in raw:
        raise E.PathNotAllowed(raw, "NUL byte in name")
    if any(ord(c) < 32 or ord(c) == 127 for c in raw):
        raise E.PathNotAllowed(raw, "control character in name")
    name = raw.replace("\\", "/")  # a Windows client's separators mean the same thing
    if name.startswith("/") or _DRIVE.match(name):
        raise E.PathNotAllowed(raw, "absolute path; artifact names are relative")
    norm = posixpath.normpath(name)
    if norm in (".", "..") or norm.startswith("../"):
        raise E.PathNotAllowed(raw, "resolves outside the run's artifacts")
    if len(norm.encode()) > _MAX_NAME_BYTES or any(len(part.encode()) > 255 for part in norm.split("/")):
        raise E.PathNotAllowed(raw, "name too long")
    return norm

