"""Receivers of notifications on 127.0.0.1: an HTTP sink for Slack, Teams and generic webhooks, and a real SMTP
server (aiosmtpd) with STARTTLS and AUTH under a throwaway self-signed certificate.

The HTTP sink answers as the vendors do (Slack: ``200 ok`` as text; Teams workflows: ``202``; a webhook
receiver: ``204``), checks each body's shape, and verifies the generic webhook's HMAC-SHA256 signature and
timestamp (a bad one is a violation and a 401). Both can inject faults (HTTP: 429, 5xx, resets, lost answers;
SMTP: ``451`` temporary failures) and record every message they accepted.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import ipaddress
import random
import socket
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from ._server import FakeServer, Recorded, Reply

__all__ = ["NotifySink", "SmtpSink", "self_signed_cert"]

REPLAY_WINDOW_S = 300


class NotifySink(FakeServer):
    """``/slack/<id>``, ``/teams/<id>``, ``/hook/<id>``: every accepted POST is in ``accepted[<kind>]``."""

    def __init__(self, *, hmac_key: str, **kw: Any) -> None:
        super().__init__(**kw)
        self.hmac_key = hmac_key
        self.accepted: dict[str, list[Recorded]] = {"slack": [], "teams": [], "hook": []}

    def _kind(self, rec: Recorded) -> str:
        return rec.path.strip("/").split("/", 1)[0]

    def gate(self, rec: Recorded) -> Reply | None:
        kind = self._kind(rec)
        if rec.method != "POST" or kind not in self.accepted:
            self.violation(f"{rec.method} {rec.path}: not a webhook")
            return Reply(404, {"error": "no such webhook"})
        body = rec.body if isinstance(rec.body, dict) else {}
        if kind == "slack" and not (isinstance(body.get("text"), str) and isinstance(body.get("blocks"), list)):
            self.violation(f"slack body without text and blocks: {body!r:.200}")
            return Reply(400, b"invalid_blocks", content_type="text/plain")
        if kind == "teams":
            cards = [a for a in body.get("attachments", [])
                     if a.get("contentType") == "application/vnd.microsoft.card.adaptive"
                     and a.get("content", {}).get("type") == "AdaptiveCard"]
            if body.get("type") != "message" or not cards:
                self.violation(f"teams body is not a message with an Adaptive Card: {body!r:.200}")
                return Reply(400, {"error": "bad card"})
        if kind == "hook":
            stamp = rec.headers.get("x-ci-sidecar-timestamp", "")
            expected = "sha256=" + hmac.new(self.hmac_key.encode(), stamp.encode() + b"." + rec.raw,
                                            hashlib.sha256).hexdigest()
            given = rec.headers.get("x-ci-sidecar-signature", "")
            if not stamp.isdigit() or abs(time.time() - int(stamp)) > REPLAY_WINDOW_S \
                    or not hmac.compare_digest(expected, given):
                self.violation(f"webhook signature does not verify (timestamp {stamp!r})")
                return Reply(401, {"error": "bad signature"})
        return None

    def respond(self, rec: Recorded) -> Reply:
        kind = self._kind(rec)
        self.accepted[kind].append(rec)
        if kind == "slack":
            return Reply(200, b"ok", content_type="text/plain")
        return Reply(202 if kind == "teams" else 204)

    def delivery_ids(self, kind: str) -> list[str]:
        """The ``X-CI-Sidecar-Delivery`` of every accepted message of a kind, in arrival order."""
        with self.lock:
            return [r.headers.get("x-ci-sidecar-delivery", "") for r in self.accepted[kind]]


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A throwaway certificate for 127.0.0.1 and localhost: (certificate PEM, key PEM)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@dataclass
class SmtpSink:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 that requires STARTTLS, then AUTH with ``user``/``password``."""

    directory: Path
    user: str = "ci"
    password: str = "s3cret-smtp-password"
    fault_rate: float = 0.0
    seed: int = 1
    messages: list[EmailMessage] = field(default_factory=list)
    attempts: int = 0

    def __enter__(self) -> SmtpSink:
        import ssl

        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult, LoginPassword

        self.cert, key = self_signed_cert(self.directory)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, key)
        rng = random.Random(self.seed)
        lock = threading.Lock()
        sink = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                with lock:
                    sink.attempts += 1
                    if rng.random() < sink.fault_rate:
                        return "451 4.3.0 Temporary failure, try again"
                    sink.messages.append(message_from_bytes(envelope.content, policy=policy.default))  # type: ignore[arg-type]
                return "250 2.0.0 OK"

        def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
            ok = isinstance(data, LoginPassword) and data.login == self.user.encode() \
                and data.password == self.password.encode()
            return AuthResult(success=ok)

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self._controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, tls_context=context,
                                      require_starttls=True, authenticator=authenticate, auth_require_tls=True)
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()

    def message_ids(self) -> list[str]:
        return [str(m["Message-ID"]) for m in self.messages]
