"""TeamCity: a few env vars plus the build's Java properties files.

Docs: https://www.jetbrains.com/help/teamcity/predefined-build-parameters.html
Most of what matters is not in the environment: ``TEAMCITY_BUILD_PROPERTIES_FILE`` holds system properties
(``teamcity.build.id``) and names, under ``teamcity.configuration.properties.file``, the configuration
parameters file (``teamcity.build.branch``, ``vcsroot.url``, ``teamcity.serverUrl`` and, with the Pull
Requests build feature, ``teamcity.pullRequest.*``). Both are Java properties files (``\\:`` escapes, etc.).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from ci_sidecar.cienv._fields import Fields, parse_int
from ci_sidecar.cienv._git import Git

__all__ = ["NAME", "is_present", "detect", "parse_properties", "read_properties"]

log = logging.getLogger(__name__)

NAME = "teamcity"
MAX_PROPERTIES_BYTES = 4 * 1024 * 1024
_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


def is_present(env: Mapping[str, str]) -> bool:
    """``TEAMCITY_VERSION`` is exported to every build step."""
    return bool(env.get("TEAMCITY_VERSION", "").strip())


def _logical_lines(text: str) -> list[str]:
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.lstrip(" \t\f")  # also drops the indentation of continuation lines
        if not pending and (not line or line[0] in "#!"):
            continue
        # An odd number of trailing backslashes continues the line.
        trailing = len(line) - len(line.rstrip("\\"))
        if trailing % 2 == 1:
            pending += line[:-1]
            continue
        lines.append(pending + line)
        pending = ""
    if pending:
        lines.append(pending)
    return lines


def _unescape(s: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(s):
        ch = s[i]
        if ch != "\\" or i + 1 >= len(s):
            out.append(ch)
            i += 1
            continue
        nxt = s[i + 1]
        if nxt == "u" and i + 6 <= len(s):
            try:
                out.append(chr(int(s[i + 2 : i + 6], 16)))
                i += 6
                continue
            except ValueError:
                pass
        out.append(_ESCAPES.get(nxt, nxt))
        i += 2
    return "".join(out)


def parse_properties(text: str) -> dict[str, str]:
    """Parse a Java ``.properties`` document (``key=value``, ``key: value``, ``key value``, escapes, continuations)."""
    props: dict[str, str] = {}
    for line in _logical_lines(text):
        i, n = 0, len(line)
        while i < n:
            ch = line[i]
            if ch == "\\":
                i += 2
                continue
            if ch in "=: \t\f":
                break
            i += 1
        key, j = line[:i], i
        while j < n and line[j] in " \t\f":
            j += 1
        if j < n and line[j] in "=:":  # one separator, surrounded by optional whitespace
            j += 1
            while j < n and line[j] in " \t\f":
                j += 1
        props[_unescape(key)] = _unescape(line[j:])
    return props


def read_properties(path: str) -> dict[str, str]:
    """Read a properties file; an unreadable or oversized file gives ``{}`` (logged)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_PROPERTIES_BYTES + 1)
    except OSError as exc:
        log.warning("cannot read TeamCity properties file %s: %s", path, exc)
        return {}
    if len(data) > MAX_PROPERTIES_BYTES:
        log.warning("TeamCity properties file %s is too large, ignored", path)
        return {}
    # Java writes properties files in ISO-8859-1 with \\u escapes for anything else.
    return parse_properties(data.decode("latin-1"))


def detect(f: Fields, git: Git) -> None:
    """Fill *f* from a TeamCity environment and its properties files."""
    build_file = f.var("TEAMCITY_BUILD_PROPERTIES_FILE")
    build_props = read_properties(build_file) if build_file else {}
    config_file = build_props.get("teamcity.configuration.properties.file")
    config_props = read_properties(config_file) if config_file else {}

    def prop(field: str, key: str, props: dict[str, str], convert: Callable[[str], Any] | None = None) -> None:
        value = props.get(key, "").strip()
        if value:
            value = convert(value) if convert else value
            src = "TEAMCITY_BUILD_PROPERTIES_FILE" if props is build_props else "teamcity.configuration.properties.file"
            f.put(field, value, "file", f"{src}:{key}")

    f.from_env("commit_sha", "BUILD_VCS_NUMBER")
    prop("commit_sha", "build.vcs.number", build_props)
    prop("pr_number", "teamcity.pullRequest.number", config_props, parse_int)
    if f.has("pr_number"):
        prop("branch", "teamcity.pullRequest.source.branch", config_props)
        prop("target_branch", "teamcity.pullRequest.target.branch", config_props)
    branch = config_props.get("teamcity.build.branch", "").strip()
    # "<default>" is what TeamCity reports when the configuration has no branch specification.
    if branch and branch != "<default>" and not f.has("pr_number"):
        prop("branch", "teamcity.build.branch", config_props)
    f.from_env("build_number", "BUILD_NUMBER")
    prop("build_id", "teamcity.build.id", build_props)
    f.from_env("job", "TEAMCITY_BUILDCONF_NAME")
    prop("job", "teamcity.buildConfName", build_props)
    prop("server_url", "teamcity.serverUrl", config_props)
    f.from_env("build_url", "BUILD_URL")
    server, build_id = f.values.get("server_url"), f.values.get("build_id")
    if server and build_id:
        f.put("build_url", f"{server.rstrip('/')}/viewLog.html?buildId={build_id}", "derived",
              "teamcity.serverUrl/viewLog.html?buildId=teamcity.build.id")
    url = config_props.get("vcsroot.url", "").strip()
    if url:
        f.add_remote(url, "file", "teamcity.configuration.properties.file:vcsroot.url")
