"""A run's results in its Azure DevOps test run: added while they stream in, ≤ 1,000 per request, each test once —
a test that ran more than once (a rerun) is one result whose attempts are its sub-results, as Azure shows reruns.

The records are read in chunks of ≤ 1,000 positions of the run's record store. Within a chunk the attempts of a
test become one result (``resultGroupType: "rerun"``, one ``subResults`` entry per attempt, ``sequenceId`` the
attempt number; the result's outcome is the latest attempt's, so a flaky test is Passed and the Tests tab counts no
failure for it). An attempt whose test was already added by an earlier chunk updates that result instead
(``PATCH test/Runs/{id}/results`` by its id, every attempt read again from the record store): ``remote["reruns"]``
keeps the result ids of the tests added as failed or errored, the ones a runner reruns. Updates are whole (the
outcome and all sub-results), so sending one again changes nothing.

Exactly once across retries, lost answers and restarts: ``remote`` keeps how many positions were sent
(``results_sent``) and how many results the test run has (``posted``); a chunk is sent as its updates, then one
POST of its new results, and only then counted. A POST whose answer was lost is looked for (the results it would
have added, read back with their ids) before it is sent again. A write resumed from the journal (a daemon killed
mid-attempt leaves no trace of what that attempt sent) first reads the results past ``posted``: the chunks they
are, test for test and attempt for attempt, are counted as sent instead of being added again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from ci_sidecar.protocol.records import TestResult

from .._http import ApiSession, HttpError
from .._render import clip_chars
from .._results import iter_results
from ..base import ProviderEnv, PublishRun
from ._api import RESULTS_PER_POST, TEXT_CHARS, V, project_path, values

__all__ = ["send_results", "as_result", "as_sub_result", "test_id", "OUTCOMES"]

#: our statuses → Azure's ``outcome``
OUTCOMES = {"passed": "Passed", "failed": "Failed", "error": "Error", "skipped": "NotExecuted"}
#: outcomes a runner reruns: a result added with one of them may get more attempts later
_RERUNNABLE = ("failed", "error")
#: results per Results_List page when details (sub-results) are included
_PAGE = 200


def test_id(result: TestResult) -> str:
    """A stable short identity of the test (suite, classname, name) an attempt belongs to."""
    raw = f"{result.suite or ''}\x1f{result.classname or ''}\x1f{result.name}".encode()
    return hashlib.blake2b(raw, digest_size=8).hexdigest()


def _ms(result: TestResult) -> float:
    return round((result.duration or 0.0) * 1000, 3)


def _by_attempt(attempts: Iterable[TestResult]) -> list[TestResult]:
    """One record per attempt number (the later record wins), in attempt order."""
    one = {a.attempt or 1: a for a in attempts}
    return [one[n] for n in sorted(one)]


def as_sub_result(result: TestResult) -> dict[str, Any]:
    """One attempt of a rerun test as Azure's ``TestSubResult`` (``durationInMs`` is an integer there)."""
    n = result.attempt or 1
    item: dict[str, Any] = {"sequenceId": n, "displayName": f"attempt {n}", "outcome": OUTCOMES[result.status],
                            "durationInMs": round(_ms(result))}
    if result.message:
        item["errorMessage"] = clip_chars(result.message, TEXT_CHARS)
    if result.details:
        item["stackTrace"] = clip_chars(result.details, TEXT_CHARS)
    return item


def _outcome_fields(attempts: list[TestResult]) -> dict[str, Any]:
    """What the attempts decide: the latest one's outcome and error, the time of all; sub-results when rerun."""
    latest = attempts[-1]
    rerun = len(attempts) > 1
    item: dict[str, Any] = {"outcome": OUTCOMES[latest.status], "state": "Completed",
                            "durationInMs": round(sum(_ms(a) for a in attempts), 3)}
    if latest.message or rerun:  # an update clears the error of an earlier attempt that the latest one passed
        item["errorMessage"] = clip_chars(latest.message or "", TEXT_CHARS)
    if latest.details or rerun:
        item["stackTrace"] = clip_chars(latest.details or "", TEXT_CHARS)
    if rerun:
        item["resultGroupType"] = "rerun"
        item["subResults"] = [as_sub_result(a) for a in attempts]
    return item


