"""What every Azure DevOps module shares: the API's version and limits, how a token goes on a request (Bearer for
the pipeline's ``System.AccessToken``, Basic with an empty user for a PAT), how errors and lists read, and the
project's path in URLs.

Azure DevOps Services is ``https://dev.azure.com/<organization>``; an Azure DevOps Server collection is any URL
(``SYSTEM_COLLECTIONURI`` names either, so a pipeline needs no configuration). Every call carries
``api-version=7.1`` as a query parameter (the REST API refuses a call without one). Lists answer
``{"count": n, "value": [...]}`` and continue with the ``x-ms-continuationtoken`` header. An expired or missing
credential is often answered ``203`` with an HTML sign-in page instead of 401: a 2xx that is not JSON is refused
as "credential not accepted" by the shared layer, never taken for success.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit

from .._http import Auth, Basic, Bearer, ContinuationToken, HttpConfig, HttpLayer, Response, Rules
from .._http import json_error_message
from ..base import ProviderEnv
from .settings import AzureSettings

__all__ = ["API_VERSION", "V", "RESULTS_PER_POST", "COMMENT_CHARS", "ATTACHMENT_BYTES", "TEXT_CHARS",
           "ACCESS_TOKEN_VAR", "DEFAULT_URL", "RULES", "collection_url", "rest_layer", "rest_config", "auth_for", "auth_for_source",
           "project_path", "repo_path", "values", "no_target", "error_message"]

API_VERSION = "7.1"
#: the query every call carries
V: Mapping[str, str] = {"api-version": API_VERSION}
#: results per ``POST test/Runs/{id}/results`` (the service refuses larger batches)
RESULTS_PER_POST = 1000
#: a PR thread comment ("A discussion comment cannot be longer than 150000 characters")
COMMENT_CHARS = 150_000
#: a test-run attachment's content (base64 ``stream``; the service's limit is 100 MB)
ATTACHMENT_BYTES = 100 * 1024 * 1024
#: ``errorMessage``, ``stackTrace`` and ``comment`` of a result (documented as at most 1,000 characters)
TEXT_CHARS = 1000
ACCESS_TOKEN_VAR = "SYSTEM_ACCESSTOKEN"
DEFAULT_URL = "https://dev.azure.com"


def error_message(resp: Response) -> str | None:
    """Azure's words: ``{"$id": "1", "message": "TF400733: …", "typeKey": "…"}`` (the type key in brackets)."""
    try:
        data = json.loads(resp.body) if resp.body else None
    except (ValueError, UnicodeDecodeError):
        return None
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        key = data.get("typeKey")
        return (data["message"] + (f" ({key})" if isinstance(key, str) and key else ""))[:2000]
    return json_error_message(resp)


#: Azure's error bodies; the defaults otherwise (429 TF400733 and 5xx retry after ``Retry-After`` or
#: ``X-RateLimit-Reset``; a 203 sign-in page or other non-JSON 2xx is refused: the credential was not accepted)
RULES = Rules(error_message=error_message)


def rest_layer() -> HttpLayer:
    """The HTTP layer for REST 7.1: continuation-token lists, Azure's error bodies (the write budget paces)."""
    return HttpLayer("azure", auth=Bearer(), pagination=ContinuationToken(), pacing=(), rules=RULES)


def collection_url(env: ProviderEnv) -> str | None:
    """The organization or collection URL: the token's binding, else ``SYSTEM_COLLECTIONURI``; None when it names
    no organization (``https://dev.azure.com`` alone)."""
    base = env.base_url or AzureSettings.of(env).collection_uri
    if not base:
        return None
    parts = urlsplit(str(base))
    if parts.hostname == "dev.azure.com" and not parts.path.strip("/"):
        return None
    return str(base).rstrip("/")


def rest_config(env: ProviderEnv) -> HttpConfig:
    """The collection URL with the shared HTTP settings (``dev.azure.com`` when nothing names one: every call is
    then refused by :func:`no_target` before it is sent)."""
    return HttpConfig.from_env_config(collection_url(env) or DEFAULT_URL, env.config)


def auth_for_source(source: str | None) -> Auth:
    """Bearer for the pipeline's ``System.AccessToken``; a PAT (``AZURE_DEVOPS_TOKEN``, a credential file) is the
    Basic password of an empty user."""
    return Bearer() if (source or "").endswith(":" + ACCESS_TOKEN_VAR) else Basic(None)


def auth_for(env: ProviderEnv) -> Auth:
    """How this write's token goes on a request (:func:`auth_for_source`)."""
    return auth_for_source(env.credential.source if env.credential is not None else None)


def project_path(env: ProviderEnv) -> str | None:
    """``/<project>/_apis`` (``SYSTEM_TEAMPROJECT``), None when no project is known."""
    project = AzureSettings.of(env).project
    return f"/{quote(project, safe='')}/_apis" if project else None


def repo_path(env: ProviderEnv) -> str | None:
    """``/<project>/_apis/git/repositories/<id>`` of an Azure Repos repository, None for another code host."""
    settings = AzureSettings.of(env)
    project = project_path(env)
    if project is None or (settings.repository_provider or "tfsgit").lower() != "tfsgit":
        return None
    ident = settings.repository_id or settings.repository_name
    return f"{project}/git/repositories/{quote(ident, safe='')}" if ident else None


def no_target(env: ProviderEnv, what: str) -> str | None:
    """Why a call for ``what`` cannot be addressed (no organization or project), else None."""
    if collection_url(env) is None:
        return (f"azure: no organization for {what}: SYSTEM_COLLECTIONURI is not set (configure base_url = "
                "\"https://dev.azure.com/<organization>\" outside Azure Pipelines)")
    if project_path(env) is None:
        return f"azure: no project for {what}: SYSTEM_TEAMPROJECT is not set"
    return None


def values(resp: Response) -> list[dict[str, Any]]:
    """The items of a ``{count, value}`` list (a bare array is taken too)."""
    body = resp.json()
    items = body.get("value") if isinstance(body, dict) else body
    return [i for i in items or [] if isinstance(i, dict)]
