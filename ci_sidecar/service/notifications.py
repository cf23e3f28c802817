"""Notifications of finished runs: rules evaluated at completion, ``send_notifications``, and the channels' secrets.

A message is rendered when it is recorded and goes through the outbox like any provider write (journaled,
retried, delivered after a restart). Each run notifies each channel at most once: the run keeps which channels
it notified (journaled with the outbox write in one commit), and a later rule or call for the same channel
answers with that write's state (``deduplicated``). The code-host channel is a commit status plus a sticky PR
comment through the run's own providers.

Secrets (a webhook URL, a signing key, an SMTP password) are looked up in the client's environment, then the
daemon's, then ``$CREDENTIALS_DIRECTORY``; they live in memory only (the journal keeps a fingerprint), and
every part is registered for log redaction.
"""

from __future__ import annotations

import fnmatch
import logging
import os
from collections.abc import Mapping
from urllib.parse import urlsplit

from ci_sidecar.config import ChannelConfig, Config, NotificationsConfig
from ci_sidecar.credentials import Credential, Secret, fingerprint
from ci_sidecar.credentials import _read_credential as read_credential
from ci_sidecar.logs import register_secret
from ci_sidecar.protocol import errors as E
from ci_sidecar.protocol.notify_methods import ChannelResult, SendNotificationsParams
from ci_sidecar.protocol.records import DeliveryState, ErrorInfo
from ci_sidecar.providers.base import PostComment, SendNotification, SetStatus, SmtpSettings
from ci_sidecar.providers.notify.secrets import pack, url_secrets
from ci_sidecar.providers.settings import network_settings
from ci_sidecar.reports.notify import (
    NotifyContext,
    code_host_message,
    email_message,
    slack_message,
    teams_message,
    webhook_message,
)

from .model import NotifiedChannel
from .runs import RunService, RunState
from .session_context import SessionContext

__all__ = ["Notifications", "channel_credential", "fires", "matching_channels"]

log = logging.getLogger("ci_sidecar.notify")

PROVIDER = "notify"
_FAILED = ("failure", "timed_out")
_DEFAULT_PORTS = {"starttls": 587, "tls": 465, "none": 25}


def fires(when: str, conclusion: str | None, previous: str | None) -> bool:
    """Whether a rule's ``when`` holds for a run's conclusion and its branch's previous conclusion."""
    if when == "always":
        return True
    if when == "on_failure":
        return conclusion in _FAILED
    if when == "on_fixed":
        return conclusion == "success" and previous in _FAILED
    return previous is not None and conclusion != previous  # on_change


def matching_channels(config: NotificationsConfig, branch: str | None, conclusion: str | None,
                      previous: str | None) -> dict[str, str]:
    """Channel → the rule (its ``when``) that selects it, first rule first."""
    out: dict[str, str] = {}
    for rule in config.rules:
        if rule.branches and not any(fnmatch.fnmatchcase(branch or "", p) for p in rule.branches):
            continue
        if fires(rule.when, conclusion, previous):
            for name in rule.channels or list(config.channels):
                out.setdefault(name, rule.when)
    return out


def _find(env: Mapping[str, str], var: str | None, file: str | None, credentials_dir: str | None) -> tuple[str, str] | None:
    if var and env.get(var):
        return env[var].strip(), f"env:{var}"
    if file and credentials_dir:
        value = read_credential(credentials_dir, file)
        if value:
            return value, f"credentials:{file}"
    return None


def channel_credential(name: str, channel: ChannelConfig, envs: list[Mapping[str, str]],
                       credentials_dir: str | None) -> Credential | None:
    """The channel's secrets as one credential (blocking: may read files), from the first environment that has
    them; None when a secret the channel needs is missing."""
    def find(var: str | None, file: str | None) -> tuple[str, str] | None:
        for env in envs:
            got = _find(env, var, file, None)
            if got:
                return got
        return _find({}, None, file, credentials_dir)

    url = find(channel.url_env, channel.url_credential)
    key = find(channel.secret_env, channel.secret_credential)
    password = find(channel.password_env, channel.password_credential)
    if channel.kind in ("slack", "teams", "webhook"):
        if url is None:
            return None
        parts = urlsplit(url[0])
        bound, source = f"{parts.scheme}://{parts.hostname}", url[1]
    elif channel.kind == "email":
        if channel.smtp_username and password is None:
            return None
        bound, source = f"smtp://{channel.smtp_host}", password[1] if password else "none"
    else:
        return None
    secret = pack(url=url[0] if url else None, key=key[0] if key else None, password=password[0] if password else None)
    for part in (url, key, password):
        if part:
            register_secret(part[0])
    for piece in url_secrets(url[0]) if url else ():
        register_secret(piece)
    register_secret(secret)
    return Credential(provider=PROVIDER, base_url=bound, source=f"{name}:{source}", fingerprint=fingerprint(secret),
                      secret=Secret(secret))


