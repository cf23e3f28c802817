"""A run as an Azure DevOps test run: created once, its results added as they stream in (:mod:`.results`),
completed at the end; the build's **Tests** tab shows it and ``webAccessUrl`` is its details URL.

Exactly once, across retries, lost answers and restarts: ``remote`` keeps the run's id. A create whose answer was
lost, or that a write resumed from the journal may have sent (a daemon killed mid-attempt), is looked for first
among the build's runs by the marker in its ``comment`` (the ci-sidecar run id).
"""

from __future__ import annotations

from typing import Any

from .._http import ApiSession, HttpError
from .._render import clip_chars, iso_utc, utc_stamp
from ..base import ProviderEnv, PublishRun
from ._api import V, project_path, values
from .settings import AzureSettings

__all__ = ["ensure_run", "complete_run", "find_run", "read_test_run", "run_marker"]


def run_marker(run_id: str) -> str:
    """The comment a test run is found again by (the ci-sidecar run id is unique)."""
    return f"Published by ci-sidecar (run {run_id})"


def _build(env: ProviderEnv) -> str | None:
    build = AzureSettings.of(env).build_id or env.ci.build_id
    return build if build and build.isdigit() else None


async def find_run(api: ApiSession, env: ProviderEnv, run_id: str) -> dict[str, Any] | None:
    """The test run made for the ci-sidecar run ``run_id`` (its marker in the comment), among the build's
    automated runs."""
    project = project_path(env)
    build = _build(env)
    params: dict[str, Any] = {**V, "automated": "true", "includeRunDetails": "true", "$top": 100}
    if build:
        params["buildUri"] = AzureSettings.of(env).build_uri or f"vstfs:///Build/Build/{build}"
    marker = run_marker(run_id)
    skip = 0
    while skip < 10_000:  # $top/$skip paging (Runs_List takes no continuation token)
        found = values(await api.request("GET", f"{project}/test/runs", params={**params, "$skip": skip}))
        for item in found:
            if item.get("comment") == marker:
                return item
        if len(found) < 100:
            return None
        skip += 100
    return None


async def ensure_run(op: PublishRun, env: ProviderEnv, state: dict[str, Any], api: ApiSession, *,
                     look: bool = False) -> int:
    """The Azure id of the run's test run, created (InProgress, automated, on the build) when there is none
    (``look``: the state may not know of one a lost attempt created)."""
    if state.get("run_id"):
        return int(state["run_id"])
    run = op.run
    if state.get("creating") or look:  # a create whose answer, or whose daemon, was lost
        found = await find_run(api, env, run.id)
        if found is not None:
            state.pop("creating", None)
            state.update(run_id=found["id"], web_url=found.get("webAccessUrl"))
            return int(found["id"])
    body: dict[str, Any] = {"name": clip_chars(run.name, 256), "automated": True, "state": "InProgress",
                            "startDate": iso_utc(run.start_time) or utc_stamp(), "comment": run_marker(run.id)}
    if build := _build(env):
        body["build"] = {"id": build}
    state["creating"] = True
    try:
        made = (await api.request("POST", f"{project_path(env)}/test/runs", params=V, json_body=body)).json() or {}
    except HttpError as err:
        if err.outcome.kind == "deferred":
            state.pop("creating", None)
        raise
    state.pop("creating", None)
    state.update(run_id=made["id"], web_url=made.get("webAccessUrl"))
    return int(made["id"])


async def complete_run(op: PublishRun, env: ProviderEnv, state: dict[str, Any], api: ApiSession,
                       run_id: int) -> dict[str, Any]:
    """``PATCH`` the run Completed (Aborted when cancelled); the run as Azure answers."""
    run = op.run
    body: dict[str, Any] = {"state": "Aborted" if run.conclusion == "cancelled" else "Completed",
                            "completedDate": iso_utc(run.end_time) or utc_stamp()}
    made = (await api.request("PATCH", f"{project_path(env)}/test/runs/{run_id}", params=V,
                              json_body=body)).json() or {}
    state["completed"] = True
    if made.get("webAccessUrl"):
        state["web_url"] = made["webAccessUrl"]
    return made


async def read_test_run(env: ProviderEnv, api: ApiSession, state: dict[str, Any]) -> dict[str, Any] | None:
    """The test run as Azure shows it: ``{"status", "conclusion", "url", "state", totals…}``; None when gone."""
    run_id = state.get("run_id")
    if not run_id:
        return None
    resp = await api.request("GET", f"{project_path(env)}/test/runs/{int(run_id)}", params=V, allow=(404,))
    if resp.status == 404:
        return None
    made = resp.json() or {}
    azure_state = str(made.get("state") or "")
    done = azure_state in ("Completed", "Aborted", "NeedsInvestigation")
    total, passed = int(made.get("totalTests") or 0), int(made.get("passedTests") or 0)
    conclusion = None
    if done:  # Azure counts failed results that nobody analysed yet as ``unanalyzedTests``
        conclusion = "cancelled" if azure_state == "Aborted" else \
            "failure" if int(made.get("unanalyzedTests") or 0) else "success"
    return {"status": "completed" if done else "in_progress", "conclusion": conclusion,
            "url": made.get("webAccessUrl") or state.get("web_url"), "state": azure_state, "total_tests": total,
            "passed_tests": passed, "results_sent": state.get("results_sent", 0), "final": done}
