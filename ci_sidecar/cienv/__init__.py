"""CI environment detection: which CI, repository, commit, PR, build and code host a session runs in.

``detect(env, cwd)`` works on a session's environment (the client's ``env``/``cwd`` from ``initialize``) and
returns the wire ``CIContext`` with a ``Source`` for every field. One module per CI fills the fields; this
module picks the CI, adds the code host (``scm``), fills gaps from git and applies configured overrides.

Choosing the CI, in order:
1. an explicit ``provider`` override (configuration);
2. ``CI=false`` (or 0/no/off) forces ``local``;
3. the first CI whose own marker variables are present, most specific first: Jenkins and TeamCity
   before the hosted CIs, because their agents are the ones started *inside* another CI's job (a Jenkins
   agent running in an Azure Pipelines job inherits ``TF_BUILD``; the build is Jenkins'); ``CI`` alone
   is never a marker;
4. otherwise ``local`` (also when ``CI=true`` is set by a CI that is not supported).

Detection is synchronous and may run ``git`` (5 s timeout per call): call it through
``trio.to_thread.run_sync`` from async code.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import msgspec

from ci_sidecar.cienv import azure, bitbucket, circleci, github, gitlab, jenkins, local, teamcity, travis
from ci_sidecar.cienv._fields import Fields, truthy
from ci_sidecar.cienv._git import Git
from ci_sidecar.cienv.scm import parse_remote, scm_from_remote
from ci_sidecar.protocol.records import CIContext, ScmContext, Source
from ci_sidecar.providers.catalog import ci_names

__all__ = ["DETECTORS", "PROVIDERS", "choose_provider", "detect", "strip_userinfo"]

log = logging.getLogger(__name__)

#: Detectors in the order they are tried (see the module docstring for why).
DETECTORS: tuple[ModuleType, ...] = (jenkins, teamcity, github, gitlab, azure, circleci, travis, bitbucket)
_BY_NAME: dict[str, ModuleType] = {m.NAME: m for m in (*DETECTORS, local)}
PROVIDERS: tuple[str, ...] = tuple(_BY_NAME)

_MARKERS = {
    "jenkins": "JENKINS_URL",
    "teamcity": "TEAMCITY_VERSION",
    "github": "GITHUB_ACTIONS",
    "gitlab": "GITLAB_CI",
    "azure": "TF_BUILD",
    "circleci": "CIRCLECI",
    "travis": "TRAVIS",
    "bitbucket": "BITBUCKET_BUILD_NUMBER",
}
_URL_FIELDS = frozenset({"build_url", "job_url", "server_url"})
_OVERRIDABLE = frozenset(CIContext.__struct_fields__) - {"provider", "sources", "scm"}


def strip_userinfo(url: object) -> object:
    """Drop ``user:password@`` from a URL: CI variables such as ``JENKINS_URL`` sometimes embed a token."""
    if not isinstance(url, str) or "@" not in url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.username is None and parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def choose_provider(env: Mapping[str, str], override: object = None) -> tuple[str, Source]:
    """Which CI runs the session, and why (the Source of ``provider``): a configured provider may be any CI of
    the provider catalog (one without a detector here gets what git and the configuration say)."""
    if override is not None:
        if override not in _BY_NAME and override not in ci_names():
            raise ValueError(f"unknown CI provider {override!r} (known: {', '.join(dict.fromkeys(PROVIDERS + ci_names()))})")
        return str(override), Source(kind="config", name="provider")
    if truthy(env.get("CI")) is False:
        return "local", Source(kind="env", name="CI")
    for module in DETECTORS:
        if module.is_present(env):
            marker = _MARKERS[module.NAME]
            if module is azure and not env.get(marker, "").strip():
                marker = "BUILD_BUILDURI"
            if module is bitbucket and not env.get(marker, "").strip():
                marker = "BITBUCKET_COMMIT"
            return module.NAME, Source(kind="env", name=marker)
    if truthy(env.get("CI")) is True:
        log.info("CI=true but no supported CI's variables were found: using local")
        return "local", Source(kind="env", name="CI")
    return "local", Source(kind="derived", name="no CI variables")


def _detect_scm(f: Fields, git: Git, hosts: Mapping[str, str] | None) -> None:
    """Code host: as the CI named it, else from the clone URLs it announced, else from the git remote."""
    if f.scm is None:
        candidates = list(f.remote_urls)
        remote = git.remote_url() if not candidates else None
        if remote is not None:
            candidates.append((remote[1], Source(kind="git", name=f"remote.{remote[0]}.url")))
        for url, source in candidates:
            scm = scm_from_remote(url, hosts)
            if scm is not None:
                f.set_scm(scm, source.kind, source.name)
                break
        if not f.has("repository"):
            # An unknown host still names the repository by its path.
            for url, source in candidates:
                parsed = parse_remote(url)
                scm = scm_from_remote(url, hosts)
                repository = scm.repository if scm is not None else (parsed.path if parsed else None)
                if f.put("repository", repository, source.kind, source.name):
                    break
    elif not f.has("repository") and f.scm.repository:
        src = f.sources["scm"]
        f.put("repository", f.scm.repository, src.kind, src.name)
    if f.scm is not None and f.scm.provider == f.provider:
        # scm is reported only when the code host differs from the CI (docs/protocol.md §CIContext).
        f.scm = None
        f.sources.pop("scm", None)


def _apply_overrides(f: Fields, overrides: Mapping[str, Any]) -> None:
    for key, value in overrides.items():
        if key == "provider":
            continue
        if key == "scm_provider":
            if value is None:
                continue
            current = f.scm
            if current is not None and current.provider == value:
                continue
            f.scm = ScmContext(provider=str(value), repository=f.values.get("repository"))
            f.sources["scm"] = Source(kind="config", name="scm_provider")
            continue
        if key == "scm":
            f.scm = msgspec.convert(value, ScmContext | None) if not isinstance(value, ScmContext) else value
            f.sources["scm"] = Source(kind="config", name="context.scm")
            continue
        if key not in _OVERRIDABLE:
            raise ValueError(f"cannot override unknown CIContext field {key!r}")
        if value is None:
            f.values.pop(key, None)
            f.sources.pop(key, None)
            continue
        f.put(key, value, "config", f"context.{key}", replace=True)
    if f.scm is not None and f.scm.provider == f.provider and "scm" not in overrides:
        f.scm = None
        f.sources.pop("scm", None)


def detect(
    env: Mapping[str, str],
    cwd: str | None = None,
    overrides: Mapping[str, object] | None = None,
    *,
    hosts: Mapping[str, str] | None = None,
) -> CIContext:
    """Detect where a session runs.

    Args:
        env: the session's environment (the client's ``initialize.env``, else the daemon's own).
        cwd: the working tree to ask git about; None skips every git call.
        overrides: configured values that win over detection: any CIContext field (``pr_number``...),
            ``provider`` (forces the CI), ``scm_provider`` or ``scm`` (the code host).
        hosts: hostname -> code host provider, for self-hosted servers with unconventional names
            (see ``ci_sidecar.config.scm_hosts``).

    Returns:
        The CIContext, with ``sources[field]`` saying where each field came from.

    Raises:
        ValueError: an override names an unknown field or provider, or has the wrong type.
    """
    overrides = dict(overrides or {})
    provider, why = choose_provider(env, overrides.get("provider"))
    git = Git(cwd)
    f = Fields(provider, env)
    _BY_NAME.get(provider, local).detect(f, git)
    _detect_scm(f, git, hosts)
    local.fill_from_git(f, git)
    _apply_overrides(f, overrides)
    f.sources["provider"] = why
    for field in _URL_FIELDS & f.values.keys():
        f.values[field] = strip_userinfo(f.values[field])
    if f.scm is not None and f.scm.server_url:
        f.scm = ScmContext(provider=f.scm.provider, repository=f.scm.repository, server_url=strip_userinfo(f.scm.server_url))
    try:
        return msgspec.convert(
            {"provider": provider, **f.values, "scm": msgspec.to_builtins(f.scm), "sources": msgspec.to_builtins(f.sources)},
            CIContext,
            strict=False,
        )
    except msgspec.ValidationError as exc:
        raise ValueError(f"invalid CI context override: {exc}") from exc
