"""The tail every remote provider's ``deliver`` shares: pick the handler for the operation, turn an
:class:`HttpError` into its Outcome without losing what the attempt learned, redact the message.

A provider's ``deliver`` opens its session and calls :func:`deliver_with` with one handler per operation
type it does::

    async def deliver(self, op, env, remote):
        api = self._session(env)
        return await deliver_with("acme", op, remote, api, {
            PublishRun: lambda op, state: publish(op, env, state, api),
            SetStatus: lambda op, state: set_status(op, env, state, api),
        })

Each handler gets the operation and ``state``, a copy of ``remote`` it may fill in as it goes (ids, how many
annotations were sent); when a request fails midway that copy is what the outbox keeps, so the next attempt
resumes instead of repeating. An operation with no handler is ``unsupported``, saying which.

``get_artifact_url``'s lookups go through :func:`lookup_or_none`: a failed request there means "no URL known",
logged (redacted) under the provider's logger, never an error for the client.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ._http import ApiSession, HttpError
from .base import Operation, Outcome

__all__ = ["Handler", "deliver_with", "lookup_or_none"]

#: does one operation: ``(op, state) -> Outcome``; may raise :class:`HttpError`
Handler = Callable[[Any, dict[str, Any]], Awaitable[Outcome]]


async def deliver_with(provider: str, op: Operation, remote: dict[str, Any] | None, api: ApiSession,
                       handlers: Mapping[type, Handler]) -> Outcome:
    """One attempt of *op* by the first handler whose type it is an instance of; provider-side failures come back
    as Outcomes (keeping the attempt's ``state`` when the failure names none), with *api*'s secrets redacted."""
    state = dict(remote or {})
    handler = next((h for kind, h in handlers.items() if isinstance(op, kind)), None)
    try:
        if handler is None:
            outcome = Outcome.unsupported(f"{provider}: unknown operation {type(op).__name__}")
        else:
            outcome = await handler(op, state)
    except HttpError as err:
        outcome = err.outcome
        if outcome.remote is None:
            outcome.remote = state
    outcome.message = api.redact(outcome.message)
    return outcome


async def lookup_or_none(provider: str, what: str, name: str, api: ApiSession,
                         lookup: Awaitable[Outcome | None]) -> Outcome | None:
    """Await *lookup* (a provider's search for an artifact called *name*); when its request fails, log
    ``"<provider>: <what> of <name> failed: <reason>"`` at INFO, redacted by *api*, and answer None (not found)."""
    try:
        return await lookup
    except HttpError as err:
        logging.getLogger(f"ci_sidecar.providers.{provider}").info(
            "%s: %s of %s failed: %s", provider, what, name, api.redact(err.outcome.message))
        return None
