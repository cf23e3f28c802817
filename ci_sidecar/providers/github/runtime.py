"""The Actions runtime token (the write's credential for artifacts), when the artifact service is usable,
and the names artifacts get on a workflow run (unique per run, so each job gets a prefix)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping
from urllib.parse import urlsplit

import msgspec

from ci_sidecar.credentials import Credential, find_kind
from ci_sidecar.protocol.records import Tier

from ..base import ProviderEnv
from ..catalog import by_name
from .settings import GitHubSettings

__all__ = ["ACTIONS_RUNTIME", "ARTIFACTS_PER_JOB", "RuntimeIds", "find_actions_runtime", "parse_runtime_token", "origin", "unavailable_message", "actions_artifact_tier",
           "artifact_prefix", "github_artifact_name"]

#: the credential kind of GitHub Actions' ``ACTIONS_RUNTIME_TOKEN`` (the artifact service's bearer token)
ACTIONS_RUNTIME = "github-actions-runtime"
#: the artifact service refuses a job's 501st artifact (``actions/upload-artifact``'s documented limit); the
#: artifact service batches a call's small files into one zip when it would cross it
ARTIFACTS_PER_JOB = 500


def find_actions_runtime(env: Mapping[str, str]) -> Credential | None:
    """The job's ``ACTIONS_RUNTIME_TOKEN``, bound to the origin of ``ACTIONS_RESULTS_URL`` (the catalog's credential
    kind of GitHub, see :func:`ci_sidecar.credentials.find_kind`)."""
    spec = by_name("github")
    kind = next((k for k in spec.credentials.kinds if k.kind == ACTIONS_RUNTIME), None) if spec else None
    return find_kind(kind, env) if kind is not None else None


#: characters the artifact service rejects in names (path-and-artifact-name-validation.ts)
_INVALID_NAME = re.compile(r'[":<>|*?\r\n\\/]')
_PREFIX_CLEAN = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_PREFIX = 60


# --- the runtime token ------------------------------------------------------------------------------


class RuntimeIds(msgspec.Struct, frozen=True, kw_only=True):
    """The backend ids of this job run (from the runtime token's ``scp`` claim) and the token's expiry."""

    run: str
    job: str
    expires_at: float | None = None


def parse_runtime_token(token: str | None) -> RuntimeIds:
    """The ``Actions.Results:<run>:<job>`` scope of an ``ACTIONS_RUNTIME_TOKEN`` (a JWT; not verified here,
    the service does that). Raises ``ValueError`` with a message that never contains the token."""
    parts = (token or "").split(".")
    if len(parts) != 3:
        raise ValueError("ACTIONS_RUNTIME_TOKEN is not a JWT")
    try:
        payload = parts[1] + "=" * (-len(parts[1]) % 4)
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (ValueError, binascii.Error):
        raise ValueError("ACTIONS_RUNTIME_TOKEN has an unreadable payload") from None
    scopes = claims.get("scp") if isinstance(claims, dict) else None
    if not isinstance(scopes, str):
        raise ValueError("ACTIONS_RUNTIME_TOKEN has no scp claim")
    for scope in scopes.split(" "):
        pieces = scope.split(":")
        if len(pieces) == 3 and pieces[0] == "Actions.Results" and pieces[1] and pieces[2]:
            exp = claims.get("exp")
            return RuntimeIds(run=pieces[1], job=pieces[2],
                              expires_at=float(exp) if isinstance(exp, int | float) else None)
    raise ValueError("ACTIONS_RUNTIME_TOKEN has no Actions.Results scope")


def origin(url: str) -> str | None:
    """``scheme://host[:port]`` of an http(s) URL, else None."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}"


# --- availability -----------------------------------------------------------------------------------


def unavailable_message(env: ProviderEnv) -> str:
    """Why the Actions artifact service cannot be used here, and what to do instead."""
    return ("GitHub artifacts need ACTIONS_RUNTIME_TOKEN and ACTIONS_RESULTS_URL, which GitHub does not expose to "
            "run: steps (add the .github/actions/export-runtime step before it, see docs/github.md); "
            "or configure the S3 artifact backend ([artifact_store])")


def actions_artifact_tier(env: ProviderEnv) -> Tier | None:
    """The artifacts tier when this session has the runtime token and the results URL (else None)."""
    if GitHubSettings.of(env).actions_results_url:  # set only when the session has the runtime token
        prefix = artifact_prefix(env)
        note = f"names prefixed {prefix}-" if prefix else "names are not prefixed (no GITHUB_JOB)"
        return Tier(kind="native", via="actions artifact service", note=note)
    return None


# --- names ------------------------------------------------------------------------------------------


def _clean_prefix(text: str) -> str:
    return _PREFIX_CLEAN.sub("-", text).strip("-.")[:_MAX_PREFIX].strip("-.")


def matrix_values(raw: str) -> list[str]:
    """``toJSON(matrix)`` → ``["ubuntu-latest", "3.12"]`` (values of the sorted keys); other text is one value."""
    try:
        matrix = json.loads(raw)
    except ValueError:
        return [raw]
    if not isinstance(matrix, dict):
        return [raw] if matrix is None else [json.dumps(matrix, separators=(",", ":"))]
    values = []
    for key in sorted(matrix):
        value = matrix[key]
        values.append(value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), sort_keys=True))
    return values


def _matrix_label(raw: str) -> str:
    """``toJSON(matrix)`` → ``ubuntu-latest-3.12``."""
    return "-".join(matrix_values(raw))


def artifact_prefix(env: ProviderEnv) -> str:
    """``artifact_prefix`` when configured, else ``<GITHUB_JOB>[-<matrix values>]`` (may be empty)."""
    settings = GitHubSettings.of(env)
    if settings.artifact_prefix:
        return _clean_prefix(settings.artifact_prefix)
    job = str(settings.github_job or env.ci.job or "")
    matrix = settings.artifact_matrix
    label = _matrix_label(str(matrix)) if matrix else ""
    if label:
        # the matrix label may be long: keep a digest of the full label so two legs never collapse into one
        full = _clean_prefix(label)
        if len(full) >= _MAX_PREFIX - len(job) - 1:
            full = full[: _MAX_PREFIX - len(job) - 10] + "-" + hashlib.sha256(label.encode()).hexdigest()[:8]
        return _clean_prefix(f"{job}-{full}" if job else full)
    return _clean_prefix(job)


def github_artifact_name(name: str, prefix: str) -> str:
    """The artifact service name for one of our artifacts: ``<prefix>-<name>`` with the characters the service
    rejects (``" : < > | * ? \\r \\n \\ /``) replaced by ``_``."""
    safe = _INVALID_NAME.sub("_", name).strip() or "artifact"
    return f"{prefix}-{safe}" if prefix else safe
