"""Notifications through the real daemon: Slack, Teams and a signed webhook reach a local HTTP sink, e-mail reaches
a real SMTP server over STARTTLS with AUTH; one message per run and channel, also under faults and kill -9."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fakes.notify_sink import NotifySink, SmtpSink
from helpers import DaemonProcess, wait_for

HMAC_KEY = "whsec-test-signing-key-0123456789"
CHANNELS = ("slack", "teams", "hook", "mail")


def _config(path: Path, sink: NotifySink, smtp: SmtpSink, when: str = "on_failure") -> Path:
    path.write_text(f"""
[notifications.channels.slack]
kind = "slack"
url-env = "TEST_SLACK_URL"
report-url = "https://ci.example.test/report"

[notifications.channels.teams]
kind = "teams"
url-env = "TEST_TEAMS_URL"

[notifications.channels.hook]
kind = "webhook"
url-env = "TEST_HOOK_URL"
secret-env = "TEST_HOOK_KEY"

[notifications.channels.mail]
kind = "email"
smtp-host = "127.0.0.1"
smtp-port = {smtp.port}
smtp-security = "starttls"
smtp-username = "{smtp.user}"
password-env = "TEST_SMTP_PASSWORD"
smtp-ca-bundle = "{smtp.cert}"
sender = "ci@example.test"
recipients = ["team@example.test"]

[[notifications.rules]]
when = "{when}"
branches = ["main", "release/*"]
""")
    return path


def _secrets(env: dict[str, str], sink: NotifySink, smtp: SmtpSink) -> dict[str, str]:
    return {**env, "TEST_SLACK_URL": f"{sink.url}/slack/T000/B000/XXXXSECRETPATH",
            "TEST_TEAMS_URL": f"{sink.url}/teams/workflow-secret-sig", "TEST_HOOK_URL": f"{sink.url}/hook/ci",
            "TEST_HOOK_KEY": HMAC_KEY, "TEST_SMTP_PASSWORD": smtp.password}


@pytest.fixture
def world(short_tmp: Path, env: dict[str, str]) -> Iterator[tuple[NotifySink, SmtpSink, dict[str, str]]]:
    with NotifySink(hmac_key=HMAC_KEY) as sink, SmtpSink(short_tmp) as smtp:
        yield sink, smtp, _secrets(env, sink, smtp)


def _failing_run(c: Any, branch: str = "main", name: str = "unit") -> dict[str, Any]:
    run = c.request("create_test_run", {"name": name, "branch": branch})
    c.request("report_results", {"test_run_id": run["id"], "results": [
        {"name": "test_ok", "classname": "app", "status": "passed"},
        {"name": "test_<script>&alert", "classname": "app", "status": "failed", "message": "boom"},
    ]})
    return c.request("complete_test_run", {"test_run_id": run["id"]})


def _wait_all(sink: NotifySink, smtp: SmtpSink, n: int = 1, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(len(set(sink.delivery_ids(k))) >= n for k in ("slack", "teams", "hook")) \
                and len(set(smtp.message_ids())) >= n:
            return
        time.sleep(0.05)
    raise AssertionError(f"not every channel got {n} message(s): "
                         f"{ {k: sink.delivery_ids(k) for k in ('slack', 'teams', 'hook')} } {smtp.message_ids()}")


def test_a_failing_main_run_notifies_every_channel_once(world: Any, short_tmp: Path) -> None:
    """Slack gets escaped Block Kit, Teams an Adaptive Card, the webhook a signed JSON body, e-mail a multipart
    message over STARTTLS+AUTH; the run's targets say delivered; a second explicit send is deduplicated."""
    sink, smtp, env = world
    config = _config(short_tmp / "cis.toml", sink, smtp)
    d = DaemonProcess.start(short_tmp / "d.sock", env, extra=["--config", str(config)])
    try:
        c = d.client()
        run = _failing_run(c)
        _wait_all(sink, smtp)
        slack = sink.accepted["slack"][0].body
        text = json.dumps(slack["blocks"])
        assert "`app.test_&lt;script&gt;&amp;alert`" in text and "<script>" not in text
        assert {"type": "button", "text": {"type": "plain_text", "text": "Open the report"},
                "url": "https://ci.example.test/report"} in slack["blocks"][-1]["elements"]
        card = sink.accepted["teams"][0].body["attachments"][0]["content"]
        assert r"- app.test\_\<script\>\&alert" in "\n".join(b.get("text", "") for b in card["body"])
        hook = sink.accepted["hook"][0].body
        assert "test_run.finished" == hook["event"] and run["id"] == hook["run"]["id"]
        assert ["app.test_<script>&alert"] == hook["run"]["delta"]["new_failures"]
        mail = smtp.messages[0]
        assert "unit on main failed" == mail["Subject"] and "team@example.test" == mail["To"]
        plain = mail.get_body(("plain",)).get_content()
        html = mail.get_body(("html",)).get_content()
        assert "app.test_<script>&alert" in plain and "app.test_&lt;script&gt;&amp;alert" in html
        # a sink has the message before the daemon has read its answer and journaled the delivery: wait for that
        def delivered_notify_targets() -> dict[str, Any] | None:
            status = c.request("get_test_run_status", {"test_run_id": run["id"]})
            notify = {t["provider"]: t for t in status["targets"] if t["role"] == "notify"}
            done = set(CHANNELS) == set(notify) and all("delivered" == t["delivery"]["state"] for t in notify.values())
            return notify if done else None

        notify = wait_for(delivered_notify_targets, what="every notify target delivered")
        status = c.request("get_test_run_status", {"test_run_id": run["id"]})
        assert set(CHANNELS) == set(notify)
        again = c.request("send_notifications", {"test_run_id": run["id"], "wait": True})
        assert all(r["deduplicated"] and r["ok"] and r["state"] == "delivered" for r in again.values())
        assert 1 == len(sink.accepted["slack"]) == len(smtp.messages)
        secret_bits = (env["TEST_SLACK_URL"], "workflow-secret-sig", HMAC_KEY, smtp.password)
        assert not any(s in d.log() for s in secret_bits)
        assert not any(s in json.dumps(status) for s in secret_bits)
    finally:
        assert 0 == d.stop()
    assert [] == sink.violations


