"""Configuration: one ``Config`` Struct merged from TOML files, ``CI_SIDECAR_*`` variables and the session.

Sources in increasing precedence:
1. ``/etc/ci-sidecar/ci-sidecar.toml`` (system mode only; ``SYSTEM_CONFIG_PATH``);
2. ``ci-sidecar.toml`` in the platformdirs user config dir (``$XDG_CONFIG_HOME/ci-sidecar`` on Linux);
3. ``[tool.ci-sidecar]`` in ``<cwd>/pyproject.toml``, then ``<cwd>/ci-sidecar.toml``;
4. ``--config PATH``;
5. ``CI_SIDECAR_*`` environment variables (``CI_SIDECAR_OUTPUT_DIR``, ``CI_SIDECAR_GITHUB_BASE_URL``,
   ``CI_SIDECAR_CONTEXT_PR_NUMBER``...);
6. the daemon's command-line flags (``--state-dir``, ``--idle-timeout``...), validated like any layer;
7. ``initialize.config`` of the session.
The standard ``HTTPS_PROXY``/``NO_PROXY``/``SSL_CERT_FILE`` are defaults below all of them.
A session's ``initialize.config`` cannot set ``DAEMON_ONLY_KEYS`` (paths of the daemon, limits, source roots,
proxy and CA bundle): those would let one client redirect or widen what the daemon does for everyone.

Keys may be written ``snake_case`` or ``kebab-case``. Tables (``providers``, ``context``, ``artifact_store``,
``history``) merge key by key; ``CI_SIDECAR_ARTIFACT_STORE_<KEY>`` sets one key of ``[artifact_store]`` (and
``CI_SIDECAR_HISTORY_<KEY>`` one of ``[history]``).
Relative paths in a file are relative to that file's directory; elsewhere to *cwd*. Every layer is
validated on its own, so an error names the file, the key and the reason (``ConfigError``).
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec
import platformdirs

from ci_sidecar.config_schema import (
    DAEMON_ONLY_KEYS,
    PROVIDER_NAMES,
    ArtifactStoreConfig,
    ChannelConfig,
    Config,
    ConfigError,
    HistoryConfig,
    LoadedConfig,
    NotificationsConfig,
    ProviderConfig,
)
from ci_sidecar.protocol.records import CIContext
from ci_sidecar.providers.catalog import CATALOG
from ci_sidecar.providers.settings import KnobError, is_provider_key, provider_table

__all__ = [
    "ChannelConfig",
    "DAEMON_ONLY_KEYS",
    "NotificationsConfig",
    "SYSTEM_CONFIG_PATH",
    "ArtifactStoreConfig",
    "Config",
    "ConfigError",
    "LoadedConfig",
    "ProviderConfig",
    "context_overrides",
    "load_config",
    "scm_hosts",
    "user_config_file",
]

log = logging.getLogger(__name__)

APP_NAME = "ci-sidecar"
SYSTEM_CONFIG_PATH = "/etc/ci-sidecar/ci-sidecar.toml"
CONFIG_FILE_NAME = "ci-sidecar.toml"
ENV_PREFIX = "CI_SIDECAR_"

_FIELDS = Config.__struct_fields__
#: tables of plain settings: validated as their Struct, merged key by key, ``CI_SIDECAR_<TABLE>_<KEY>`` sets one key
_TABLES: dict[str, type] = {"artifact_store": ArtifactStoreConfig, "history": HistoryConfig,
                            "notifications": NotificationsConfig}
_PATH_FIELDS = frozenset({"output_dir", "state_dir", "socket", "ca_bundle"})
_CONTEXT_FIELDS = frozenset(CIContext.__struct_fields__) - {"provider", "sources"}
_AT = re.compile(r"^(?P<reason>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_UNKNOWN = re.compile(r"unknown field `(?P<name>[^`]+)`")


# --- validation of one layer --------------------------------------------------------------------


def _error_key(prefix: str, exc: msgspec.ValidationError) -> tuple[str, str]:
    m = _AT.match(str(exc))
    reason, path = (m["reason"], m["path"] or "") if m else (str(exc), "")
    key = prefix + path.lstrip(".").split("[")[0] if path else prefix.rstrip(".")
    if (u := _UNKNOWN.search(reason)) is not None:
        key = f"{key}.{u['name']}" if key else u["name"]
        reason = "unknown key"
    return key, reason


def _normalise(table: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k).replace("-", "_"): v for k, v in table.items()}


def _normalise_nested(key: str, table: dict[str, Any]) -> dict[str, Any]:
    """The keys of ``[notifications]``' channel and rule tables too (channel names stay as written)."""
    if key != "notifications":
        return table
    channels, rules = table.get("channels"), table.get("rules")
    if isinstance(channels, Mapping):
        table["channels"] = {name: _normalise(c) if isinstance(c, Mapping) else c for name, c in channels.items()}
    if isinstance(rules, list):
        table["rules"] = [_normalise(r) if isinstance(r, Mapping) else r for r in rules]
    return table