def as_result(attempts: list[TestResult]) -> dict[str, Any]:
    """A test as Azure's ``TestCaseResult``: its attempts in order, one attempt a plain result, more a rerun."""
    attempts = _by_attempt(attempts)
    latest = attempts[-1]
    storage = latest.file or latest.suite or latest.classname
    item: dict[str, Any] = {
        "testCaseTitle": clip_chars(latest.name, 256),
        "automatedTestName": clip_chars(f"{latest.classname}.{latest.name}" if latest.classname else latest.name,
                                        512),
    }
    if storage:
        item["automatedTestStorage"] = clip_chars(storage, 512)
    item.update(_outcome_fields(attempts))
    if len(attempts) == 1 and (latest.attempt or 1) > 1:
        # a later attempt of a test whose earlier one was added as passed (no failure to group it with)
        item["comment"] = f"attempt {latest.attempt} (rerun)"
    return item


class _Chunk:
    """One chunk's plan: the new results (grouped per test) and the updates of results added earlier."""

    def __init__(self, records: list[TestResult], reruns: dict[str, int]) -> None:
        self.new: dict[str, list[TestResult]] = {}
        self.updates: dict[str, list[TestResult]] = {}
        #: new tests whose result on Azure holds attempts past this chunk (found there after a restart)
        self.later: set[str] = set()
        for r in records:
            key = test_id(r)
            (self.updates if key in reruns else self.new).setdefault(key, []).append(r)

    def bookkeep(self, reruns: dict[str, int], ids: list[int]) -> None:
        """Remember the new results a later attempt may update; forget the tests whose latest attempt passed."""
        for (key, attempts), rid in zip(self.new.items(), ids, strict=True):
            if _by_attempt(attempts)[-1].status in _RERUNNABLE or key in self.later:
                reruns[key] = int(rid)
        for key, attempts in self.updates.items():
            if _by_attempt(attempts)[-1].status not in _RERUNNABLE:
                reruns.pop(key, None)


async def _earlier(op: PublishRun, env: ProviderEnv, before: int, keys: set[str]) -> dict[str, list[TestResult]]:
    """The attempts of the tests ``keys`` among the records before position ``before`` (one pass)."""
    found: dict[str, list[TestResult]] = {k: [] for k in keys}
    async for r in iter_results(op.run, env, 0, before):
        if (key := test_id(r)) in found:
            found[key].append(r)
    return found


async def _update(op: PublishRun, env: ProviderEnv, api: ApiSession, path: str, chunk: _Chunk, start: int,
                  reruns: dict[str, int]) -> None:
    """PATCH the results this chunk adds attempts to, whole: the outcome and every sub-result."""
    earlier = await _earlier(op, env, start, set(chunk.updates))
    body = [{"id": reruns[key], **_outcome_fields(_by_attempt(earlier[key] + attempts))}
            for key, attempts in chunk.updates.items()]
    await api.request("PATCH", path, params=V, json_body=body)


def _is(found: dict[str, Any], attempts: list[TestResult]) -> bool:
    """Whether a result read back is the one ``attempts`` make: the same test, and these attempts among its
    sub-results (a later update may have added more), or a plain result for one attempt."""
    made = as_result(attempts)
    if (found.get("automatedTestName"), found.get("automatedTestStorage")) != (made["automatedTestName"],
                                                                             made.get("automatedTestStorage")):
        return False
    numbers = {a.attempt or 1 for a in attempts}
    subs = found.get("subResults")
    return {s.get("sequenceId") for s in subs} >= numbers if subs else len(numbers) == 1


def _prefix(records: list[TestResult], found: list[dict[str, Any]], reruns: dict[str, int]) -> int | None:
    """How many of ``records`` a POST sent whose new results were the first of ``found``: all of them when they
    make fewer results (a whole chunk, more after it), else the shortest prefix whose new results are all of
    ``found`` (an attempt it leaves out goes again as an update, which changes nothing: see ``_Chunk.later``)."""
    whole = _Chunk(records, reruns)
    if len(whole.new) < len(found):
        return len(records) if all(map(_is, found, whole.new.values())) else None
    new: dict[str, list[TestResult]] = {}
    for n, r in enumerate(records, 1):
        if (key := test_id(r)) not in reruns:
            new.setdefault(key, []).append(r)
        if len(new) == len(found) and all(map(_is, found, new.values())):
            return n
    return None


