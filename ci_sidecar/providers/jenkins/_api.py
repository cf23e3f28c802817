"""What every Jenkins module shares: the build's path under the API (folders, multibranch jobs, names
URL-encoded), its web address, how Jenkins' error pages read, and the one place an ``HttpLayer`` is described.

Jenkins answers errors with HTML pages (``<title>Error 404 Not Found</title>``, "No valid crumb was included in the
request") or, from some plugins, JSON; both are read for the words a user can act on.
"""

from __future__ import annotations

import html
import json
import re
from urllib.parse import quote

from .._http import Crumb, HttpConfig, HttpLayer, Response, Rules, json_error_message
from ..base import ProviderEnv
from .settings import JenkinsSettings

__all__ = ["RULES", "NO_COMMENTS", "Auths", "rest_layer", "rest_config", "build_path", "build_web_url", "error_message",
           "missing_build"]

NO_COMMENTS = ("Jenkins has no pull-request comments: they go to the code host (its token, e.g. GITHUB_TOKEN, "
               "or scm_provider); meanwhile the comment is in the local output folder")

_TITLE = re.compile(r"<title>\s*(.*?)\s*</title>", re.I | re.S)
_HEADING = re.compile(r"<h[12][^>]*>\s*(.*?)\s*</h[12]>", re.I | re.S)
_TAG = re.compile(r"<[^>]+>")


def _text(fragment: str) -> str:
    return " ".join(html.unescape(_TAG.sub(" ", fragment)).split())


def error_message(resp: Response) -> str | None:
    """Jenkins' words: a JSON body's ``message``, else the HTML page's title (``Error 403 No valid crumb was
    included in the request``) or first heading, else a short plain-text body."""
    found = json_error_message(resp)
    if found:
        return found
    try:
        body = resp.body[:20_000].decode("utf-8", "replace")
    except AttributeError:
        return None
    if body.lstrip().startswith("{"):
        try:
            json.loads(body)
            return None  # JSON without a message: the layer quotes it
        except ValueError:
            pass
    for found in (_TITLE.search(body), _HEADING.search(body)):  # Jetty puts the reason in both: the title is enough
        words = _text(found.group(1)) if found else ""
        if words:
            return words[:500]
    text = _text(body)
    return text[:500] or None


#: Jenkins' hooks: its error pages; the defaults otherwise (no rate limits; 5xx and resets retry)
RULES = Rules(error_message=error_message)


def rest_layer() -> HttpLayer:
    """The HTTP layer for the Remote Access API: Jenkins' error pages, no pacing (Jenkins has no rate limits);
    each user's requests carry their own :class:`Crumb` auth (see :class:`Auths`)."""
    return HttpLayer("jenkins", auth=Crumb(None), pacing=(), rules=RULES)


class Auths:
    """One :class:`Crumb` per Jenkins user: Basic ``user:API token``, and for writes the crumb with the session
    cookie it came with (kept per token, fetched before the first write, refreshed once after a 403)."""

    def __init__(self) -> None:
        self._by_user: dict[str | None, Crumb] = {}

    def of(self, env: ProviderEnv) -> Crumb:
        auth = self._by_user.get(env.username)
        if auth is None:
            auth = self._by_user[env.username] = Crumb(env.username)
        return auth


def rest_config(env: ProviderEnv) -> HttpConfig | None:
    """``base_url`` from the token's binding (a configured ``base_url``, else ``JENKINS_URL``); None without one."""
    base = env.base_url or JenkinsSettings.of(env).jenkins_url
    return HttpConfig.from_env_config(str(base).rstrip("/"), env.config) if base else None


def build_path(env: ProviderEnv) -> str | None:
    """``/job/a/job/b/job/PR-7/12`` from ``JOB_NAME`` and ``BUILD_NUMBER``: each folder or job name is one URL
    segment, percent-encoded (``JOB_NAME`` already holds a multibranch branch as ``feature%2Fx``, whose URL
    segment is ``feature%252Fx``). None when the job or its number is unknown."""
    settings = JenkinsSettings.of(env)
    name = settings.job_name or env.ci.job
    number = settings.build_number or env.ci.build_number
    if not name or not number or not str(number).isdigit():
        return None
    parts = [p for p in name.strip("/").split("/") if p]
    return "".join(f"/job/{quote(p, safe='')}" for p in parts) + f"/{int(number)}"


def build_web_url(env: ProviderEnv) -> str | None:
    """The build's page, ending in ``/``: ``BUILD_URL``, else the API base plus :func:`build_path`."""
    settings = JenkinsSettings.of(env)
    url = settings.build_url or env.ci.build_url
    if url and url.startswith(("https://", "http://")):
        return url.rstrip("/") + "/"
    base, path = env.base_url or settings.jenkins_url, build_path(env)
    return f"{str(base).rstrip('/')}{path}/" if base and path else None


def missing_build(env: ProviderEnv) -> str | None:
    """Why no build can be addressed (no Jenkins URL, no job or number), else None."""
    if rest_config(env) is None:
        return "no Jenkins URL (JENKINS_URL or [providers.jenkins] base_url)"
    if build_path(env) is None:
        return "no build to write to (JOB_NAME and BUILD_NUMBER are not set)"
    return None
