"""The one small protocol every channel adapter implements.

Delivery (messaging/delivery.py) decides whether and when a message goes out (consent,
suppression, caps, quiet hours), renders it once, and hands it to the channel's adapter
as an `Outgoing`. The adapter talks to the provider and either returns `Delivered` or
raises `ProviderError` saying whether trying again can help and whether the address is
dead (a hard bounce, an unknown push token), which suppresses it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

# The channels a message can go out on.
EMAIL = "email"
SMS = "sms"
WHATSAPP = "whatsapp"
WEB_PUSH = "web_push"
MOBILE_PUSH = "mobile_push"
IN_APP = "in_app"
ONSITE = "onsite"
WEBHOOK = "webhook"
CHANNELS = (EMAIL, SMS, WHATSAPP, WEB_PUSH, MOBILE_PUSH, IN_APP, ONSITE, WEBHOOK)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A rendered message, ready for a provider."""

    message_id: int
    # Stable across retries of the same message: providers that accept an idempotency
    # key get it, and email uses it for the Message-ID header.
    idempotency_key: str
    channel: str
    # An email address, an E.164 phone number, a push endpoint or token, a webhook URL.
    recipient: str
    # email: subject, text, html; sms and whatsapp: body; web_push and mobile_push:
    # title, body, url, icon, image, data; webhook: payload (a JSON object).
    content: Mapping[str, Any]
    # Web push subscription keys: p256dh and auth.
    keys: Mapping[str, str] = field(default_factory=dict)
    # One-click unsubscribe (RFC 8058) for email; None for transactional messages.
    unsubscribe_url: str | None = None


@dataclass(frozen=True, slots=True)
class Delivered:
    # The provider's id for the message (SMTP queue id, Twilio SID, FCM name...).
    provider_id: str | None = None


class ProviderError(Exception):
    """The provider did not take the message.

    retryable: a later attempt may succeed (timeouts, 429, 5xx, SMTP 4xx).
    dead_address: the address will never work (SMTP 5xx on the recipient, an unknown or
    expired push subscription): it is suppressed on this channel.
    """

    def __init__(self, reason: str, *, retryable: bool, dead_address: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.dead_address = dead_address


class Channel(Protocol):
    name: str

    def send(self, message: Outgoing) -> Delivered: ...

    def close(self) -> None: ...
