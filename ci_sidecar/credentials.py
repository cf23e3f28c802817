"""Finds provider tokens in an environment or in systemd's ``$CREDENTIALS_DIRECTORY``, bound to a base URL.

A token is held in a ``Secret`` whose repr/str never show it; ``Credential.ref()`` is what may be stored or
shown (provider, base URL, source name, fingerprint). Lookup order per provider: the configured
``token_env``, the standard variables (``GITHUB_TOKEN``, ``GH_TOKEN``...), then
``$CREDENTIALS_DIRECTORY/<configured credential>`` and ``<provider>-token``.

Binding: a token from the session's environment is bound to the configured base URL, else to the URL the
CI itself exported next to it (``GITHUB_API_URL``, ``CI_API_V4_URL``...), else the provider's public API.
A token the daemon holds (credentials directory) is bound only to the *daemon's* configured base URL or the
public API, never to anything a session supplies.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import msgspec

from ci_sidecar.config import Config
from ci_sidecar.providers.catalog import CATALOG, CredentialKind, CredentialSpec, by_name

__all__ = [
    "DEFAULT_BASE_URLS",
    "STANDARD_ENV",
    "Credential",
    "CredentialRef",
    "Secret",
    "find_credentials",
    "fingerprint",
    "redact",
    "find_kind",
    "session_credentials",
]

log = logging.getLogger(__name__)

#: Standard token variables per provider, most specific first (from the catalog).
STANDARD_ENV: dict[str, tuple[str, ...]] = {s.name: s.credentials.env for s in CATALOG if s.role == "ci"}

#: Public API base URLs; self-hosted servers (Jenkins, TeamCity) have none and must be configured.
DEFAULT_BASE_URLS: dict[str, str | None] = {s.name: s.credentials.default_url for s in CATALOG if s.role == "ci"}

MAX_CREDENTIAL_BYTES = 64 * 1024
_CRED_NAME = re.compile(r"^[A-Za-z0-9_.@-]+$")


class Secret:
    """A secret string that does not show itself: ``repr`` is ``Secret('***')``; ``reveal()`` returns it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself; call it only where it is sent to its provider."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(fingerprint(self._value))

    def __reduce__(self) -> Any:
        raise TypeError("a Secret cannot be pickled")


def fingerprint(secret: str) -> str:
    """12 hex characters of the secret's SHA-256: enough to tell tokens apart, useless to recover one."""
    return hashlib.sha256(secret.encode()).hexdigest()[:12]


class CredentialRef(msgspec.Struct, kw_only=True, frozen=True):
    """What may be journaled or shown about a credential: never the secret."""

    provider: str
    base_url: str | None
    source: str
    fingerprint: str
    username: str | None = None


class Credential(msgspec.Struct, kw_only=True, frozen=True):
    """A token for one provider, bound to the base URL it may be sent to (None: unbound, not usable)."""

    provider: str
    base_url: str | None
    source: str  # "env:GITHUB_TOKEN" or "credentials:github-token"
    fingerprint: str
    secret: Secret
    username: str | None = None  # Jenkins Basic auth user

    def ref(self) -> CredentialRef:
        """This credential without its secret."""
        return CredentialRef(provider=self.provider, base_url=self.base_url, source=self.source,
                             fingerprint=self.fingerprint, username=self.username)


def _read_credential(directory: str, name: str) -> str | None:
    if not _CRED_NAME.match(name) or name in {".", ".."}:
        log.warning("ignoring credential name %r: not a plain file name", name)
        return None
    path = os.path.join(directory, name)
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_CREDENTIAL_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("cannot read credential %s: %s", name, exc.strerror or exc)
        return None
    if len(data) > MAX_CREDENTIAL_BYTES:
        log.warning("credential %s is larger than %d bytes, ignored", name, MAX_CREDENTIAL_BYTES)
        return None
    value = data.decode("utf-8", "replace").strip()
    return value or None


