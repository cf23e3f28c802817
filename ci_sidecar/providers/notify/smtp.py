"""E-mail over SMTP with the standard library (``smtplib`` in a worker thread): STARTTLS or implicit TLS,
AUTH when a password is configured, a multipart/alternative text + HTML body, one attempt per call.

The write's idempotency key becomes the ``Message-ID``, the same on every attempt, so a receiving system
that drops repeats of a Message-ID sees one message even when an answer was lost and the write is retried.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
from email.message import EmailMessage
from email.utils import formatdate

from ..base import Outcome, SendNotification, SmtpSettings

__all__ = ["build_email", "send_email"]

TIMEOUT_S = 30.0


def build_email(op: SendNotification, message_id: str) -> EmailMessage:
    """The message: plain text first, HTML as the alternative."""
    assert op.smtp is not None
    msg = EmailMessage()
    msg["Subject"] = op.subject
    msg["From"] = op.smtp.sender
    msg["To"] = ", ".join(op.smtp.recipients)
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = message_id
    msg["X-CI-Sidecar-Run"] = op.run_id
    msg.set_content(op.text)
    if op.html:
        msg.add_alternative(op.html, subtype="html")
    return msg


def _context(settings: SmtpSettings) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if settings.ca_bundle:
        context.load_verify_locations(cafile=settings.ca_bundle)
    return context


def send_email(op: SendNotification, password: str | None, message_id: str) -> Outcome:
    """One attempt (blocking). Temporary failures (4xx replies, connection problems) retry; permanent ones
    (5xx replies, a refused login, a certificate that does not verify) are final."""
    settings = op.smtp
    if settings is None or not settings.recipients:
        return Outcome.refused("the e-mail channel has no SMTP server or no recipients")
    if settings.username and not password:
        return Outcome.refused("the e-mail channel has an SMTP user name but no password")
    try:
        if settings.security == "tls":
            client: smtplib.SMTP = smtplib.SMTP_SSL(settings.host, settings.port, timeout=TIMEOUT_S,
                                                    context=_context(settings))
        else:
            client = smtplib.SMTP(settings.host, settings.port, timeout=TIMEOUT_S)
        with client:
            client.ehlo()
            if settings.security == "starttls":
                client.starttls(context=_context(settings))
                client.ehlo()
            if settings.username:
                client.login(settings.username, password or "")
            refused = client.send_message(build_email(op, message_id))
        if refused:
            return Outcome.refused(f"the SMTP server refused recipient(s): {', '.join(sorted(refused))}")
        return Outcome.delivered(remote={"message_id": message_id}, tier="smtp")
    except smtplib.SMTPAuthenticationError as exc:
        return Outcome.refused(f"SMTP login refused ({exc.smtp_code})", status=exc.smtp_code)
    except smtplib.SMTPResponseException as exc:
        text = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
        if 400 <= exc.smtp_code < 500:
            return Outcome.retry(f"SMTP {exc.smtp_code}: {text}", status=exc.smtp_code)
        return Outcome.refused(f"SMTP {exc.smtp_code}: {text}", status=exc.smtp_code)
    except smtplib.SMTPRecipientsRefused as exc:
        return Outcome.refused(f"the SMTP server refused every recipient: {', '.join(sorted(exc.recipients))}")
    except smtplib.SMTPNotSupportedError as exc:
        return Outcome.refused(f"the SMTP server does not support what the channel needs: {exc}")
    except ssl.SSLCertVerificationError as exc:
        return Outcome.refused(f"the SMTP server's certificate does not verify: {exc.verify_message or exc}")
    except (smtplib.SMTPException, OSError, socket.timeout) as exc:
        return Outcome.retry(f"SMTP connection failed ({type(exc).__name__}): {exc or 'no detail'}")