async def _unjournaled(op: PublishRun, env: ProviderEnv, api: ApiSession, path: str, sent: int, posted: int,
                       reruns: dict[str, int]) -> list[tuple[_Chunk, int, list[int]]]:
    """The chunks from position ``sent`` that an attempt nobody journaled added (its results past ``posted``):
    each with its end and its results' ids; none when the test run holds nothing past ``posted``."""
    found: list[dict[str, Any]] = []
    while True:  # pages of 200: Results_List's most with details included
        page = values(await api.request("GET", path, params={**V, "$skip": posted + len(found), "$top": _PAGE,
                                                             "detailsToInclude": "subResults"}))
        found += page
        if len(page) < _PAGE:
            break
    chunks = []
    while found and sent < op.run.results_end:
        end = min(op.run.results_end, sent + RESULTS_PER_POST)
        records = [r async for r in iter_results(op.run, env, sent, end)]
        n = _prefix(records, found, reruns)
        if not n:  # not what these records make: nothing to adopt (the records decide what is sent)
            break
        chunk = _Chunk(records[:n], reruns)
        ids = [int(r["id"]) for r in found[:len(chunk.new)]]
        # their later attempts go as updates (whole, so what Azure holds already changes nothing)
        chunk.later = {key for (key, attempts), f in zip(chunk.new.items(), found)
                       if len(f.get("subResults") or []) > len(_by_attempt(attempts))}
        chunks.append((chunk, sent + n, ids))
        reruns = dict(reruns)
        chunk.bookkeep(reruns, ids)
        sent, found = sent + n, found[len(chunk.new):]
    return chunks


async def _landed(api: ApiSession, path: str, at: int, n: int) -> list[int] | None:
    """The ids of the ``n`` results after the first ``at`` when they are there (a POST whose answer was lost)."""
    found = values(await api.request("GET", path, params={**V, "$skip": at, "$top": n}))
    return [int(r["id"]) for r in found] if len(found) == n else None


async def _chunk(op: PublishRun, env: ProviderEnv, start: int, end: int, reruns: dict[str, int]) -> _Chunk:
    return _Chunk([r async for r in iter_results(op.run, env, start, end)], reruns)


async def send_results(op: PublishRun, env: ProviderEnv, state: dict[str, Any], api: ApiSession,
                       run_id: int, *, look: bool = False) -> int:
    """Send the records not sent yet, chunk by chunk; how many positions were sent in this attempt. ``look``: the
    state may be older than the test run (a write resumed from the journal), so first adopt what is there."""
    path = f"{project_path(env)}/test/Runs/{run_id}/results"
    run = op.run
    sent = int(state.get("results_sent") or 0)
    posted = int(state.get("posted", sent))  # older states: one result per record
    reruns: dict[str, int] = dict(state.get("reruns") or {})
    before = sent
    if env.read_results is None:
        return 0

    def count(chunk: _Chunk, end: int, ids: list[int]) -> None:
        nonlocal sent, posted
        chunk.bookkeep(reruns, ids)
        sent, posted = end, posted + len(ids)
        state.update(results_sent=sent, posted=posted, reruns=dict(reruns))
        state.pop("inflight", None)

    if inflight := state.get("inflight"):
        start, n = int(inflight["start"]), int(inflight["n"])
        # a state from before reruns were grouped has one result per position
        end, at = int(inflight.get("end", start + n)), int(inflight.get("at", start))
        ids = await _landed(api, path, at, n)
        if ids is not None and start == sent:  # it landed, after the chunk's updates
            count(await _chunk(op, env, start, end, reruns), end, ids)
        state.pop("inflight", None)
    if look:
        for chunk, end, ids in await _unjournaled(op, env, api, path, sent, posted, reruns):
            count(chunk, end, ids)
    while sent < run.results_end:
        end = min(run.results_end, sent + RESULTS_PER_POST)
        chunk = await _chunk(op, env, sent, end, reruns)
        if chunk.updates:
            await _update(op, env, api, path, chunk, sent, reruns)
        ids: list[int] = []
        if chunk.new:
            body = [as_result(attempts) for attempts in chunk.new.values()]
            state["inflight"] = {"start": sent, "end": end, "at": posted, "n": len(body)}
            try:
                made = values(await api.request("POST", path, params=V, json_body=body))
            except HttpError as err:
                if err.outcome.kind == "deferred" or err.status in (429, 503):
                    state.pop("inflight", None)  # refused before anything was added: nothing to look for
                raise
            ids = [int(r["id"]) for r in made]
        count(chunk, end, ids)
    return sent - before
