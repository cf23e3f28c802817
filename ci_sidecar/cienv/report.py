"""``ci-sidecar doctor``: what the daemon would detect and use here, as data and as human text.

The report names credentials by source and fingerprint only; as a last guard its whole JSON text is passed
through ``redact`` with every secret found, so no token value can appear in it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import msgspec

from ci_sidecar.cienv import detect
from ci_sidecar.config import Config, ConfigError, context_overrides, load_config, scm_hosts
from ci_sidecar.credentials import STANDARD_ENV, Credential, find_credentials, redact
from ci_sidecar.providers.catalog import code_host_names

__all__ = ["doctor_report", "format_doctor", "SCM_HOSTS"]

#: CI providers that also host code: without a separate ``scm`` they are their own code host.
SCM_HOSTS = frozenset(code_host_names())


def doctor_report(env: Mapping[str, str], cwd: str, config_path: str | None = None) -> dict[str, Any]:
    """Detected context (with sources), chosen ci/scm providers, credentials found, config files read.

    Configuration and detection errors are reported under ``errors`` instead of raised, so that doctor
    always answers.
    """
    errors: list[str] = []
    files: list[str] = []
    origins: dict[str, str] = {}
    try:
        loaded = load_config(env=env, cwd=cwd, config_path=config_path)
        config, files, origins = loaded.config, loaded.files, loaded.origins
    except ConfigError as exc:
        errors.append(str(exc))
        config = Config()
    try:
        ctx = detect(env, cwd, context_overrides(config), hosts=scm_hosts(config))
    except ValueError as exc:
        errors.append(str(exc))
        ctx = detect(env, cwd)
    ci = ctx.provider
    scm = ctx.scm.provider if ctx.scm is not None else (ci if ci in SCM_HOSTS else None)

    creds: list[Credential] = []
    for provider in STANDARD_ENV:
        creds += find_credentials(provider, env, config, env.get("CREDENTIALS_DIRECTORY"))
    report: dict[str, Any] = {
        "context": msgspec.to_builtins(ctx),
        "ci_provider": ci,
        "scm_provider": scm,
        "credentials": [
            {**msgspec.to_builtins(c.ref()), "role": _role(c.provider, ci, scm)} for c in creds
        ],
        "config_files": files,
        "config_origins": origins,
        "errors": errors,
    }
    # Belt and braces: nothing above holds a secret, but a token pasted into a config value or a CI
    # variable would otherwise be echoed.
    text = redact(json.dumps(report), [c.secret for c in creds])
    return json.loads(text)


def _role(provider: str, ci: str, scm: str | None) -> str | None:
    roles = [r for r, p in (("ci", ci), ("scm", scm)) if p == provider]
    return "+".join(roles) or None


def format_doctor(report: Mapping[str, Any]) -> str:
    """The report as aligned human-readable text."""
    ctx = report.get("context", {})
    sources = ctx.get("sources", {})

    def src(field: str) -> str:
        s = sources.get(field)
        return f"{s['kind']} {s['name']}" if s else ""

    lines = ["ci-sidecar doctor", ""]
    lines.append(f"CI provider:  {report.get('ci_provider')}  ({src('provider') or 'default'})")
    scm = report.get("scm_provider")
    scm_note = src("scm") or ("same as CI" if scm and scm == report.get("ci_provider") else "")
    lines.append(f"Code host:    {scm or 'none detected'}" + (f"  ({scm_note})" if scm_note else ""))
    if ctx.get("scm"):
        s = ctx["scm"]
        lines.append(f"              repository {s.get('repository') or '-'} on {s.get('server_url') or '-'}")
    lines += ["", "Context:"]
    fields = [k for k in ctx if k not in {"provider", "sources", "scm"}]
    if not fields:
        lines.append("  (nothing detected)")
    width = max((len(k) for k in fields), default=0)
    for key in fields:
        lines.append(f"  {key:<{width}}  {ctx[key]!s:<40}  {src(key)}".rstrip())
    lines += ["", "Credentials (fingerprints only):"]
    creds = report.get("credentials", [])
    if not creds:
        lines.append("  none found")
    for c in creds:
        role = f" [{c['role']}]" if c.get("role") else ""
        bound = c.get("base_url") or "UNBOUND: set providers." + c["provider"] + ".base_url"
        user = f" user {c['username']}" if c.get("username") else ""
        lines.append(f"  {c['provider']:<9} {c['source']:<32} {c['fingerprint']}{user} -> {bound}{role}")
    lines += ["", "Config files read:"]
    lines += [f"  {f}" for f in report.get("config_files", [])] or ["  none"]
    if report.get("errors"):
        lines += ["", "Errors:"] + [f"  {e}" for e in report["errors"]]
    return "\n".join(lines) + "\n"