def _needs(channel: ChannelConfig) -> str:
    what = {"email": ("password_env", "password_credential")}.get(channel.kind, ("url_env", "url_credential"))
    names = [v for v in (getattr(channel, what[0]), getattr(channel, what[1])) if v]
    return " or ".join(names) or what[0]


class Notifications:
    """The rules, ``send_notifications``, and the daemon's own channel secrets."""

    def __init__(self, runs: RunService, daemon_config: Config) -> None:
        self.runs = runs
        self.daemon_config = daemon_config
        #: the channels' secrets from the daemon's own environment and credentials directory
        self.daemon_credentials: dict[str, Credential] = {}

    # --- secrets ----------------------------------------------------------------------------------

    def session_credentials(self, config: Config, env: Mapping[str, str]) -> dict[str, Credential]:
        """``notify:<channel>`` → credential for each channel of a session's configuration whose secrets are
        found (blocking). The daemon's own environment and credential files serve only channels exactly as
        the daemon's configuration has them: a working tree's config cannot send the daemon's secrets to a
        host of its choosing."""
        daemon_channels = self.daemon_config.notifications.channels
        credentials_dir = os.environ.get("CREDENTIALS_DIRECTORY")
        found = {}
        for name, channel in config.notifications.channels.items():
            own = daemon_channels.get(name) == channel
            cred = channel_credential(name, channel, [env, os.environ] if own else [env],
                                      credentials_dir if own else None)
            if cred is not None:
                found[f"{PROVIDER}:{name}"] = cred
        return found

    def load_daemon_credentials(self) -> list[tuple[str, str]]:
        """Find the daemon's own channel secrets (blocking); (fingerprint, secret) for the outbox's pool."""
        credentials_dir = os.environ.get("CREDENTIALS_DIRECTORY")
        self.daemon_credentials = {}
        for name, channel in self.daemon_config.notifications.channels.items():
            cred = channel_credential(name, channel, [os.environ], credentials_dir)
            if cred is not None:
                self.daemon_credentials[f"{PROVIDER}:{name}"] = cred
        return [(c.fingerprint, c.secret.reveal()) for c in self.daemon_credentials.values()]

    # --- completion ---------------------------------------------------------------------------------

    def on_finished(self, state: RunState, ctx: SessionContext | None) -> None:
        """Apply the rules to a run that just finished (its journal commit is still to come)."""
        config = (ctx.config if ctx is not None else self.daemon_config).notifications
        if not config.rules:
            return
        meta = state.meta
        previous = meta.delta.previous_conclusion if meta.delta is not None else None
        for name, reason in matching_channels(config, meta.branch, meta.conclusion, previous).items():
            channel = config.channels.get(name)
            if channel is None:
                log.warning("run %s: a notification rule names channel %r, which is not configured", meta.id, name)
                continue
            _entries, error = self._enqueue(state, ctx, name, channel, reason)
            if error is not None:
                log.warning("run %s: not notifying %s: %s", meta.id, name, error.message)

    # --- send_notifications -------------------------------------------------------------------------

    async def send(self, ctx: SessionContext, p: SendNotificationsParams) -> dict[str, ChannelResult]:
        state = self.runs._require(p.test_run_id)
        if state.meta.status != "finished":
            raise E.InvalidParams("$.test_run_id", "the run is not finished: notifications are about finished runs")
        config = ctx.config.notifications
        wanted = p.channels if p.channels is not None else list(config.channels)
        names = [n for n, c in config.channels.items() if n in wanted or c.kind in wanted]
        unknown = [w for w in wanted if w not in config.channels and not any(c.kind == w for c in config.channels.values())]
        if unknown:
            raise E.InvalidParams("$.channels", f"no notification channel named or of kind {unknown[0]!r} is configured")
        out: dict[str, ChannelResult] = {}
        waits: dict[str, list[str]] = {}
        for name in names:
            channel = config.channels[name]
            if p.dry_run:
                out[name] = ChannelResult(ok=True, kind=channel.kind, state="dry_run",
                                          message=self._render(state, name, channel, "explicit"))
                continue
            done = state.meta.notified.get(name)
            if done is not None:
                waits[name] = done.entries
                out[name] = ChannelResult(ok=True, kind=channel.kind, state="pending", deduplicated=True)
                continue
            entries, error = self._enqueue(state, ctx, name, channel, "explicit")
            if error is not None:
                out[name] = ChannelResult(ok=False, kind=channel.kind, state="failed", error=error)
            else:
                waits[name] = entries
                out[name] = ChannelResult(ok=True, kind=channel.kind, state="pending")
        if waits and not p.dry_run:
            await self.runs.store.commit()
        for name, entries in waits.items():
            try:
                delivery = await self.runs._wait(entries, p.wait, p.wait_s)
            except E.DeliveryFailed:  # one channel's failure is its own answer, not the call's
                delivery = next((s for s in map(self.runs.outbox.state, entries) if s.state == "failed"),
                                DeliveryState(state="failed"))
            out[name].state = delivery.state  # type: ignore[assignment]
            out[name].ok = delivery.state != "failed"
            out[name].error = delivery.error
        return out

    # --- recording --------------------------------------------------------------------------------

    def _context(self, state: RunState, channel: ChannelConfig, reason: str) -> NotifyContext:
        meta = state.meta
        return NotifyContext(run=self.runs.view(state), ci=meta.ci, branch=meta.branch,
                             commit_sha=meta.head_sha or meta.commit_sha,
                             report_url=channel.report_url or meta.details_url, reason=reason)

    def _render(self, state: RunState, name: str, channel: ChannelConfig, reason: str) -> dict[str, object]:
        """The message as it would be sent (no secrets in it)."""
        n = self._context(state, channel, reason)
        if channel.kind == "slack":
            return {"body": slack_message(n)}
        if channel.kind == "teams":
            return {"body": teams_message(n)}
        if channel.kind == "webhook":
            return {"body": webhook_message(n)}
        if channel.kind == "email":
            subject, text, html = email_message(n)
            return {"subject": subject, "text": text, "html": html, "from": channel.sender, "to": channel.recipients}
        status, description, comment = code_host_message(n)
        return {"status": status, "context": channel.context, "description": description, "comment": comment}

    def _enqueue(self, state: RunState, ctx: SessionContext | None, name: str, channel: ChannelConfig,
                 reason: str) -> tuple[list[str], ErrorInfo | None]:
        """Record the channel's message for the run (once per run and channel): its outbox entries, or why not."""
        meta = state.meta
        done = meta.notified.get(name)
        if done is not None:
            return done.entries, None
        message = self._render(state, name, channel, reason)
        outbox = self.runs.outbox
        session_id = ctx.session_id if ctx is not None else None
        if channel.kind == "code_host":
            if ctx is None:
                return [], ErrorInfo(code=-31007, message="the code-host channel needs a session's credentials")
            sha = meta.head_sha or meta.commit_sha
            provider = ctx.status_provider(meta.ci_provider)
            entries = [outbox.put(
                provider=provider, target=f"status:{sha}:{channel.context}", session_id=session_id, ci=meta.ci,
                op=SetStatus(state=message["status"], context=channel.context, sha=sha,  # type: ignore[arg-type]
                             description=message["description"], target_url=channel.report_url or meta.details_url,
                             run_id=meta.id, output_dir=meta.output_dir),
                run_id=meta.id, credential=ctx.credential_ref(provider), config=ctx.provider_config(provider))]
            if meta.pr_number is not None and ctx.config.comment_mode != "off":
                provider = ctx.comment_provider(meta.ci_provider)
                key = f"{channel.context}:{meta.name}"
                entries.append(outbox.put(
                    provider=provider, target=f"comment:{key}", session_id=session_id, ci=meta.ci,
                    op=PostComment(body=message["comment"], mode="upsert", key=key,  # type: ignore[arg-type]
                                   pr_number=meta.pr_number, run_id=meta.id, output_dir=meta.output_dir),
                    run_id=meta.id, credential=ctx.credential_ref(provider), config=ctx.provider_config(provider)))
        else:
            cred = ctx.credentials.get(f"{PROVIDER}:{name}") if ctx is not None else \
                self.daemon_credentials.get(f"{PROVIDER}:{name}")
            if cred is None and (channel.kind != "email" or channel.smtp_username):
                return [], ErrorInfo(code=-31003, message=f"no secret for channel {name!r}: set {_needs(channel)}")
            smtp = None
            if channel.kind == "email":
                if not channel.smtp_host or not channel.sender or not channel.recipients:
                    return [], ErrorInfo(code=-31003, message=f"channel {name!r} needs smtp_host, sender and recipients")
                security = channel.smtp_security
                smtp = SmtpSettings(host=channel.smtp_host, port=channel.smtp_port or _DEFAULT_PORTS[security],
                                    security=security, sender=channel.sender, recipients=channel.recipients,
                                    username=channel.smtp_username, ca_bundle=channel.smtp_ca_bundle)
            op = SendNotification(channel=name, kind=channel.kind, run_id=meta.id,  # type: ignore[arg-type]
                                  body=message.get("body") or {}, subject=str(message.get("subject", "")),  # type: ignore[arg-type]
                                  text=str(message.get("text", "")), html=str(message.get("html", "")), smtp=smtp,
                                  output_dir=meta.output_dir)
            entries = [outbox.put(provider=PROVIDER, target=f"notify:{name}:{meta.id}", op=op, run_id=meta.id,
                                  session_id=session_id, ci=meta.ci, credential=cred.ref() if cred else None,
                                  config=network_settings(ca_bundle=self.daemon_config.ca_bundle,
                                                          proxy=self.daemon_config.proxy,
                                                          no_proxy=self.daemon_config.no_proxy))]
        meta.notified[name] = NotifiedChannel(kind=channel.kind, entries=entries)
        self.runs._save(state)
        return entries, None
