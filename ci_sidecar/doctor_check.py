"""``ci-sidecar doctor --check``: prove that the tokens found here can do what the chosen tiers need.

Each provider of the session (ci and scm) that has the ``ProbesAccess`` capability proves its own access
(GitHub's probes: :mod:`ci_sidecar.providers.github.doctor`); the others are reported ``skipped``.
Every result is ``proven``, ``failed``, ``unproven`` or ``skipped``; the command exits 1 when one ``failed``.
No token value appears in the report (the HTTP layer redacts, and the whole report is redacted again).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

import msgspec
import trio

from ci_sidecar.credentials import find_kind, find_credentials, redact
from ci_sidecar.providers import Providers
from ci_sidecar.providers.base import CheckItem, CheckReport, ProbesAccess
from ci_sidecar.providers.catalog import by_name

__all__ = ["CheckItem", "CheckReport", "run_check", "format_check"]


def run_check(env: Mapping[str, str], cwd: str, config_path: str | None, *, write: bool = False) -> dict[str, Any]:
    """Detect the context here and run the checks (for the CLI); the result is redacted JSON-able data."""
    from ci_sidecar.cienv import detect
    from ci_sidecar.config import ConfigError, context_overrides, load_config, scm_hosts

    try:
        config = load_config(env=env, cwd=cwd, config_path=config_path).config
        ci = detect(env, cwd, context_overrides(config), hosts=scm_hosts(config))
    except (ConfigError, ValueError) as exc:
        return {"ok": False, "reports": [], "error": str(exc)}
    names = [ci.provider] + ([ci.scm.provider] if ci.scm is not None else [])
    secrets: list[Any] = []
    reports: list[CheckReport] = []
    registry = Providers()
    for name in dict.fromkeys(n for n in names if n != "local"):
        prober = registry.capable(name, ProbesAccess)
        if prober is None:
            reports.append(CheckReport(provider=name, items=[CheckItem(
                name="access", result="skipped", detail=f"no --check probes for {name} in this version")]))
            continue
        found = [c for c in find_credentials(name, env, config, env.get("CREDENTIALS_DIRECTORY")) if c.base_url]
        spec = by_name(name)
        kinds = [k for k in (find_kind(kind, env) for kind in spec.credentials.kinds) if k] if spec else []
        secrets += [c.secret for c in found + kinds]
        probe = functools.partial(prober.probe_access, ci, env, found[0] if found else None, write=write,
                                  trust_env=True)
        reports.append(trio.run(probe))
    data = {"ok": all(r.ok for r in reports), "reports": msgspec.to_builtins(reports)}
    return json.loads(redact(json.dumps(data), secrets))


def format_check(data: Mapping[str, Any]) -> str:
    """The check results as text."""
    lines = ["", "Access check:"]
    if data.get("error"):
        lines.append(f"  error: {data['error']}")
    if not data.get("reports"):
        lines.append("  nothing to check (no remote provider detected)")
    for report in data.get("reports", []):
        mode = "with --write" if report.get("write") else "read-only"
        lines.append(f"  {report['provider']} (tier: {report.get('tier') or '-'}, {mode})")
        for item in report.get("items", []):
            lines.append(f"    {item['result']:<9} {item['name']:<20} {item['detail']}")
    return "\n".join(lines) + "\n"
