"""Notification messages of a finished run, one renderer per channel format, every untrusted text escaped for it.

Test names, run names and branches come from the code under test and its CI: Slack ``mrkdwn`` escapes ``&``,
``<`` and ``>`` (and names go in code spans without backticks), Teams' Adaptive Card text and the code host's
Markdown use the report's Markdown escaping, e-mail HTML uses HTML escaping, and the webhook gets JSON.
"""

from __future__ import annotations

import html

import msgspec

from ci_sidecar.protocol.records import CIContext, TestRun

from .delta import base_title
from .markdown import md_escape
from .model import format_duration

__all__ = ["NotifyContext", "email_message", "code_host_message", "slack_message", "teams_message", "title_of",
           "webhook_message", "NAMES_LISTED"]

#: failing tests named in a message at most (the report has them all)
NAMES_LISTED = 10

_WORDS = {"success": "passed", "failure": "failed", "cancelled": "was cancelled", "timed_out": "timed out",
          "neutral": "had no results"}
_ICONS = {"success": "✅", "failure": "❌", "cancelled": "⚪", "timed_out": "⏱️", "neutral": "⚪"}


class NotifyContext(msgspec.Struct, kw_only=True):
    """What every message says: the run, where it ran, why it is sent, and a link to its report."""

    run: TestRun
    ci: CIContext | None = None
    branch: str | None = None
    commit_sha: str | None = None
    report_url: str | None = None
    #: the rule that sent it (``on_failure``...) or ``explicit``
    reason: str = "explicit"


def title_of(n: NotifyContext) -> str:
    """``unit on main failed`` (plain text)."""
    where = f" on {n.branch}" if n.branch else ""
    return f"{n.run.name}{where} {_WORDS.get(n.run.conclusion or '', n.run.status)}"


def _counts(n: NotifyContext) -> str:
    c = n.run.counts
    return (f"{c.total} tests: {c.passed} passed, {c.failed} failed, {c.errors} errors, {c.skipped} skipped"
            + (f", {c.flaky} flaky" if c.flaky else "") + f" · {format_duration(n.run.duration)}")


def _failing(n: NotifyContext) -> tuple[list[str], int, str]:
    """(names, how many in all, what they are): the new failures when there is a base, else every failure."""
    d = n.run.delta
    if d is not None and d.base is not None:
        return d.new_failures[:NAMES_LISTED], d.counts.new_failures, f"New failures vs {base_title(d)}"
    if d is not None:
        return d.new_failures[:NAMES_LISTED], d.counts.new_failures, "Failures"
    return [], 0, "Failures"


def _fixed(n: NotifyContext) -> int:
    return n.run.delta.counts.fixed if n.run.delta is not None else 0


def _https(url: str | None) -> str | None:
    return url if url and url.startswith(("https://", "http://")) else None


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_code(text: str) -> str:
    return "`" + _slack_escape(text.replace("`", "'").replace("\n", " ")) + "`"


