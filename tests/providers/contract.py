"""The provider contract: what every catalog line and the provider it names must satisfy. ``test_contract.py``
runs it over the catalog; a new provider's test file may run it over its own line."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from ci_sidecar.config import ArtifactStoreConfig, Config
from ci_sidecar.protocol.records import CIContext, ProviderCaps
from ci_sidecar.providers import make_provider
from ci_sidecar.providers.base import CAPABILITIES, Outcome, PostComment, ProviderEnv, capabilities_of
from ci_sidecar.providers.catalog import CATALOG, ProviderSpec
from ci_sidecar.providers.settings import ProviderSettings, session_settings, settings_class

_FILE_NAME = re.compile(r"^[A-Za-z0-9_.@-]+$")
_ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")


def check_credentials(spec: ProviderSpec) -> None:
    """Names are variables and plain file names, URLs are http(s), a user name comes as variable and file."""
    cred = spec.credentials
    assert all(_ENV_NAME.match(n) for n in cred.env + cred.url_env), cred
    assert all(_FILE_NAME.match(n) for n in spec.credential_files), spec.credential_files
    assert cred.default_url is None or cred.default_url.startswith(("https://", "http://")), cred.default_url
    assert (cred.username_env is None) == (cred.username_file is None), "a user name needs a variable and a file"
    assert cred.auth, "say how the credential is sent"
    kinds = [k.kind for k in cred.kinds]
    assert len(set(kinds)) == len(kinds) and not {spec.name} & set(kinds)
    # the notification channels name their secrets per channel, in [notifications]
    assert spec.role in ("local", "notify") or cred.env, "a remote provider names its token variables"
    assert sum(1 for other in CATALOG if other.name == spec.name) <= 1, "one line per provider"


def check_settings(spec: ProviderSpec) -> type[ProviderSettings]:
    """The settings type loads, its declared keys are its fields, and what a session builds decodes typed."""
    cls = settings_class(spec.name)
    fields = set(cls.__struct_fields__)
    assert cls.CONFIG_KEYS <= fields and set(cls.ENV_KEYS) <= fields and set(cls.CREDENTIAL_URLS) <= fields
    assert set(cls.CREDENTIAL_URLS.values()) <= {k.kind for k in spec.credentials.kinds}
    assert not {"base_url", "token_env", "credential", "options"} & cls.CONFIG_KEYS
    for field in msgspec.structs.fields(cls):  # every knob accepts its own default
        if field.name in cls.CONFIG_KEYS and field.default not in (None, msgspec.NODEFAULT):
            assert cls.check_config(field.name, field.default) is None, field.name
    store = Config(artifact_store=ArtifactStoreConfig(bucket="contract"))
    built = session_settings(spec.name, env={var: "x" for var in cls.ENV_KEYS.values()},
                             credential_urls={kind: "https://kind.example" for kind in cls.CREDENTIAL_URLS.values()},
                             ca_bundle="/ca.pem", fixed=cls.from_daemon_config(store))
    typed = msgspec.convert(built, cls, strict=False)
    assert "/ca.pem" == typed.ca_bundle
    assert all("x" == getattr(typed, key) for key in cls.ENV_KEYS if isinstance(getattr(typed, key), str))
    assert msgspec.json.decode(msgspec.json.encode(built)) == built, "settings are journaled as plain data"
    return cls


def check_provider(spec: ProviderSpec) -> Any:
    """The implementation loads under its name, its capabilities match its Protocols, and it describes itself
    for a session with nothing (no token, no settings) without a request."""
    provider = make_provider(spec.name, {spec.name: spec.impl})
    assert provider is not None and type(provider).name == spec.name
    found = capabilities_of(provider)
    for protocol in CAPABILITIES:
        assert (protocol in found) == isinstance(provider, protocol), protocol.__name__
    caps = provider.capabilities(_env({}))
    assert isinstance(caps, ProviderCaps) and spec.name == caps.provider
    return provider


def _env(config: dict[str, Any]) -> ProviderEnv:
    return ProviderEnv(ci=CIContext(provider="local", sources={}), config=config)


async def check_unkeyed_comment_once(deliver: Callable[[PostComment, ProviderEnv], Awaitable[Outcome]],
                                     make_env: Callable[[], ProviderEnv], listed: Callable[[], list[dict[str, Any]]],
                                     id_key: str) -> None:
    """The host took a comment without a key whose answer is lost (the caller injected that): a restarted daemon
    resuming the write with no remote state finds it by its write's mark; another write of the same text still
    posts its own (``listed``: the comments the host shows, ``id_key``: the id's name in ``remote``)."""
    op = PostComment(body="preview deployed", mode="create")

    def write(key: str, *, first: bool = False) -> ProviderEnv:
        env = make_env()
        env.idempotency_key, env.never_sent = key, first
        return env

    assert (await deliver(op, write("w1", first=True))).kind == "retry"
    resumed = await deliver(op, write("w1"))
    assert resumed.kind == "delivered" and resumed.action == "created", resumed.message
    assert [c["id"] for c in listed()] == [(resumed.remote or {})[id_key]]
    assert (await deliver(op, write("w2"))).kind == "delivered"
    assert len(listed()) == 2
