"""An :class:`~ci_sidecar.providers._http.ApiSession` whose requests go through the delivery layer's write gate.

Mutating requests wait for their token's turn (:meth:`WriteGate.acquire`) and release it when answered;
a write the budget holds back raises :class:`HttpError` with a ``deferred`` Outcome, so provider code
handles it like any other failed request (and reports how far it got in ``remote``). Every answer's
headers go back to the gate, which learns the budget from them and pauses the token on a rate limit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._http import ApiSession, Auth, HttpConfig, HttpError, HttpLayer, Response
from .base import Outcome
from .writes import WriteDeferred, WriteGate

__all__ = ["GatedSession", "api_session"]

_MUTATING = ("POST", "PATCH", "PUT", "DELETE")


def api_session(layer: HttpLayer, config: HttpConfig, token: str | None, say: Callable[[str], None] | None,
                gate: WriteGate | None, *, auth: Auth | None = None) -> ApiSession:
    """A session for one attempt: through ``gate`` when the delivery layer gave one, else the layer's own pacing;
    ``auth`` when this token goes in another way than the layer's (GitLab's ``JOB-TOKEN``)."""
    if gate is None:
        return layer.session(config, token, say, auth=auth)
    return GatedSession(layer, config, token, say, gate, auth=auth or layer.auth)


class GatedSession(ApiSession):
    """Requests of one delivery attempt, within the write budget."""

    def __init__(self, layer: HttpLayer, config: HttpConfig, token: str | None,
                 say: Callable[[str], None] | None, gate: WriteGate, *, auth: Auth) -> None:
        super().__init__(layer, config, token, say, auth=auth)
        self._gate = gate

    async def request(self, method: str, path: str, *, paced: bool | None = None, **kw: Any) -> Response:
        """One request; a mutating one waits for the token's turn (the gate replaces the layer's pacer)."""
        mutating = method.upper() in _MUTATING if paced is None else paced
        if not mutating:
            self._gate.count_read()
            return await self._observed(method, path, kw)
        try:
            await self._gate.acquire()
        except WriteDeferred as deferred:
            raise HttpError(Outcome.deferred(f"{method} {path} held back: {deferred.reason}",
                                             deferred.retry_after)) from None
        try:
            return await self._observed(method, path, kw)
        finally:
            self._gate.release()

    async def _observed(self, method: str, path: str, kw: dict[str, Any]) -> Response:
        try:
            resp = await super().request(method, path, paced=False, **kw)
        except HttpError as err:
            if err.response is not None:
                outcome = err.outcome
                limited = outcome.kind == "retry" and outcome.status in (403, 429)
                self._gate.observe(err.response.headers, limited=limited, retry_after=outcome.retry_after)
            raise
        self._gate.observe(resp.headers)
        return resp