def slack_message(n: NotifyContext) -> dict[str, object]:
    """A Slack incoming-webhook body: Block Kit blocks plus a plain ``text`` fallback for notifications."""
    icon = _ICONS.get(n.run.conclusion or "", "")
    title = title_of(n)
    blocks: list[dict[str, object]] = [
        {"type": "header", "text": {"type": "plain_text", "text": f"{icon} {title}"[:150], "emoji": True}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _slack_escape(_counts(n))}},
    ]
    names, total, heading = _failing(n)
    if names:
        more = f"\n… and {total - len(names)} more" if total > len(names) else ""
        lines = "\n".join(f"• {_slack_code(name)}" for name in names)
        blocks.append({"type": "section", "text": {"type": "mrkdwn",
                                                    "text": f"*{_slack_escape(heading)} ({total})*\n{lines}{more}"}})
    if _fixed(n):
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"*Fixed:* {_fixed(n)}"}})
    context = [x for x in (n.branch and f"branch {_slack_code(n.branch)}",
                           n.commit_sha and f"commit {_slack_code(n.commit_sha[:12])}") if x]
    if context:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(context)}]})
    url = _https(n.report_url)
    if url:
        blocks.append({"type": "actions", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": "Open the report"}, "url": url}]})
    return {"text": f"{icon} {_slack_escape(title)}", "blocks": blocks}


def teams_message(n: NotifyContext) -> dict[str, object]:
    """A Microsoft Teams workflow-webhook body: one Adaptive Card (1.4) in a ``message`` attachment."""
    body: list[dict[str, object]] = [
        {"type": "TextBlock", "size": "Large", "weight": "Bolder", "wrap": True,
         "text": md_escape(f"{_ICONS.get(n.run.conclusion or '', '')} {title_of(n)}")},
        {"type": "TextBlock", "wrap": True, "text": md_escape(_counts(n))},
    ]
    names, total, heading = _failing(n)
    if names:
        more = f"\n- … and {total - len(names)} more" if total > len(names) else ""
        body.append({"type": "TextBlock", "wrap": True, "weight": "Bolder", "text": md_escape(f"{heading} ({total})")})
        body.append({"type": "TextBlock", "wrap": True,
                     "text": "\n".join(f"- {md_escape(name)}" for name in names) + more})
    facts = [{"title": k, "value": md_escape(v)} for k, v in (("Branch", n.branch), ("Commit", (n.commit_sha or "")[:12]))
             if v]
    if facts:
        body.append({"type": "FactSet", "facts": facts})
    card: dict[str, object] = {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard",
                               "version": "1.4", "body": body}
    url = _https(n.report_url)
    if url:
        card["actions"] = [{"type": "Action.OpenUrl", "title": "Open the report", "url": url}]
    return {"type": "message", "attachments": [
        {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}]}


def webhook_message(n: NotifyContext) -> dict[str, object]:
    """The generic webhook's JSON body: the event, the run as ``get_test_run_status`` shows it, and context."""
    return {"event": "test_run.finished", "reason": n.reason, "title": title_of(n),
            "run": msgspec.to_builtins(n.run), "branch": n.branch, "commit_sha": n.commit_sha,
            "repository": n.ci.repository if n.ci else None, "report_url": n.report_url}


def email_message(n: NotifyContext) -> tuple[str, str, str]:
    """(subject, plain text, HTML) of the e-mail."""
    subject = title_of(n).replace("\n", " ")
    names, total, heading = _failing(n)
    text = [subject, "", _counts(n)]
    parts = [f"<h2>{html.escape(subject)}</h2>", f"<p>{html.escape(_counts(n))}</p>"]
    if names:
        text += ["", f"{heading} ({total}):"] + [f"  - {name}" for name in names]
        parts.append(f"<h3>{html.escape(heading)} ({total})</h3><ul>"
                     + "".join(f"<li><code>{html.escape(name)}</code></li>" for name in names) + "</ul>")
        if total > len(names):
            text.append(f"  … and {total - len(names)} more")
            parts.append(f"<p>… and {total - len(names)} more</p>")
    if _fixed(n):
        text.append(f"Fixed: {_fixed(n)}")
        parts.append(f"<p>Fixed: {_fixed(n)}</p>")
    where = ", ".join(x for x in (n.branch and f"branch {n.branch}", n.commit_sha and f"commit {n.commit_sha[:12]}")
                      if x)
    if where:
        text += ["", where]
        parts.append(f"<p>{html.escape(where)}</p>")
    url = _https(n.report_url)
    if url:
        text += ["", f"Report: {url}"]
        parts.append(f'<p><a href="{html.escape(url, quote=True)}">Open the report</a></p>')
    body = "".join(parts)
    return subject, "\n".join(text) + "\n", f'<!doctype html><html><body>{body}</body></html>\n'


def code_host_message(n: NotifyContext) -> tuple[str, str, str]:
    """(commit-status state, its description, the sticky comment's Markdown) for the code host."""
    state = {"success": "success", "failure": "failure", "timed_out": "failure"}.get(n.run.conclusion or "", "error")
    if n.run.conclusion == "neutral":
        state = "success"
    names, total, heading = _failing(n)
    lines = [f"### {_ICONS.get(n.run.conclusion or '', '')} {md_escape(title_of(n))}", md_escape(_counts(n))]
    if names:
        more = f"\n- … and {total - len(names)} more" if total > len(names) else ""
        lines.append(f"**{md_escape(heading)} ({total})**\n\n" + "\n".join(f"- {md_escape(x)}" for x in names) + more)
    url = _https(n.report_url)
    if url:
        lines.append(f"[Open the report]({url})")
    return state, title_of(n)[:140], "\n\n".join(lines) + "\n"
