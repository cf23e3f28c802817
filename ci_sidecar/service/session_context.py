"""What the service knows about one session: its CI context, configuration, credentials and output folder.

Built once at ``initialize`` from the client's ``cwd``/``env`` (never the daemon's own when the client
sent them). The environment is trimmed to what detection, provider settings and token lookup need,
kept in memory only; tokens go to the outbox's credential pool, and writes carry only a reference.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from ci_sidecar.config import Config
from ci_sidecar.credentials import Credential, CredentialRef, session_credentials
from ci_sidecar.protocol.records import CIContext, ProviderCaps, Target, Tier
from ci_sidecar.providers._staging import repository_root
from ci_sidecar.providers.base import Provider, ProviderEnv
from ci_sidecar.providers.catalog import by_name, env_prefixes, token_env_names
from ci_sidecar.providers.settings import session_settings

from .source_paths import SourcePolicy

__all__ = ["SessionContext", "STORE_FALLBACK", "trim_env", "no_caps", "output_root", "describe_roles"]

#: the ``via`` of a CI's artifact tier that is the object store itself (the CI has no artifact storage)
STORE_FALLBACK = "artifact_store"

#: every CI's own variables (from the catalog), ours (``CI``, ``CI_SIDECAR_*``) and the HTTP client's
_KEEP_PREFIXES = env_prefixes() + (
    "CI", "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "https_proxy", "http_proxy", "no_proxy", "SSL_CERT_FILE",
    "HOME", "PATH",
)


def trim_env(env: Mapping[str, str], config: Config) -> dict[str, str]:
    """Keep only what detection, provider settings and the configured token names need."""
    token_names = set(token_env_names())
    token_names |= {p.token_env for p in config.providers.values() if p.token_env}
    return {k: v for k, v in env.items() if k in token_names or k.startswith(_KEEP_PREFIXES)}


def no_caps(provider: str, note: str) -> ProviderCaps:
    none = Tier(kind="none", note=note)
    return ProviderCaps(provider=provider, test_run=none, build_status=none, pr_comment=none, artifacts=none,
                        limits={})


@dataclass
class SessionContext:
    session_id: str
    ci: CIContext
    config: Config
    cwd: str
    output_root: str
    env: dict[str, str] = field(default_factory=dict)
    credentials: dict[str, Credential] = field(default_factory=dict)
    providers: Mapping[str, Provider] = field(default_factory=dict)
    #: which client files this session may make the daemon read (ingest_junit, artifacts by path)
    sources: SourcePolicy | None = None
    #: the object store the daemon holds artifacts in (a catalog ``store`` provider), None: none configured
    store: str | None = None
    #: settings the daemon fixes per provider, which no session can change (the object store's)
    fixed_settings: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def ci_provider(self) -> str:
        return self.ci.provider

    @property
    def scm_provider(self) -> str | None:
        return self.ci.scm.provider if self.ci.scm is not None else None

    # --- routing ------------------------------------------------------------------------------

    def available(self, provider: str | None) -> bool:
        return provider is not None and provider in self.providers

    def status_provider(self, run_provider: str | None) -> str:
        """Build/commit statuses go to the code host when it differs from the CI and can take them (a Jenkins
        build of a GitHub pull request), else to the CI (Jenkins' build description)."""
        return self._route(run_provider, "build_status")

    def comment_provider(self, run_provider: str | None) -> str:
        """PR comments live on the code host (the CI when the code host cannot take them)."""
        return self._route(run_provider, "pr_comment")

    def _route(self, run_provider: str | None, role: str) -> str:
        """The code host, else the CI: the first available one whose tier for ``role`` is not ``none``; when
        neither has one, the code host (its answer says why), else the CI."""
        ci = run_provider or self.ci_provider
        candidates = [p for p in dict.fromkeys((self.scm_provider, ci)) if p is not None and self.available(p)]
        for candidate in candidates:
            if getattr(self.caps(candidate), role).kind != "none":
                return candidate
        return candidates[0] if candidates else ci

    def artifact_routes(self, run_provider: str) -> tuple[list[str], str]:
        """Who gets a copy of each artifact, and whose copy the artifact reports (its ``primary``).

        ``local`` always; the run's CI provider when it has an artifact tier (a tier ``via`` :data:`STORE_FALLBACK`
        only without an object store); the object store when one is configured. Primary: the CI's native tier,
        else the object store, else the CI's staged/fallback tier, else ``local``.
        """
        providers = ["local"]
        ci_tier = "none"
        store = self.store if self.store is not None and self.available(self.store) else None
        if run_provider != "local" and self.available(run_provider):
            tier = self.caps(run_provider).artifacts
            ci_tier = tier.kind
            # a CI whose only artifact tier is the object store (Travis) gets the write when there is none, to
            # answer why not (-31007 with what to configure); with a store, the store carries it alone
            if ci_tier != "none" and not (tier.via == STORE_FALLBACK and store is not None):
                providers.append(run_provider)
        if store is not None:
            providers.append(store)
        primary = run_provider if ci_tier == "native" else (store or providers[-1])
        return providers, primary

    def role_caps(self, provider: str) -> ProviderCaps:
        """``caps(provider)``, with the object store as the artifact tier when the provider has no native one."""
        caps = self.caps(provider)
        if self.store is not None and self.available(self.store) and caps.artifacts.kind != "native":
            caps = msgspec.structs.replace(caps, artifacts=self.caps(self.store).artifacts)
        return caps

    # --- credentials and settings -----------------------------------------------------------

    def credential_ref(self, provider: str) -> CredentialRef | None:
        cred = self.credentials.get(provider)
        return cred.ref() if cred is not None else None

    def artifact_credential_ref(self, provider: str) -> CredentialRef | None:
        """The credential an artifact upload to *provider* carries: a further credential kind the catalog names
        for artifacts (GitHub: the job's Actions runtime token) when the session has one, else the provider's token."""
        spec = by_name(provider)
        for kind in spec.credentials.kinds if spec is not None else ():
            if kind.used_for == "artifacts" and kind.kind in self.credentials:
                return self.credentials[kind.kind].ref()
        return self.credential_ref(provider)

    def provider_config(self, provider: str) -> dict[str, Any]:
        """Non-secret settings a provider needs for this session's writes (journaled with them), built from its
        settings type (:func:`ci_sidecar.providers.settings.session_settings`)."""
        return session_settings(
            provider, section=self.config.providers.get(provider), env=self.env,
            credential_urls={name: cred.base_url for name, cred in self.credentials.items()},
            ca_bundle=self.config.ca_bundle, proxy=self.config.proxy, no_proxy=self.config.no_proxy,
            fixed=self.fixed_settings.get(provider),
            cwd=self.cwd, repository_root=self.repository_root, job_log=self.config.job_log)

    @functools.cached_property
    def repository_root(self) -> str | None:
        """The git checkout holding the session's cwd (the nearest folder up with a ``.git``), None: not in one."""
        return repository_root(self.cwd)

    def provider_env(self, provider: str) -> ProviderEnv:
        """The environment of an immediate call to *provider* (capabilities, lookups) with the session's token."""
        cred = self.credentials.get(provider)
        return ProviderEnv.build(self.ci, self.provider_config(provider), cred.ref() if cred else None,
                                 cred.secret.reveal() if cred else None)

    def caps(self, provider: str) -> ProviderCaps:
        impl = self.providers.get(provider)
        if impl is None:
            return no_caps(provider, f"the {provider} provider is not available in this version; "
                                     "results are written to the local output folder only")
        return impl.capabilities(self.provider_env(provider))

    def targets_for(self, provider: str) -> list[Target]:
        """Where a new run is published: the local output folder always, the CI provider, and the code host when
        it is another provider that can show a run (a check run or commit status on the pull request of a Jenkins,
        CircleCI or Travis build)."""
        targets = [Target(role="ci", provider="local", kind="local")]
        if provider != "local":
            targets.append(self._target("ci", provider))
        scm = self.scm_provider
        if scm is not None and scm not in (provider, "local") and self.available(scm):
            target = self._target("scm", scm)
            if target.kind != "none":
                targets.append(target)
        return targets

    def _target(self, role: str, provider: str) -> Target:
        tier = self.caps(provider).test_run
        # "via <tier>; <why>": the runs service reads the expected tier back from the note
        parts = [f"via {tier.via}" if tier.via else None, tier.note]
        return Target(role=role, provider=provider, kind=tier.kind,  # type: ignore[arg-type]
                      note="; ".join(p for p in parts if p) or None)


def output_root(config: Config, cwd: str, *, system_mode: bool, state_dir: str | None) -> str:
    """Where local output goes: ``output_dir`` (relative to the session's cwd), else ``<cwd>/ci-sidecar-out``;
    in system mode, under the daemon's state dir unless configured (a job's cwd is not the service's)."""
    if config.output_dir:
        return str(Path(cwd, os.path.expanduser(config.output_dir)).resolve())
    if system_mode and state_dir:
        return str(Path(state_dir, "output"))
    return str(Path(cwd, "ci-sidecar-out").resolve())



def describe_roles(ci: CIContext, config: Config, env: Mapping[str, str], cwd: str) -> dict[str, ProviderCaps]:
    """The capability tiers a session with this context would get (for ``ci-sidecar doctor``)."""
    from ci_sidecar.providers import Providers

    ctx = SessionContext(session_id="doctor", ci=ci, config=config, cwd=cwd,
                         output_root=output_root(config, cwd, system_mode=False, state_dir=None),
                         env=trim_env(env, config), providers=Providers())
    wanted = {ci.provider} | ({ci.scm.provider} if ci.scm else set())
    ctx.credentials.update(session_credentials(wanted, env, config, env.get("CREDENTIALS_DIRECTORY")))
    roles = {"ci": ctx.caps(ci.provider)}
    if ctx.scm_provider and ctx.scm_provider != ci.provider:
        roles["scm"] = ctx.caps(ctx.scm_provider)
    return roles
