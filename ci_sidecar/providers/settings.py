"""A provider's settings as one typed Struct: what it may be configured with, what it reads from the job.

Each provider declares a :class:`ProviderSettings` subclass (named in its catalog line). A session builds the
settings of each write once, at ``initialize``, with :func:`session_settings`:

* ``base_url`` from ``[providers.<name>] base_url``, else the URL the session's credential is bound to;
* every field named in ``CONFIG_KEYS`` from the ``[providers.<name>]`` table (or ``CI_SIDECAR_<NAME>_<KEY>``):
  the knobs a provider offers its users (``max_annotations``, ``artifact_prefix``...);
* every field named in ``ENV_KEYS`` from the session's environment (``GITHUB_STEP_SUMMARY``...): what the job
  tells the provider, never settable through configuration;
* every field named in ``CREDENTIAL_URLS`` from the bound URL of a second credential of the session
  (GitHub's Actions runtime token → ``actions_results_url``);
* ``ca_bundle``, ``proxy`` and ``no_proxy`` from the daemon's configuration, and for an object store the
  daemon's fixed settings;
* ``session_cwd`` and ``repository_root``: where the session's client runs (its ``initialize`` cwd) and the
  repository that holds it, for providers that turn the client's absolute paths into repository paths.

The result travels (and is journaled) with each write as plain data; a provider reads it back typed with
``MySettings.of(env)``. Secrets never go here: they travel as the write's credential.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any, ClassVar, Protocol, TypeVar

import msgspec

from ci_sidecar.protocol.errors import SidecarError

__all__ = ["KnobError", "ProviderSettings", "TABLE_KEYS", "is_provider_key", "provider_table", "settings_class",
           "session_settings", "network_settings"]

#: the keys every ``[providers.<name>]`` table has (``ci_sidecar.config.ProviderConfig``), besides the knobs
TABLE_KEYS = frozenset({"base_url", "token_env", "credential"})

_S = TypeVar("_S", bound="ProviderSettings")


class _Env(Protocol):
    """What :meth:`ProviderSettings.of` reads of a write's :class:`~ci_sidecar.providers.base.ProviderEnv`
    (named structurally: the configuration imports this module, and ``base`` imports the configuration)."""

    config: Any


class ProviderSettings(msgspec.Struct, kw_only=True):
    """Settings every provider understands (its HTTP layer reads them); subclasses add their own fields."""

    base_url: str | None = None
    ca_bundle: str | None = None
    #: seconds per request
    http_timeout: float | None = None
    #: honour HTTPS_PROXY/NO_PROXY/SSL_CERT_FILE and the daemon's proxy (tests against loopback fakes turn it off)
    trust_env: bool | None = None
    #: the daemon's ``proxy`` and ``no_proxy`` settings (its configuration, else HTTPS_PROXY/NO_PROXY)
    proxy: str | None = None
    no_proxy: str | None = None
    max_response_bytes: int | None = None
    #: where the full report is published (linked from a summary or comment that had to be shortened)
    full_report_url: str | None = None
    #: the client's working directory (``initialize``'s cwd) and the root of the git checkout holding it, if any:
    #: absolute paths the client reports are made repository-relative against them
    session_cwd: str | None = None
    repository_root: str | None = None
    #: "client": the session's client prints the provider's job-log stream (``ci-sidecar exec``; the
    #: ``StreamsJobLog`` capability), from the session's ``job_log`` setting
    job_log: str | None = None

    #: fields a ``[providers.<name>]`` table may set, beside ``base_url``, ``token_env`` and ``credential``
    CONFIG_KEYS: ClassVar[frozenset[str]] = frozenset({"http_timeout", "full_report_url"})
    #: field → the session's environment variable it is read from
    ENV_KEYS: ClassVar[Mapping[str, str]] = {}
    #: field → the credential kind (catalog ``CredentialKind.kind``) whose bound URL it holds
    CREDENTIAL_URLS: ClassVar[Mapping[str, str]] = {}

    @classmethod
    def of(cls: type[_S], env: _Env) -> _S:
        """This write's settings, typed (unknown keys of older journals are ignored, values coerced)."""
        config = env.config
        if isinstance(config, cls):
            return config
        try:
            return msgspec.convert(dict(config or {}), cls, strict=False)
        except msgspec.ValidationError:
            # a journaled value of another shape: keep what decodes, field by field
            good = {}
            for key, value in dict(config or {}).items():
                try:
                    msgspec.convert({key: value}, cls, strict=False)
                except msgspec.ValidationError:
                    continue
                good[key] = value
            return msgspec.convert(good, cls, strict=False)

    @classmethod
    def from_daemon_config(cls, config: Any) -> dict[str, Any] | None:
        """Settings the daemon's own configuration fixes for every session (an object store's, from
        ``[artifact_store]``); None: not configured. The base has none."""
        return None

    @classmethod
    def check_config(cls, key: str, value: Any, *, strict: bool = True) -> str | None:
        """Why *key* = *value* is not a valid knob of this provider's table (None: it is)."""
        if key not in cls.CONFIG_KEYS:
            known = ", ".join(sorted(TABLE_KEYS | cls.CONFIG_KEYS))
            return f"unknown key (known: {known})"
        try:
            msgspec.convert({key: value}, cls, strict=strict)
        except msgspec.ValidationError as exc:
            return str(exc).split(" - at ")[0]
        return None