def find_credentials(
    provider: str,
    env: Mapping[str, str],
    config: Config,
    credentials_dir: str | None,
    *,
    daemon_config: Config | None = None,
) -> list[Credential]:
    """Every usable token for *provider*, in lookup order, duplicates (same secret) removed.

    Args:
        provider: a CI provider of the catalog (its ``credentials`` line says which variables and files).
        env: the environment that may hold tokens (a session's ``initialize.env``).
        config: the effective configuration (``providers.<name>.token_env`` / ``base_url``).
        credentials_dir: the daemon's ``$CREDENTIALS_DIRECTORY`` (systemd ``LoadCredential=``), or None.
        daemon_config: the daemon's own configuration, without session overrides; it alone decides the
            file names read from *credentials_dir* and their base URL (defaults to *config*).
    """
    spec = by_name(provider)
    creds = spec.credentials if spec is not None else CredentialSpec()
    section = config.providers.get(provider)
    trusted = (daemon_config or config).providers.get(provider)
    default_url = creds.default_url
    env_url = next((env[n].strip() for n in creds.url_env if env.get(n, "").strip()), None)
    env_bound = (section.base_url if section else None) or env_url or default_url
    held_bound = (trusted.base_url if trusted else None) or default_url

    found: list[Credential] = []
    seen: set[str] = set()

    def add(secret: str, source: str, base_url: str | None, username: str | None = None) -> None:
        fp = fingerprint(secret)
        if fp in seen:
            return
        seen.add(fp)
        found.append(Credential(provider=provider, base_url=base_url, source=source, fingerprint=fp,
                                secret=Secret(secret), username=username))

    names = [section.token_env] if section and section.token_env else []
    names += [n for n in creds.env if n not in names]
    user = (env.get(creds.username_env, "").strip() or None) if creds.username_env else None
    for name in names:
        value = env.get(name, "").strip()
        if not value:
            continue
        basic = bool(creds.username_env) and (not creds.basic_sources or name in creds.basic_sources)
        if basic and user is None:
            log.info("%s is set but %s is not: %s needs both", name, creds.username_env, provider)
            continue
        add(value, f"env:{name}", env_bound, user if basic else None)

    if credentials_dir:
        files = [trusted.credential] if trusted and trusted.credential else []
        files += [n for n in (spec.credential_files if spec else (f"{provider}-token",)) if n not in files]
        held_user = _read_credential(credentials_dir, creds.username_file) if creds.username_file else None
        for name in files:
            value = _read_credential(credentials_dir, name)
            if value is None:
                continue
            basic = bool(creds.username_file) and (not creds.basic_sources or name in creds.basic_sources)
            if basic and held_user is None:
                log.info("credential %s found but no %s credential: %s needs both", name, creds.username_file,
                         provider)
                continue
            add(value, f"credentials:{name}", held_bound, held_user if basic else None)
    return found


def find_kind(kind: CredentialKind, env: Mapping[str, str]) -> Credential | None:
    """A provider's second credential (catalog ``CredentialKind``) from the job's environment, bound to the
    origin of its URL variable (both from the same environment, as the CI sets them), or None when either is
    missing or the URL is not http(s)."""
    token = env.get(kind.env, "").strip()
    url = env.get(kind.url_env, "").strip()
    if not token or not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        log.info("%s is not an http(s) URL: %s is not used", kind.url_env, kind.env)
        return None
    return Credential(provider=kind.kind, base_url=f"{parts.scheme}://{parts.netloc}",
                      source=f"env:{kind.env}", fingerprint=fingerprint(token), secret=Secret(token))


def session_credentials(
    providers: Iterable[str],
    env: Mapping[str, str],
    config: Config,
    credentials_dir: str | None,
    *,
    daemon_config: Config | None = None,
) -> dict[str, Credential]:
    """The credential a session uses for each of *providers* (the first bound one), and each of their further
    credential kinds found in *env*, keyed by provider name or kind."""
    out: dict[str, Credential] = {}
    for provider in providers:
        spec = by_name(provider)
        if spec is None or spec.role != "ci":
            continue
        for cred in find_credentials(provider, env, config, credentials_dir, daemon_config=daemon_config):
            if cred.base_url:  # an unbound token is never sent anywhere
                out[provider] = cred
                break
        for kind in spec.credentials.kinds:
            found = find_kind(kind, env)
            if found is not None:
                out[kind.kind] = found
    return out


def redact(text: str, secrets: Iterable[str | Secret]) -> str:
    """Replace every occurrence of each secret (and its URL-encoded form) in *text* with ``***``."""
    values: set[str] = set()
    for item in secrets:
        value = item.reveal() if isinstance(item, Secret) else item
        if value:
            values.add(value)
            values.add(quote(value, safe=""))
    for value in sorted(values, key=len, reverse=True):  # longest first: a secret may contain another
        text = text.replace(value, "***")
    return text
