"""The ``notify`` provider: delivers :class:`~ci_sidecar.providers.base.SendNotification` writes, one attempt each.

* **Slack** incoming webhook and **Microsoft Teams** workflow webhook: a JSON POST to the webhook URL (the
  secret); any 2xx is delivered.
* **generic webhook**: the JSON POST carries ``X-CI-Sidecar-Timestamp`` and ``X-CI-Sidecar-Signature:
  sha256=<hex>``, the HMAC-SHA256 under the channel's key of ``"<timestamp>.<body>"`` (a receiver rejects
  old timestamps against replay, and compares in constant time).
* **e-mail**: :mod:`.smtp` in a worker thread.

Every HTTP message carries ``X-CI-Sidecar-Delivery: <idempotency key>``, the same on every attempt: a
receiver that keeps the ids it has seen gets each message once, even when an answer was lost and the write
was sent again. Secrets never appear in an outcome's message (they are redacted there and in every log line).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx
import trio

from ci_sidecar.credentials import redact
from ci_sidecar.protocol.records import ProviderCaps, Tier

from .._http import HttpLayer, Response, classify_exception, classify_response
from .._http.model import HttpConfig
from ..base import Operation, Outcome, ProviderEnv, SendNotification
from .secrets import unpack, url_secrets
from .smtp import send_email

__all__ = ["NotifyProvider", "sign"]

DELIVERY_HEADER = "X-CI-Sidecar-Delivery"
SIGNATURE_HEADER = "X-CI-Sidecar-Signature"
TIMESTAMP_HEADER = "X-CI-Sidecar-Timestamp"


def sign(key: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" under key>``."""
    digest = hmac.new(key.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class NotifyProvider:
    """Notification channels; not a CI (it has no run, status, comment or artifact tier)."""

    name: ClassVar[str] = "notify"

    def __init__(self) -> None:
        self._http = HttpLayer("notify", pacing=())

    def capabilities(self, env: ProviderEnv) -> ProviderCaps:
        none = Tier(kind="none", note="a notification channel")
        return ProviderCaps(provider=self.name, test_run=none, build_status=none, pr_comment=none, artifacts=none,
                            limits={})

    async def deliver(self, op: Operation, env: ProviderEnv, remote: dict[str, Any]) -> Outcome:
        if not isinstance(op, SendNotification):
            return Outcome.unsupported(f"the notify provider cannot {type(op).__name__}")
        secrets = unpack(env.token)
        key = env.idempotency_key or ""
        if op.kind == "email":
            outcome = await trio.to_thread.run_sync(send_email, op, secrets.get("password"), f"<{key}@ci-sidecar>")
        else:
            outcome = await self._post(op, secrets, key, env)
        url = secrets.get("url")
        return _redacted(outcome, [*secrets.values(), *(url_secrets(url) if url else ())])

    async def _post(self, op: SendNotification, secrets: dict[str, str], key: str, env: ProviderEnv) -> Outcome:
        url = secrets.get("url")
        if not url or not url.startswith(("https://", "http://")):
            return Outcome.refused(f"channel {op.channel!r} has no webhook URL (its secret is missing or not a URL)")
        problem = _url_problem(url)
        if problem is not None:  # no attempt can succeed: say so now instead of retrying (never quoting the URL)
            return Outcome.refused(f"channel {op.channel!r}'s webhook URL {problem}")
        body = json.dumps(op.body, separators=(",", ":"), ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json; charset=utf-8", DELIVERY_HEADER: key}
        if op.kind == "webhook" and secrets.get("key"):
            stamp = str(int(time.time()))
            headers[TIMESTAMP_HEADER] = stamp
            headers[SIGNATURE_HEADER] = sign(secrets["key"], stamp, body)
        client = self._http.client(HttpConfig.from_env_config(url, env.config))
        try:
            resp = await client.post(url, content=body, headers=headers)
        except (httpx.HTTPError, OSError) as exc:
            return classify_exception(exc)
        answer = Response(status=resp.status_code, headers=resp.headers, body=resp.content[:4096], url=url)
        if 300 <= resp.status_code < 400:
            return Outcome.refused(f"the {op.kind} webhook answered a redirect (HTTP {resp.status_code}): "
                                   "configure the final URL")
        failed = classify_response(answer)
        if failed is not None:
            return failed
        return Outcome.delivered(remote={"status": resp.status_code}, tier=op.kind)

    async def aclose(self) -> None:
        await self._http.aclose()


def _url_problem(url: str) -> str | None:
    """What makes a webhook URL unusable (no host, a port outside 1..65535), None when nothing does."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "has a port outside 1..65535 or a malformed host"
    if not parts.hostname:
        return "has no host"
    if port == 0:
        return "has port 0"
    return None


def _redacted(outcome: Outcome, secrets: Any) -> Outcome:
    """The outcome with every secret part (the webhook URL above all) removed from its message."""
    values = [s for s in secrets if s]
    if not values or not outcome.message:
        return outcome
    outcome.message = redact(outcome.message, values)
    return outcome
