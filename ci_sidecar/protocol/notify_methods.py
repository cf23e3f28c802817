"""Params and results of ``send_notifications`` (docs/notifications.md), and its entry in the method table."""

from __future__ import annotations

from typing import Any, Literal

from .records import ErrorInfo, Wire
from .spec import MethodSpec, WaitS

__all__ = ["ChannelResult", "NOTIFY_METHODS", "SendNotificationsParams"]


class SendNotificationsParams(Wire):
    """``send_notifications``: a finished run's message to its channels (every configured one when ``channels``
    is absent; an entry names a channel or a kind: ``slack``, ``teams``, ``webhook``, ``email``, ``code_host``)."""

    test_run_id: str
    channels: list[str] | None = None
    #: render the messages and return them; nothing is sent or recorded
    dry_run: bool = False
    wait: bool = False
    wait_s: WaitS = 30.0


class ChannelResult(Wire):
    """What happened for one channel. ``deduplicated``: the run had already notified it (one message per run and
    channel); ``message``: the rendered message (``dry_run``)."""

    ok: bool
    kind: str
    state: Literal["pending", "delivered", "failed", "dry_run"]
    error: ErrorInfo | None = None
    deduplicated: bool = False
    message: dict[str, Any] | None = None


NOTIFY_METHODS = (
    MethodSpec("send_notifications", SendNotificationsParams, dict[str, ChannelResult],
               "Notify a finished run's channels (Slack, Teams, webhook, e-mail, the code host) through the "
               "outbox: one message per run and channel.", run_scoped=True, errors=(-31001, -31003, -31004)),
)