def _validate_layer(
    layer: Mapping[str, Any], origin: str, *, strict: bool = True, forbidden: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """Check one layer's keys and types; return it normalised (snake_case keys). Raises ConfigError."""
    if not isinstance(layer, Mapping):
        raise ConfigError(origin, None, "expected a table of settings")
    data = _normalise(layer)
    for key, value in data.items():
        if key not in _FIELDS:
            raise ConfigError(origin, key, f"unknown key (known: {', '.join(_FIELDS)})")
        if key in forbidden:
            raise ConfigError(origin, key, "is a daemon setting and cannot be set by a session")
        if key == "providers":
            if not isinstance(value, Mapping):
                raise ConfigError(origin, key, "expected a table of provider sections")
            data[key] = {}
            for name, section in value.items():
                if name not in PROVIDER_NAMES:
                    raise ConfigError(origin, f"providers.{name}", f"unknown provider (known: {', '.join(PROVIDER_NAMES)})")
                if not isinstance(section, Mapping):
                    raise ConfigError(origin, f"providers.{name}", "expected a table")
                section = _provider_section(name, _normalise(section), origin, strict)
                try:
                    msgspec.convert(section, ProviderConfig, strict=strict)
                except msgspec.ValidationError as exc:
                    raise ConfigError(origin, *_error_key(f"providers.{name}.", exc)) from None
                data[key][name] = section
        elif key in _TABLES:
            if not isinstance(value, Mapping):
                raise ConfigError(origin, key, f"expected a table of {key.replace('_', ' ')} settings")
            data[key] = _normalise_nested(key, _normalise(value))
            try:
                msgspec.convert(data[key], _TABLES[key], strict=strict)
            except msgspec.ValidationError as exc:
                raise ConfigError(origin, *_error_key(f"{key}.", exc)) from None
        elif key == "context":
            if not isinstance(value, Mapping):
                raise ConfigError(origin, key, "expected a table of CI context fields")
            data[key] = {}
            for field, item in value.items():
                if field not in _CONTEXT_FIELDS:
                    raise ConfigError(origin, f"context.{field}", "not a CI context field")
                try:
                    converted = msgspec.convert({"provider": "local", "sources": {}, field: item}, CIContext, strict=strict)
                except msgspec.ValidationError as exc:
                    raise ConfigError(origin, *_error_key("context.", exc)) from None
                data[key][field] = msgspec.to_builtins(getattr(converted, field))
        else:
            try:
                msgspec.convert({key: value}, Config, strict=strict)
            except msgspec.ValidationError as exc:
                raise ConfigError(origin, *_error_key("", exc)) from None
    return data


def _provider_section(name: str, section: dict[str, Any], origin: str, strict: bool) -> dict[str, Any]:
    try:
        return provider_table(name, section, strict=strict)
    except KnobError as exc:
        raise ConfigError(origin, f"providers.{name}.{exc.key}", exc.reason) from None


def _resolve_paths(data: dict[str, Any], base: Path) -> dict[str, Any]:
    for key in _PATH_FIELDS & data.keys():
        if isinstance(data[key], str) and data[key] and not os.path.isabs(os.path.expanduser(data[key])):
            data[key] = str(base / data[key])
        elif isinstance(data[key], str):
            data[key] = os.path.expanduser(data[key])
    if isinstance(data.get("source_roots"), list):
        data["source_roots"] = [
            str(base / p) if isinstance(p, str) and not os.path.isabs(os.path.expanduser(p)) else os.path.expanduser(p)
            for p in data["source_roots"]
        ]
    return data


# --- the sources ------------------------------------------------------------------------------


def user_config_file(env: Mapping[str, str]) -> Path:
    """``ci-sidecar.toml`` in the user config dir (``$XDG_CONFIG_HOME`` of *env* wins on Linux)."""
    xdg = env.get("XDG_CONFIG_HOME", "")
    if sys.platform.startswith("linux") and xdg and os.path.isabs(xdg):
        return Path(xdg) / APP_NAME / CONFIG_FILE_NAME
    return platformdirs.user_config_path(APP_NAME, appauthor=False) / CONFIG_FILE_NAME


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), None, f"not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(str(path), None, f"cannot read: {exc.strerror or exc}") from None