def test_rules_follow_branch_patterns_and_dry_run_sends_nothing(world: Any, short_tmp: Path) -> None:
    """A feature branch's failure notifies nobody; dry_run renders each channel's message and sends nothing."""
    sink, smtp, env = world
    config = _config(short_tmp / "cis.toml", sink, smtp)
    d = DaemonProcess.start(short_tmp / "d.sock", env, extra=["--config", str(config)])
    try:
        c = d.client()
        run = _failing_run(c, branch="feature/x")
        dry = c.request("send_notifications", {"test_run_id": run["id"], "channels": ["slack", "email"],
                                               "dry_run": True})
        assert {"slack", "mail"} == set(dry) and all(r["state"] == "dry_run" for r in dry.values())
        assert "unit on feature/x failed" == dry["mail"]["message"]["subject"]
        assert "XXXXSECRETPATH" not in json.dumps(dry)
        time.sleep(0.5)  # nothing is on its way: a rule would have recorded the writes at completion
        assert ([], [], [], []) == (sink.accepted["slack"], sink.accepted["teams"], sink.accepted["hook"],
                                    smtp.messages)
        with pytest.raises(Exception, match="no notification channel"):
            c.request("send_notifications", {"test_run_id": run["id"], "channels": ["pager"]})
    finally:
        assert 0 == d.stop()


def test_faults_and_kill_9_still_give_one_message_per_run_and_channel(short_tmp: Path, env: dict[str, str]) -> None:
    """Under 30% faults (HTTP 429/5xx, resets, lost answers; SMTP 451) and a kill -9 after every completion, each
    channel receives exactly one message per run: repeats after a lost answer carry the same delivery id."""
    runs = 3
    with NotifySink(hmac_key=HMAC_KEY, fault_rate=0.3, seed=22) as sink, \
            SmtpSink(short_tmp, fault_rate=0.3, seed=22) as smtp:
        secrets = _secrets(env, sink, smtp)
        config = _config(short_tmp / "cis.toml", sink, smtp, when="always")
        ids = []
        for i in range(runs):
            d = DaemonProcess.start(short_tmp / "d.sock", secrets, extra=["--config", str(config)])
            client = d.client()
            ids.append(_failing_run(client, name=f"unit-{i}")["id"])
            time.sleep(0.05 * i)  # the kill lands before, during or after the first attempts
            d.proc.kill()
            d.proc.wait()
            client.close(timeout=0.5)
        d = DaemonProcess.start(short_tmp / "d.sock", secrets, extra=["--config", str(config)])
        try:
            _wait_all(sink, smtp, n=runs, timeout=120)
            c = d.client()
            deadline = time.monotonic() + 60
            while c.request("sidecar/status", {})["outbox"]["pending"] and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(0.3)
            for kind in ("slack", "teams", "hook"):
                assert runs == len(set(sink.delivery_ids(kind))), (kind, sink.delivery_ids(kind))
            per_run: dict[str, set[str]] = {}
            for rec in sink.accepted["hook"]:
                per_run.setdefault(rec.body["run"]["id"], set()).add(rec.headers["x-ci-sidecar-delivery"])
            assert set(ids) == set(per_run) and all(1 == len(v) for v in per_run.values())
            mail_runs: dict[str, set[str]] = {}
            for m in smtp.messages:
                mail_runs.setdefault(str(m["X-CI-Sidecar-Run"]), set()).add(str(m["Message-ID"]))
            assert set(ids) == set(mail_runs) and all(1 == len(v) for v in mail_runs.values())
            assert smtp.attempts > len(smtp.messages) or any(r.status != 200 for r in sink.requests), "no fault hit"
        finally:
            d.stop()
        assert [] == sink.violations


def test_code_host_channel_sets_a_status_and_a_sticky_comment(short_tmp: Path, env: dict[str, str]) -> None:
    """On the local provider the code-host channel writes the commit status and, on a PR, the sticky comment
    listing the new failures; an explicit send for it afterwards is deduplicated."""
    config = short_tmp / "cis.toml"
    config.write_text('[notifications.channels.pr]\nkind = "code_host"\n\n[[notifications.rules]]\nwhen = "always"\n')
    d = DaemonProcess.start(short_tmp / "d.sock", env, extra=["--config", str(config)])
    try:
        c = d.client()
        run = c.request("create_test_run", {"name": "unit", "branch": "feature", "pr_number": 3})
        c.request("report_results", {"test_run_id": run["id"], "results": [
            {"name": "test_|pipe", "classname": "app", "status": "failed"}]})
        done = c.request("complete_test_run", {"test_run_id": run["id"], "wait": True})
        again = c.request("send_notifications", {"test_run_id": run["id"], "channels": ["code_host"], "wait": True})
        assert {"pr": {"ok": True, "kind": "code_host", "state": "delivered", "deduplicated": True}} == again
        out = Path(done["output_dir"])
        status = json.loads((out / "build-status.json").read_text())["ci-sidecar/notify"]
        assert ("failure", "unit on feature failed") == (status["state"], status["description"])
        comment = next((out / "comments").glob("*.md")).read_text()
        assert "unit on feature failed" in comment and r"- app.test\_\|pipe" in comment
    finally:
        assert 0 == d.stop()
