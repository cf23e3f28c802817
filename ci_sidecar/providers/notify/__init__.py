"""Notification channels as a provider: Slack, Microsoft Teams and generic webhooks over HTTP, e-mail over SMTP."""

from __future__ import annotations

from .provider import NotifyProvider

__all__ = ["NotifyProvider"]