def _file_layers(cwd: str, env: Mapping[str, str], config_path: str | None, system_mode: bool):  # noqa: ANN202
    """(origin, table, base dir) for every config file that exists, lowest precedence first."""
    candidates: list[tuple[Path, bool, bool]] = []  # (path, required, is_pyproject)
    if system_mode:
        candidates.append((Path(SYSTEM_CONFIG_PATH), False, False))
    candidates.append((user_config_file(env), False, False))
    candidates.append((Path(cwd) / "pyproject.toml", False, True))
    candidates.append((Path(cwd) / CONFIG_FILE_NAME, False, False))
    if config_path is not None:
        p = Path(os.path.expanduser(config_path))
        candidates.append((p if p.is_absolute() else Path(cwd) / p, True, False))
    for path, required, is_pyproject in candidates:
        if not required:
            try:
                if not path.is_file():
                    continue
            except OSError as exc:  # e.g. a service user whose HOME is another user's 0700 directory
                log.warning("skipping config file %s: %s", path, exc.strerror or exc)
                continue
        doc = _read_toml(path)
        if is_pyproject:
            table = doc.get("tool", {}).get(APP_NAME) if isinstance(doc.get("tool"), dict) else None
            if table is None:
                continue  # a pyproject.toml without our table is not a config file we read
            yield f"{path} [tool.{APP_NAME}]", str(path), table, path.parent
        else:
            yield str(path), str(path), doc, path.parent


