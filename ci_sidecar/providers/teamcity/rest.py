"""The REST tier: a daemon that is not under ``ci-sidecar exec`` sends the same service messages to the build's log
(``POST /app/rest/builds/id:N/log``, ``text/plain``; "service messages are accepted" on newer servers), sets the
status text (``PUT …/statusText``) and the conclusion's tag (``POST …/tags``), and finds artifacts at
``…/artifacts/content/<path>``. https://www.jetbrains.com/help/teamcity/rest/teamcity-rest-api-documentation.html

**Exactly once.** A log has no idempotency key and a lost answer leaves unknown whether TeamCity took a
chunk. So each chunk carries its own receipt: it ends with ``addBuildTag 'ci-sidecar-<run>-<end>'`` (and removes
the previous receipt), TeamCity applies a chunk's messages in order, and the build's tags (``GET …/tags``) say
how far the log got. They are read when an attempt's answer was lost (``inflight`` in the remote state) and
once per run after a daemon starts (a kill -9 loses what was in flight), never otherwise.
"""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import quote

from ci_sidecar.protocol.records import TestResult
from ci_sidecar.reports.teamcity import ServiceMessages, single

from .._http import ApiSession, HttpConfig, HttpLayer, Raw, Rules
from .._results import iter_results
from ..base import Outcome, ProviderEnv, PublishRun, UploadArtifact
from .settings import ARTIFACT_DIR

__all__ = ["CHUNK", "rest_layer", "rest_config", "build_path", "publish_rest", "read_progress", "lookup",
           "artifact_url", "receipt", "DONE"]

#: results per log request (about 150 bytes of messages each)
CHUNK = 500
DONE = "done"
_TEXT = "text/plain; charset=utf-8"


def _error_text(resp: Any) -> str | None:
    """TeamCity answers errors in plain text ("Error has occurred during request processing …")."""
    text = resp.body[:500].decode("utf-8", "replace").strip()
    return text or None


def rest_layer() -> HttpLayer:
    """JSON answers (TeamCity answers XML unless asked), its plain-text errors, no pacing of our own."""
    return HttpLayer("teamcity", default_headers={"Accept": "application/json"}, pacing=(),
                     rules=Rules(error_message=_error_text))


def rest_config(env: ProviderEnv) -> HttpConfig:
    """The server the token is bound to (``[providers.teamcity] base_url``)."""
    return HttpConfig.from_env_config(str(env.base_url).rstrip("/"), env.config)


def build_path(env: ProviderEnv) -> str:
    return f"/app/rest/builds/id:{quote(str(env.ci.build_id), safe='')}"


def receipt(run_id: str, end: int | str) -> str:
    """The tag a log chunk ends with: the run (its id's first 12 characters) and how far the log got."""
    return f"ci-sidecar-{run_id[:12]}-{end}"


async def read_progress(api: ApiSession, env: ProviderEnv, run_id: str) -> int | str | None:
    """How far the build's log got for the run, from its receipt tag: a position, :data:`DONE`, or None."""
    tags = (await api.request("GET", f"{build_path(env)}/tags")).json() or {}
    prefix = receipt(run_id, "")
    found: int | str | None = None
    for tag in tags.get("tag") or []:
        name = str(tag.get("name", ""))
        if not name.startswith(prefix):
            continue
        rest = name[len(prefix):]
        if rest == DONE:
            return DONE
        if rest.isdigit():
            found = max(int(rest), found if isinstance(found, int) else 0)
    return found


async def _post(api: ApiSession, env: ProviderEnv, state: dict[str, Any], text: str, mark: int | str) -> None:
    state["inflight"] = mark  # until the answer comes: unknown whether TeamCity took it
    await api.request("POST", f"{build_path(env)}/log", body=Raw(text.encode(), _TEXT), expect_json=False)
    del state["inflight"]


async def publish_rest(op: PublishRun, env: ProviderEnv, state: dict[str, Any], api: ApiSession,
                       checked: set[tuple[str, ...]]) -> Outcome:
    """Send what the log lacks of the run in chunks; at its end the suite's end, a build problem when it failed,
    the status text and the conclusion's tag. Raises HttpError (the state keeps the progress)."""
    run = op.run
    key = (str(env.base_url), str(env.ci.build_id), run.id)
    if "inflight" in state or key not in checked:
        got = await read_progress(api, env, run.id)
        if got == DONE:
            state.update(sent=run.results_end, logged_end=True)
        elif isinstance(got, int):
            state["sent"] = got
        state.pop("inflight", None)
        checked.add(key)
    messages = ServiceMessages(flow_id=run.id, suite=run.name, artifact_root=f"{ARTIFACT_DIR}/{run.id}")
    sent = int(state.get("sent", 0))
    while sent < run.results_end:
        end = min(run.results_end, sent + CHUNK)
        results: list[TestResult] = [r async for r in iter_results(run, env, sent, end)]
        text = (messages.begin() if sent == 0 else "") + messages.results(results)
        text += (single("removeBuildTag", receipt(run.id, sent)) if sent else "") + single("addBuildTag",
                                                                                          receipt(run.id, end))
        await _post(api, env, state, text, end)
        state["sent"] = sent = end
    if not op.final:
        return Outcome.delivered(tier="service messages (REST)", remote=state,
                                 message=f"teamcity: {sent} results in build {env.ci.build_id}'s log")
    view = {"name": run.name, "conclusion": run.conclusion, "counts": {
        "passed": run.counts.passed, "failed": run.counts.failed, "errors": run.counts.errors,
        "skipped": run.counts.skipped}}
    if not state.get("logged_end"):
        text = (messages.begin() if sent == 0 else "") + messages.suite_end() + messages.problem(view)
        text += (single("removeBuildTag", receipt(run.id, sent)) if sent else "") + single("addBuildTag",
                                                                                          receipt(run.id, DONE))
        await _post(api, env, state, text, DONE)
        state["logged_end"] = True
    # both replace what they set: a retry after a lost answer sets the same again
    await api.request("PUT", f"{build_path(env)}/statusText", body=Raw(messages.status_text(view).encode(), _TEXT),
                      expect_json=False)
    await api.request("POST", f"{build_path(env)}/tags", json_body={"count": 1, "tag": [{"name": messages.tag(view)}]})
    return Outcome.delivered(tier="service messages (REST)", remote=state, url=env.ci.build_url,
                             message=f"teamcity: {sent} results, status text and tag on build {env.ci.build_id}")


def artifact_path(op: UploadArtifact) -> str:
    """Where a run's artifact lands among the build's artifacts."""
    return f"{ARTIFACT_DIR}/{op.run_id}/{op.name.strip('/')}"


def artifact_url(env: ProviderEnv, path: str) -> str:
    return f"{str(env.base_url).rstrip('/')}{build_path(env)}/artifacts/content/{quote(path)}"


async def lookup(op: UploadArtifact, env: ProviderEnv, api: ApiSession) -> Outcome | None:
    """The artifact among the build's artifacts, when TeamCity holds exactly its content (it is uploaded after
    ``publishArtifacts`` or at the build's end)."""
    path = artifact_path(op)
    resp = await api.request("GET", f"{build_path(env)}/artifacts/content/{quote(path)}", expect_json=False,
                             allow=(404,))
    if resp.status == 404 or hashlib.sha256(resp.body).hexdigest() != op.sha256:
        return None
    return Outcome.delivered(url=artifact_url(env, path), tier="build artifacts", remote={"path": path})
