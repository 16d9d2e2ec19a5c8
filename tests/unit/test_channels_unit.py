"""The pure parts of the channel adapters: building the email, reading providers'
errors, the request bodies, and which adapter the settings pick."""

from __future__ import annotations

import base64
import json
import smtplib
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from shopkeeper.config import Settings
from shopkeeper.messaging.channels.base import CHANNELS, Outgoing, ProviderError
from shopkeeper.messaging.channels.email import (
    SmtpEmail,
    build_email,
    message_id_for,
    smtp_error,
)
from shopkeeper.messaging.channels.fcm import FcmShaped, fcm_error, fcm_message
from shopkeeper.messaging.channels.outbox import Outbox
from shopkeeper.messaging.channels.registry import build_channels
from shopkeeper.messaging.channels.sms import TwilioShaped, address_for, twilio_error
from shopkeeper.messaging.channels.webhook import WebhookChannel
from shopkeeper.messaging.channels.webpush import WebPush, push_payload

SENDER = "Corner Shop <shop@corner.example>"
SENT_AT = 1_700_000_000.0


def email_message(content: dict[str, Any], **more: Any) -> Outgoing:
    return Outgoing(1, more.pop("key", "k-1"), "email", "ase@example.org", content, **more)


def refused(content: dict[str, Any], **more: Any) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        build_email(email_message(content, **more), SENDER, sent_at_s=SENT_AT)
    assert not caught.value.retryable
    assert not caught.value.dead_address
    return caught.value


# -- email ---------------------------------------------------------------------------------


def test_the_message_id_depends_on_the_key_only() -> None:
    first = message_id_for("journey-1:step-2:profile-3", SENDER)
    assert first == message_id_for("journey-1:step-2:profile-3", SENDER)
    assert first != message_id_for("journey-1:step-2:profile-4", SENDER)
    assert first.startswith("<")
    assert first.endswith("@corner.example>")
    # Odd characters in the key do not leak into the header.
    assert " " not in message_id_for("a key with <spaces> and @s", SENDER)


def test_build_email_sets_the_headers_and_both_parts() -> None:
    email = build_email(
        email_message(
            {"subject": "Hi", "text": "plain", "html": "<p>rich</p>"},
            unsubscribe_url="https://shop.example/u/1",
        ),
        SENDER,
        sent_at_s=SENT_AT,
    )
    assert email["Date"] == "Tue, 14 Nov 2023 22:13:20 +0000"
    assert email["Message-ID"] == message_id_for("k-1", SENDER)
    assert email["List-Unsubscribe"] == "<https://shop.example/u/1>"
    assert email["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert [part.get_content_type() for part in email.iter_parts()] == [
        "text/plain",
        "text/html",
    ]


def test_html_only_email_is_a_single_html_part() -> None:
    email = build_email(email_message({"subject": "Hi", "html": "<p>x</p>"}), SENDER, sent_at_s=0)
    assert email.get_content_type() == "text/html"


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ({"subject": "Hi"}, "neither a text nor an HTML body"),
        ({"subject": "Hi\r\nBcc: all@example.org", "text": "x"}, "subject"),
        ({"text": "x", "headers": {"X-Tag": "a\r\nBcc: all@example.org"}}, "line break"),
        ({"text": "x", "headers": {"X-Tag\nBcc": "a"}}, "not a header name"),
        ({"text": "x", "headers": {"Bcc": "all@example.org"}}, "cannot be replaced"),
        ({"text": "x", "headers": {"message-id": "<mine@x>"}}, "cannot be replaced"),
        ({"text": "x", "headers": ["X-Tag", "a"]}, "mapping"),
    ],
)
def test_unsafe_email_content_is_refused(content: dict[str, Any], match: str) -> None:
    assert match in refused(content).reason