def _env_layer(env: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """``CI_SIDECAR_*`` variables as a config table, and which variable set each key."""
    data: dict[str, Any] = {}
    names: dict[str, str] = {}
    providers_upper = {p.upper(): p for p in PROVIDER_NAMES}
    for var, value in env.items():
        if not var.startswith(ENV_PREFIX):
            continue
        rest = var[len(ENV_PREFIX) :]
        field = rest.lower()
        table = next((t for t in _TABLES if field.startswith(t + "_")
                      and field[len(t) + 1:] in _TABLES[t].__struct_fields__), None)
        if table is not None:
            sub = field[len(table) + 1:]
            data.setdefault(table, {})[sub] = value
            names[f"{table}.{sub}"] = var
            continue
        if field in _FIELDS and field not in {"providers", "context", *_TABLES}:
            if field == "source_roots":
                data[field] = [p for p in value.split(os.pathsep) if p]
            else:
                data[field] = value
            names[field] = var
            continue
        if rest.startswith("CONTEXT_"):
            ctx_field = rest[len("CONTEXT_") :].lower()
            data.setdefault("context", {})[ctx_field] = value
            names[f"context.{ctx_field}"] = var
            continue
        head, _, tail = rest.partition("_")
        if head in providers_upper and is_provider_key(providers_upper[head], tail.lower()):
            data.setdefault("providers", {}).setdefault(providers_upper[head], {})[tail.lower()] = value
            names[f"providers.{providers_upper[head]}.{tail.lower()}"] = var
            continue
        log.debug("ignoring %s: not a configuration variable", var)
    return data, names


def _standard_defaults(env: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Proxy and CA settings from the variables every HTTP client honours, and their names."""
    data: dict[str, Any] = {}
    names: dict[str, str] = {}
    for key, candidates in (("proxy", ("HTTPS_PROXY", "https_proxy")), ("no_proxy", ("NO_PROXY", "no_proxy")),
                       ("ca_bundle", ("SSL_CERT_FILE",))):
        for name in candidates:
            if env.get(name):
                data[key] = env[name]
                names[key] = name
                break
    return data, names


def _merge(into: dict[str, Any], layer: Mapping[str, Any], origin: str, origins: dict[str, str]) -> None:
    for key, value in layer.items():
        if key == "providers":
            merged = into.setdefault("providers", {})
            for name, section in value.items():
                target = merged.setdefault(name, {})
                for field, item in section.items():
                    if field == "options":  # knob by knob, like the table's other keys
                        target.setdefault("options", {}).update(item)
                        origins.update({f"providers.{name}.{k}": origin for k in item})
                    else:
                        target[field] = item
                        origins[f"providers.{name}.{field}"] = origin
        elif key in ("context", *_TABLES):
            into.setdefault(key, {}).update(value)
            for field in value:
                origins[f"{key}.{field}"] = origin
        else:
            into[key] = value
            origins[key] = origin


def load_config(
    *,
    env: Mapping[str, str],
    cwd: str,
    config_path: str | None = None,
    session_config: Mapping[str, Any] | None = None,
    system_mode: bool = False,
    flags: Mapping[str, Any] | None = None,
) -> LoadedConfig:
    """Merge every configuration source (see the module docstring) into a ``Config``.

    Args:
        env: the environment to read ``CI_SIDECAR_*``, proxy variables and ``XDG_CONFIG_HOME`` from.
        cwd: the working tree holding ``pyproject.toml`` / ``ci-sidecar.toml``.
        config_path: ``--config PATH``; it must exist.
        session_config: ``initialize.config`` of a session (``DAEMON_ONLY_KEYS`` are refused).
        system_mode: read ``SYSTEM_CONFIG_PATH`` too (the daemon runs as a system service).
        flags: the daemon's command-line flags as config keys (``{"idle_timeout_s": 5.0}``); None values are
            flags not given.

    Raises:
        ConfigError: a file is unreadable or not TOML, or a key is unknown or has an invalid value.
    """
    merged: dict[str, Any] = {}
    origins: dict[str, str] = {}
    files: list[str] = []
    defaults, default_names = _standard_defaults(env)
    _merge(merged, _validate_layer(defaults, "environment"), "", {})
    origins.update({key: f"env:{var}" for key, var in default_names.items()})

    for origin, file, table, base in _file_layers(cwd, env, config_path, system_mode):
        files.append(file)
        _merge(merged, _resolve_paths(_validate_layer(table, origin), base), origin, origins)

    env_data, env_names = _env_layer(env)
    try:
        env_data = _validate_layer(env_data, "environment", strict=False)
    except ConfigError as exc:
        raise ConfigError("environment", env_names.get(exc.key or "", exc.key), exc.reason) from None
    _merge(merged, _resolve_paths(env_data, Path(cwd)), "", {})
    origins.update({key: f"env:{var}" for key, var in env_names.items()})

    given = {key: value for key, value in (flags or {}).items() if value is not None}
    if given:
        _merge(merged, _resolve_paths(_validate_layer(given, "command line"), Path(cwd)), "command line", origins)

    if session_config:
        _merge(merged, _resolve_paths(_validate_layer(session_config, "initialize.config", forbidden=DAEMON_ONLY_KEYS), Path(cwd)),
               "initialize.config", origins)
    if system_mode:
        merged["system_mode"] = True
    try:
        config = msgspec.convert(merged, Config, strict=False)
    except msgspec.ValidationError as exc:  # layers are valid one by one; this is a safety net
        raise ConfigError("merged configuration", *_error_key("", exc)) from None
    return LoadedConfig(config=config, files=files, origins=origins, config_path=config_path)


# --- helpers for the rest of the daemon ----------------------------------------------------------


def context_overrides(config: Config) -> dict[str, Any]:
    """The ``overrides`` argument of ``ci_sidecar.cienv.detect`` for this configuration."""
    overrides: dict[str, Any] = dict(config.context)
    if config.provider is not None:
        overrides["provider"] = config.provider
    if config.scm_provider is not None:
        overrides["scm_provider"] = config.scm_provider
    return overrides


def scm_hosts(config: Config) -> dict[str, str]:
    """Hostname -> code host for every configured ``base_url`` (so self-hosted servers are recognised)."""
    from urllib.parse import urlsplit

    hosts: dict[str, str] = {}
    for spec in CATALOG:
        section = config.providers.get(spec.name)
        if not spec.code_host or section is None or not section.base_url:
            continue
        try:
            host = urlsplit(section.base_url).hostname
        except ValueError:
            continue
        if host:
            hosts[host.lower()] = spec.name
            prefix = spec.api_host_prefix
            if prefix and host.startswith(prefix):
                hosts[host[len(prefix):].lower()] = spec.name  # api.github.example -> github.example
    return hosts