def settings_class(name: str) -> type[ProviderSettings]:
    """The settings type of the catalog's provider *name* (its module imported now); the base type for a
    provider whose line names none."""
    from .catalog import by_name

    spec = by_name(name)
    if spec is None or spec.settings is None:
        return ProviderSettings
    module, _, cls = spec.settings.partition(":")
    found = getattr(importlib.import_module(module), cls)
    if not (isinstance(found, type) and issubclass(found, ProviderSettings)):
        raise TypeError(f"{spec.settings} is not a ProviderSettings subclass")
    return found


class KnobError(SidecarError, ValueError):
    """A ``[providers.<name>]`` key that is no knob of the provider, or a knob with a value of the wrong type."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key, self.reason = key, reason


def is_provider_key(name: str, key: str) -> bool:
    """Whether *key* belongs in a ``[providers.<name>]`` table (``CI_SIDECAR_GITHUB_MAX_ANNOTATIONS``...)."""
    return key in TABLE_KEYS or key in settings_class(name).CONFIG_KEYS


def provider_table(name: str, table: Mapping[str, Any], *, strict: bool = True) -> dict[str, Any]:
    """A ``[providers.<name>]`` table with the provider's own knobs moved under ``options``, each checked against
    its settings type (imported only when the table has such a key). Raises :class:`KnobError`."""
    knobs = {k: v for k, v in table.items() if k not in TABLE_KEYS}
    if not knobs:
        return dict(table)
    settings = settings_class(name)
    for knob, value in knobs.items():
        reason = settings.check_config(knob, value, strict=strict)
        if reason is not None:
            raise KnobError(knob, reason)
    return {**{k: v for k, v in table.items() if k in TABLE_KEYS}, "options": knobs}


def session_settings(
    name: str,
    *,
    section: Any = None,
    env: Mapping[str, str],
    credential_urls: Mapping[str, str | None],
    ca_bundle: str | None = None,
    proxy: str | None = None,
    no_proxy: str | None = None,
    fixed: Mapping[str, Any] | None = None,
    cwd: str | None = None,
    repository_root: str | None = None,
    job_log: str | None = None,
) -> dict[str, Any]:
    """The settings of provider *name* for one session's writes, as journaled data (see the module docstring).

    Args:
        section: the session's ``[providers.<name>]`` (a ``ProviderConfig``), or None.
        env: the session's (trimmed) environment.
        credential_urls: credential kind → the URL the session's credential of that kind is bound to
            (the provider's own name for its token).
        ca_bundle, proxy, no_proxy: the daemon's settings of those names.
        fixed: settings the daemon fixes and no session can change (the ``[artifact_store]``).
        cwd, repository_root: the session's working directory and the checkout holding it.
        job_log: the session's ``job_log`` setting (its client prints the job-log stream).
    """
    cls = settings_class(name)
    out: dict[str, Any] = {}
    base_url = getattr(section, "base_url", None) or credential_urls.get(name)
    if base_url:
        out["base_url"] = base_url
    extra = getattr(section, "options", None) or {}
    for key in cls.CONFIG_KEYS:
        if extra.get(key) is not None:
            out[key] = extra[key]
    for key, var in cls.ENV_KEYS.items():
        if env.get(var):
            out[key] = env[var]
    for key, kind in cls.CREDENTIAL_URLS.items():
        if credential_urls.get(kind):
            out[key] = credential_urls[kind]
    if cwd:
        out["session_cwd"] = cwd
    if repository_root:
        out["repository_root"] = repository_root
    if job_log:
        out["job_log"] = job_log
    if fixed:
        out.update(fixed)  # the daemon's settings: a session cannot redirect them
    out.update(network_settings(ca_bundle=ca_bundle, proxy=proxy, no_proxy=no_proxy))
    return out


def network_settings(*, ca_bundle: str | None, proxy: str | None, no_proxy: str | None) -> dict[str, str]:
    """The daemon's ``ca_bundle``/``proxy``/``no_proxy`` as a write's settings (the HTTP layer reads them)."""
    return {key: value for key, value in (("ca_bundle", ca_bundle), ("proxy", proxy), ("no_proxy", no_proxy))
            if value}