def test_a_recipient_or_unsubscribe_url_with_a_line_break_is_refused() -> None:
    bad = Outgoing(1, "k", "email", "a@example.org\r\nBcc: b@example.org", {"text": "x"})
    with pytest.raises(ProviderError, match="not an email address"):
        build_email(bad, SENDER, sent_at_s=0)
    assert "unsubscribe" in refused({"text": "x"}, unsubscribe_url="https://x/\r\nX: y").reason


@pytest.mark.parametrize(
    ("exc", "retryable", "dead"),
    [
        (smtplib.SMTPRecipientsRefused({"a@x": (550, b"no such user")}), False, True),
        (smtplib.SMTPRecipientsRefused({"a@x": (452, b"mailbox full")}), True, False),
        (smtplib.SMTPDataError(451, b"try later"), True, False),
        (smtplib.SMTPDataError(554, b"spam"), False, False),
        (smtplib.SMTPSenderRefused(553, b"sender denied", "shop@x"), False, False),
        (smtplib.SMTPAuthenticationError(535, b"bad credentials"), False, False),
        (smtplib.SMTPConnectError(554, b"no service"), True, False),
        (smtplib.SMTPServerDisconnected("gone"), True, False),
        (smtplib.SMTPNotSupportedError("STARTTLS extension not supported"), False, False),
        (TimeoutError("timed out"), True, False),
        (ConnectionRefusedError(111, "refused"), True, False),
    ],
)
def test_smtp_errors_are_mapped(exc: Exception, retryable: bool, dead: bool) -> None:
    error = smtp_error(exc)
    assert (error.retryable, error.dead_address) == (retryable, dead)


# -- SMS, push, webhook bodies and errors --------------------------------------------------


def test_whatsapp_addresses_are_prefixed_once() -> None:
    assert address_for("whatsapp", "+4791234567") == "whatsapp:+4791234567"
    assert address_for("whatsapp", "whatsapp:+4791234567") == "whatsapp:+4791234567"
    assert address_for("sms", "+4791234567") == "+4791234567"


@pytest.mark.parametrize(
    ("status", "body", "retryable", "dead"),
    [
        (400, {"code": 21211, "message": "Invalid 'To' Phone Number"}, False, True),
        (400, {"code": 21614, "message": "not a mobile number"}, False, True),
        (400, {"code": 21610, "message": "Attempt to send to unsubscribed recipient"}, False, True),
        (400, {"code": 21606, "message": "From number is not valid"}, False, False),
        (404, {}, False, False),
        (429, {}, True, False),
        (502, {}, True, False),
        (401, {"message": "Authenticate"}, False, False),
    ],
)
def test_twilio_errors(status: int, body: dict[str, Any], retryable: bool, dead: bool) -> None:
    error = twilio_error(status, body)
    assert (error.retryable, error.dead_address) == (retryable, dead)
    if body.get("code"):
        assert str(body["code"]) in error.reason


def test_fcm_error_reads_the_error_code_from_details() -> None:
    body = {
        "error": {
            "code": 400,
            "message": "Requested entity was not found.",
            "status": "INVALID_ARGUMENT",
            "details": [{"errorCode": "UNREGISTERED"}],
        }
    }
    assert fcm_error(400, body).dead_address
    assert not fcm_error(
        400, {"error": {"status": "INVALID_ARGUMENT", "message": "bad ttl"}}
    ).dead_address
    assert not fcm_error(500, {}).dead_address
    assert fcm_error(500, {}).retryable


def test_fcm_message_without_image_url_or_data() -> None:
    message = Outgoing(1, "k", "mobile_push", "tok", {"title": "T", "body": "B"})
    assert fcm_message(message) == {
        "message": {"token": "tok", "notification": {"title": "T", "body": "B"}}
    }


def test_push_payload_keeps_only_the_known_fields() -> None:
    message = Outgoing(
        1, "k", "web_push", "https://push.example/x", {"title": "T", "secret": "s", "url": None}
    )
    assert json.loads(push_payload(message)) == {"title": "T"}


# -- outbox and registry -------------------------------------------------------------------


