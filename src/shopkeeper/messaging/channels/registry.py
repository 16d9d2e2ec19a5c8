"""Which adapter each channel uses, from settings (SHOPKEEPER_CHANNEL_*).

in_app and onsite have no adapter: delivery stores those messages for the API and the
browser SDK to read.
"""

from __future__ import annotations

from collections.abc import Callable

from shopkeeper.config import Settings
from shopkeeper.messaging.channels.base import (
    EMAIL,
    MOBILE_PUSH,
    SMS,
    WEB_PUSH,
    WEBHOOK,
    WHATSAPP,
    Channel,
)
from shopkeeper.messaging.channels.email import SmtpEmail
from shopkeeper.messaging.channels.fcm import FcmShaped
from shopkeeper.messaging.channels.outbox import Outbox
from shopkeeper.messaging.channels.sms import TwilioShaped
from shopkeeper.messaging.channels.webhook import WebhookChannel
from shopkeeper.messaging.channels.webpush import WebPush

OUTBOX = "outbox"


def _env(field: str) -> str:
    return f"SHOPKEEPER_{field.upper()}"


def _require(settings: Settings, setting: str, provider: str, *fields: str) -> list[str]:
    """The values of `fields`, or a ValueError naming every one that is missing."""
    values = [getattr(settings, name) for name in fields]
    missing = [_env(name) for name, value in zip(fields, values, strict=True) if not value]
    if missing:
        raise ValueError(
            f"{_env(setting)}={provider} needs {', '.join(missing)} "
            f"(or set {_env(setting)}={OUTBOX})."
        )
    return [str(value) for value in values]


def _email(settings: Settings) -> Channel:
    if settings.smtp_password and not settings.smtp_username:
        raise ValueError("SHOPKEEPER_SMTP_PASSWORD is set but SHOPKEEPER_SMTP_USERNAME is not.")
    return SmtpEmail(
        settings.smtp_host,
        settings.smtp_port,
        settings.smtp_username,
        settings.smtp_password,
        settings.smtp_starttls,
        settings.email_from,
        settings.message_timeout_seconds,
    )


def _twilio(channel: str, setting: str, sender_field: str) -> Callable[[Settings], Channel]:
    def build(settings: Settings) -> Channel:
        sid, token, sender = _require(
            settings, setting, "twilio", "sms_account_sid", "sms_auth_token", sender_field
        )
        return TwilioShaped(
            settings.sms_base_url,
            sid,
            token,
            sender,
            channel,
            timeout=settings.message_timeout_seconds,
        )

    return build


def _fcm(settings: Settings) -> Channel:
    project, token = _require(
        settings, "channel_mobile_push", "fcm", "fcm_project_id", "fcm_access_token"
    )
    return FcmShaped(
        settings.fcm_base_url, project, token, timeout=settings.message_timeout_seconds
    )


def _webpush(settings: Settings) -> Channel:
    (key,) = _require(settings, "channel_web_push", "webpush", "vapid_private_key")
    try:
        channel = WebPush(
            key,
            settings.vapid_subject,
            settings.message_timeout_seconds,
            allow_private=settings.webhook_allow_private,
        )
    except ValueError as exc:
        raise ValueError(
            f"{exc} (check SHOPKEEPER_VAPID_PRIVATE_KEY and SHOPKEEPER_VAPID_SUBJECT)"
        ) from None
    configured = (settings.vapid_public_key or "").strip().rstrip("=")
    if configured and configured != channel.public_key:
        # Browsers subscribe with the public key; push services refuse pushes signed
        # by another key (403), so every push would fail.
        channel.close()
        raise ValueError(
            "SHOPKEEPER_VAPID_PUBLIC_KEY is not the public half of SHOPKEEPER_VAPID_PRIVATE_KEY."
        )
    return channel


# channel -> (its setting, {provider name: builder})
PROVIDERS: dict[str, tuple[str, dict[str, Callable[[Settings], Channel]]]] = {
    EMAIL: ("channel_email", {"smtp": _email}),
    SMS: ("channel_sms", {"twilio": _twilio(SMS, "channel_sms", "sms_from")}),
    WHATSAPP: (
        "channel_whatsapp",
        {"twilio": _twilio(WHATSAPP, "channel_whatsapp", "whatsapp_from")},
    ),
    WEB_PUSH: ("channel_web_push", {"webpush": _webpush}),
    MOBILE_PUSH: ("channel_mobile_push", {"fcm": _fcm}),
}


def build_channels(settings: Settings) -> dict[str, Channel]:
    """One adapter per channel that goes to a provider; the caller closes them."""
    channels: dict[str, Channel] = {}
    try:
        for channel, (setting, builders) in PROVIDERS.items():
            provider = str(getattr(settings, setting)).strip().lower()
            if provider == OUTBOX:
                channels[channel] = Outbox(channel)
            elif provider in builders:
                channels[channel] = builders[provider](settings)
            else:
                choices = ", ".join([*builders, OUTBOX])
                raise ValueError(
                    f"{_env(setting)}={provider!r} is not a provider for {channel}; "
                    f"use one of: {choices}."
                )
        channels[WEBHOOK] = WebhookChannel(
            settings.webhook_allow_private, settings.message_timeout_seconds
        )
    except BaseException:
        # Do not leak the HTTP clients built before the one that failed.
        for built in channels.values():
            built.close()
        raise
    return channels
