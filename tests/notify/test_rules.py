"""Notification rules: when each fires, per branch pattern and channel, and how a channel's secrets are found."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import msgspec
import pytest

from ci_sidecar.config_schema import ChannelConfig, NotificationsConfig, RuleConfig
from ci_sidecar.providers.notify.provider import sign
from ci_sidecar.service.notifications import channel_credential, fires, matching_channels


@pytest.mark.parametrize(("when", "conclusion", "previous", "expected"), [
    ("always", "success", None, True),
    ("on_failure", "failure", "failure", True),
    ("on_failure", "timed_out", None, True),
    ("on_failure", "success", "failure", False),
    ("on_fixed", "success", "failure", True),
    ("on_fixed", "success", "success", False),
    ("on_fixed", "success", None, False),
    ("on_change", "failure", "success", True),
    ("on_change", "success", "success", False),
    ("on_change", "failure", None, False),
])
def test_when_a_rule_fires(when: str, conclusion: str, previous: str | None, expected: bool) -> None:
    """on_change and on_fixed compare with the branch's previous run; without one they stay quiet."""
    assert expected == fires(when, conclusion, previous)


def test_branch_patterns_pick_channels_first_rule_first() -> None:
    """A rule applies to branches matching its patterns; without channels it means every channel."""
    config = NotificationsConfig(
        channels={"chat": ChannelConfig(kind="slack"), "mail": ChannelConfig(kind="email")},
        rules=[RuleConfig(when="on_failure", branches=["release/*"], channels=["mail"]),
               RuleConfig(when="always", branches=["main"])])
    assert {"mail": "on_failure"} == matching_channels(config, "release/1.2", "failure", None)
    assert {} == matching_channels(config, "release/1.2", "success", None)
    assert {"chat": "always", "mail": "always"} == matching_channels(config, "main", "success", None)
    assert {} == matching_channels(config, "feature/x", "failure", None)


def test_channel_secrets_come_from_the_client_then_the_daemon_then_credential_files(tmp_path: Path,
                                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The first environment with the variable wins, else the credentials directory; a missing URL means no
    credential; the credential is bound to the URL's origin and its reference holds no secret."""
    channel = ChannelConfig(kind="webhook", url_env="HOOK_URL", secret_env="HOOK_KEY", secret_credential="hook-key")
    (tmp_path / "hook-key").write_text("from-a-file\n")
    cred = channel_credential("h", channel, [{"HOOK_URL": "https://hooks.example.test/x/secret"}, {}], str(tmp_path))
    assert cred is not None and "https://hooks.example.test" == cred.base_url
    assert {"key": "from-a-file", "url": "https://hooks.example.test/x/secret"} == json.loads(cred.secret.reveal())
    assert "secret" not in repr(cred.ref()) and "from-a-file" not in repr(cred)
    assert channel_credential("h", channel, [{}], str(tmp_path)) is None


def test_signature_is_hmac_sha256_of_timestamp_and_body() -> None:
    """The documented signature: ``sha256=`` and the hex HMAC-SHA256 of ``"<timestamp>.<body>"``."""
    expected = hmac.new(b"k", b"1700000000.{}", hashlib.sha256).hexdigest()
    assert f"sha256={expected}" == sign("k", "1700000000", b"{}")


def test_daemon_secrets_serve_only_the_daemons_own_channels(monkeypatch: pytest.MonkeyPatch) -> None:
    """A working tree's channel naming the daemon's SMTP password variable but another host gets no secret."""
    from ci_sidecar.config_schema import Config
    from ci_sidecar.service.notifications import Notifications

    own = ChannelConfig(kind="email", smtp_host="smtp.example.test", smtp_username="ci", password_env="SMTP_PW",
                        sender="a@example.test", recipients=["b@example.test"])
    daemon = Config(notifications=NotificationsConfig(channels={"mail": own}))
    monkeypatch.setenv("SMTP_PW", "daemon-only-password")
    notifications = Notifications(None, daemon)  # type: ignore[arg-type]
    same = notifications.session_credentials(daemon, {})
    assert "daemon-only-password" in same["notify:mail"].secret.reveal()
    evil = Config(notifications=NotificationsConfig(channels={"mail": msgspec.structs.replace(own, smtp_host="evil.test")}))
    assert {} == notifications.session_credentials(evil, {})
    assert "notify:mail" in notifications.session_credentials(evil, {"SMTP_PW": "the-jobs-own"})