def test_the_outbox_sends_nothing_and_names_the_message() -> None:
    outbox = Outbox("sms")
    message = Outgoing(42, "k", "sms", "+4791234567", {"body": "x"})
    assert outbox.name == "sms"
    assert outbox.send(message).provider_id == "outbox:42"
    outbox.close()


def settings(**values: Any) -> Settings:
    return Settings(**values)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def vapid_key() -> str:
    raw = ec.generate_private_key(ec.SECP256R1()).private_numbers().private_value
    return b64url(raw.to_bytes(32, "big"))


def test_by_default_every_provider_channel_goes_to_the_outbox() -> None:
    channels = build_channels(
        settings(
            channel_email="outbox",
            channel_sms="outbox",
            channel_whatsapp="outbox",
            channel_web_push="outbox",
            channel_mobile_push="outbox",
        )
    )
    assert set(channels) == set(CHANNELS) - {"in_app", "onsite"}
    for name, channel in channels.items():
        assert channel.name == name
        expected = WebhookChannel if name == "webhook" else Outbox
        assert isinstance(channel, expected)
        channel.close()


def test_providers_are_built_from_their_settings() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    private = b64url(key.private_numbers().private_value.to_bytes(32, "big"))
    public = b64url(
        key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    )
    channels = build_channels(
        settings(
            channel_email="smtp",
            channel_sms="twilio",
            channel_whatsapp="twilio",
            channel_web_push="webpush",
            channel_mobile_push="fcm",
            sms_account_sid="AC1",
            sms_auth_token="t",
            sms_from="+4790000000",
            whatsapp_from="+4790000001",
            fcm_project_id="shop-app",
            fcm_access_token="ya29",
            vapid_private_key=private,
            vapid_public_key=public,
        )
    )
    assert isinstance(channels["email"], SmtpEmail)
    assert isinstance(channels["sms"], TwilioShaped)
    assert channels["sms"].name == "sms"
    assert isinstance(channels["whatsapp"], TwilioShaped)
    assert channels["whatsapp"].name == "whatsapp"
    assert channels["whatsapp"].sender == "+4790000001"
    assert isinstance(channels["mobile_push"], FcmShaped)
    assert isinstance(channels["web_push"], WebPush)
    assert channels["web_push"].public_key == public
    for channel in channels.values():
        channel.close()


@pytest.mark.parametrize(
    ("values", "names"),
    [
        (
            {"channel_sms": "twilio", "sms_account_sid": None, "sms_auth_token": None},
            ["SHOPKEEPER_SMS_ACCOUNT_SID", "SHOPKEEPER_SMS_AUTH_TOKEN"],
        ),
        (
            {
                "channel_whatsapp": "twilio",
                "sms_account_sid": "AC1",
                "sms_auth_token": "t",
                "whatsapp_from": None,
            },
            ["SHOPKEEPER_WHATSAPP_FROM"],
        ),
        (
            {"channel_mobile_push": "fcm", "fcm_project_id": "p", "fcm_access_token": None},
            ["SHOPKEEPER_FCM_ACCESS_TOKEN"],
        ),
        (
            {"channel_web_push": "webpush", "vapid_private_key": None},
            ["SHOPKEEPER_VAPID_PRIVATE_KEY"],
        ),
        (
            {"channel_web_push": "webpush", "vapid_private_key": "nonsense"},
            ["SHOPKEEPER_VAPID_PRIVATE_KEY"],
        ),
        (
            {
                "channel_web_push": "webpush",
                "vapid_private_key": vapid_key(),
                "vapid_public_key": "BOtherKey",
            },
            ["SHOPKEEPER_VAPID_PUBLIC_KEY"],
        ),
        ({"channel_email": "sendgrid"}, ["SHOPKEEPER_CHANNEL_EMAIL", "smtp, outbox"]),
    ],
)
def test_a_provider_without_its_settings_is_refused_by_name(
    values: dict[str, Any], names: list[str]
) -> None:
    with pytest.raises(ValueError, match="SHOPKEEPER_") as caught:
        build_channels(settings(**values))
    for name in names:
        assert name in str(caught.value)
