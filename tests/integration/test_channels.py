"""Channel adapters against real local servers: aiosmtpd for email, a Starlette app under
uvicorn for the Twilio-shaped SMS and WhatsApp API and for webhooks (the push channels
are in test_channels_push.py)."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from typing import Any

import pytest

from shopkeeper.messaging.channels.email import SmtpEmail
from shopkeeper.messaging.channels.sms import TwilioShaped
from shopkeeper.messaging.channels.webhook import WebhookChannel
from tests.integration.channel_servers import (
    ProviderServer,
    SmtpServer,
    free_port,
    outgoing,
    provider_server,
    refusal,
    smtp_server,
)

SENDER = "Corner Shop <shop@corner.example>"


def smtp_channel(server: SmtpServer, **options: Any) -> SmtpEmail:
    settings: dict[str, Any] = {
        "username": None,
        "password": None,
        "starttls": False,
        "sender": SENDER,
        "timeout": 5.0,
    } | options
    return SmtpEmail(server.host, server.port, **settings)


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


@pytest.fixture(scope="module")
def running_provider() -> Iterator[ProviderServer]:
    with provider_server() as provider:
        yield provider


@pytest.fixture
def provider(running_provider: ProviderServer) -> ProviderServer:
    running_provider.reset()
    return running_provider


# -- email ---------------------------------------------------------------------------------

EMAIL_CONTENT = {
    "subject": "Your cart misses you, Åse",
    "text": "You left a teapot in your cart.",
    "html": "<p>You left a <b>teapot</b> in your cart.</p>",
}


def test_email_arrives_multipart_with_one_click_unsubscribe(smtp: SmtpServer) -> None:
    channel = smtp_channel(smtp)
    message = outgoing(
        "email",
        "ase@example.org",
        EMAIL_CONTENT | {"headers": {"X-Journey": "abandoned-cart"}},
        unsubscribe_url="https://shop.example/u/abc123",
    )
    delivered = channel.send(message)
    channel.close()

    [mail] = smtp.recorder.received
    assert mail.mail_from == "shop@corner.example"
    assert mail.rcpt_tos == ["ase@example.org"]
    parsed = mail.message
    assert parsed["From"] == SENDER
    assert parsed["To"] == "ase@example.org"
    assert parsed["Subject"] == "Your cart misses you, Åse"
    assert parsed["Date"]
    assert parsed["Message-ID"] == delivered.provider_id
    assert parsed["List-Unsubscribe"] == "<https://shop.example/u/abc123>"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert parsed["X-Journey"] == "abandoned-cart"
    assert parsed.get_content_type() == "multipart/alternative"
    text = parsed.get_body(("plain",))
    html = parsed.get_body(("html",))
    assert text is not None
    assert html is not None
    assert text.get_content().strip() == "You left a teapot in your cart."
    assert "<b>teapot</b>" in html.get_content()


def test_a_retry_carries_the_same_message_id_and_reuses_the_connection(
    smtp: SmtpServer,
) -> None:
    channel = smtp_channel(smtp)
    first = channel.send(outgoing("email", "a@example.org", EMAIL_CONTENT, key="k-1"))
    again = channel.send(outgoing("email", "a@example.org", EMAIL_CONTENT, key="k-1"))
    other = channel.send(outgoing("email", "a@example.org", EMAIL_CONTENT, key="k-2"))
    channel.close()

    ids = [mail.message["Message-ID"] for mail in smtp.recorder.received]
    assert ids == [first.provider_id, again.provider_id, other.provider_id]
    assert ids[0] == ids[1] != ids[2]
    # One TCP connection (one client port) carried all three.
    assert len({mail.peer for mail in smtp.recorder.received}) == 1


def test_text_only_and_no_unsubscribe_headers_for_transactional_mail(smtp: SmtpServer) -> None:
    channel = smtp_channel(smtp)
    channel.send(outgoing("email", "b@example.org", {"subject": "Receipt", "text": "Thanks!"}))
    channel.close()
    parsed = smtp.recorder.received[0].message
    assert parsed.get_content_type() == "text/plain"
    assert parsed.get_content().strip() == "Thanks!"
    assert parsed["List-Unsubscribe"] is None


def test_a_connection_the_server_timed_out_is_replaced() -> None:
    with smtp_server(idle_timeout=0.3) as server:
        channel = smtp_channel(server)
        channel.send(outgoing("email", "c@example.org", EMAIL_CONTENT, key="one"))
        time.sleep(0.8)  # the server says 421 and hangs up on the idle connection
        channel.send(outgoing("email", "c@example.org", EMAIL_CONTENT, key="two"))
        channel.close()
        received = server.recorder.received
    assert len(received) == 2
    assert received[0].peer != received[1].peer


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_login_when_credentials_are_configured() -> None:
    with smtp_server(login=("shop", "s3cret")) as server:
        channel = smtp_channel(server, username="shop", password="s3cret")
        channel.send(outgoing("email", "d@example.org", EMAIL_CONTENT))
        channel.close()
        assert len(server.recorder.received) == 1

        wrong = smtp_channel(server, username="shop", password="nope")
        error = refusal(wrong, outgoing("email", "d@example.org", EMAIL_CONTENT))
        wrong.close()
        assert not error.retryable
        assert "login" in error.reason


@pytest.mark.parametrize(
    ("where", "reply", "retryable", "dead"),
    [
        ("rcpt", "550 5.1.1 No such user here", False, True),
        ("rcpt", "451 4.3.0 Greylisted, try again later", True, False),
        ("data", "451 4.3.0 Try again later", True, False),
        ("data", "554 5.7.1 Message rejected as spam", False, False),
    ],
)
def test_smtp_refusals_are_mapped(
    smtp: SmtpServer, where: str, reply: str, retryable: bool, dead: bool
) -> None:
    if where == "rcpt":
        smtp.recorder.rcpt_replies["gone@example.org"] = reply
    else:
        smtp.recorder.data_reply = reply
    channel = smtp_channel(smtp)
    error = refusal(channel, outgoing("email", "gone@example.org", EMAIL_CONTENT))
    assert (error.retryable, error.dead_address) == (retryable, dead)
    assert reply.split()[0] in error.reason
    # The refusal did not spoil the connection: the next message goes through on it.
    smtp.recorder.rcpt_replies.clear()
    smtp.recorder.data_reply = None
    channel.send(outgoing("email", "fine@example.org", EMAIL_CONTENT))
    channel.close()
    assert [mail.rcpt_tos for mail in smtp.recorder.received] == [["fine@example.org"]]


def test_starttls_required_but_not_offered_is_not_retried(smtp: SmtpServer) -> None:
    channel = smtp_channel(smtp, starttls=True)
    error = refusal(channel, outgoing("email", "e@example.org", EMAIL_CONTENT))
    channel.close()
    assert not error.retryable
    assert "STARTTLS" in error.reason
    assert smtp.recorder.received == []


def test_no_smtp_server_is_a_retryable_error() -> None:
    channel = SmtpEmail("127.0.0.1", free_port(), None, None, False, SENDER, 2.0)
    error = refusal(channel, outgoing("email", "e@example.org", EMAIL_CONTENT))
    assert error.retryable
    assert not error.dead_address


# -- SMS and WhatsApp ----------------------------------------------------------------------


def twilio(provider: ProviderServer, channel: str = "sms", timeout: float = 5.0) -> TwilioShaped:
    return TwilioShaped(provider.url, "AC123", "token-xyz", "+4790000000", channel, timeout=timeout)


def test_sms_posts_the_twilio_form_with_auth_and_idempotency_token(
    provider: ProviderServer,
) -> None:
    provider.reply(201, {"sid": "SM0001", "status": "queued"})
    channel = twilio(provider)
    delivered = channel.send(outgoing("sms", "+4791234567", {"body": "Your cart: 1 teapot"}))
    channel.close()

    assert delivered.provider_id == "SM0001"
    [request] = provider.requests
    assert request.method == "POST"
    assert request.path == "/2010-04-01/Accounts/AC123/Messages.json"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    expected = "Basic " + base64.b64encode(b"AC123:token-xyz").decode()
    assert request.headers["authorization"] == expected
    assert request.headers["i-twilio-idempotency-token"] == "message-7-attempt-independent"
    assert request.form() == {
        "To": "+4791234567",
        "From": "+4790000000",
        "Body": "Your cart: 1 teapot",
    }


def test_whatsapp_prefixes_both_numbers(provider: ProviderServer) -> None:
    provider.reply(201, {"sid": "SM0002"})
    channel = twilio(provider, "whatsapp")
    assert channel.name == "whatsapp"
    channel.send(outgoing("whatsapp", "+4791234567", {"body": "Hei!"}))
    channel.close()
    form = provider.requests[0].form()
    assert (form["To"], form["From"]) == ("whatsapp:+4791234567", "whatsapp:+4790000000")


@pytest.mark.parametrize(
    ("status", "body", "retryable", "dead"),
    [
        (429, {"code": 20429, "message": "Too Many Requests"}, True, False),
        (503, {"message": "Service Unavailable"}, True, False),
        (400, {"code": 21211, "message": "The 'To' number +1 is not valid."}, False, True),
        (400, {"code": 21614, "message": "'To' number is not a valid mobile number"}, False, True),
        (400, {"code": 21602, "message": "Message body is required."}, False, False),
        (401, {"code": 20003, "message": "Authenticate"}, False, False),
    ],
)
def test_sms_errors_are_mapped(
    provider: ProviderServer, status: int, body: dict[str, Any], retryable: bool, dead: bool
) -> None:
    provider.reply(status, body)
    channel = twilio(provider)
    error = refusal(channel, outgoing("sms", "+4791234567", {"body": "Hi"}))
    channel.close()
    assert (error.retryable, error.dead_address) == (retryable, dead)
    assert body["message"] in error.reason


def test_sms_timeouts_and_refused_connections_are_retryable(provider: ProviderServer) -> None:
    provider.reply(201, {"sid": "late"}, delay=1.0)
    slow = twilio(provider, timeout=0.2)
    error = refusal(slow, outgoing("sms", "+4791234567", {"body": "Hi"}))
    slow.close()
    assert error.retryable
    assert "timed out" in error.reason

    nobody = TwilioShaped(f"http://127.0.0.1:{free_port()}", "AC1", "t", "+1", "sms")
    error = refusal(nobody, outgoing("sms", "+4791234567", {"body": "Hi"}))
    nobody.close()
    assert error.retryable
    assert not error.dead_address


# -- webhook -------------------------------------------------------------------------------


def test_webhook_posts_the_payload_with_an_idempotency_key(provider: ProviderServer) -> None:
    provider.reply(202, {"ok": True})
    channel = WebhookChannel(allow_private=True, timeout=5.0)
    payload = {"event": "cart_abandoned", "profile": {"email": "a@example.org"}}
    channel.send(outgoing("webhook", f"{provider.url}/hooks/crm", {"payload": payload}))
    channel.close()
    [request] = provider.requests
    assert request.path == "/hooks/crm"
    assert request.headers["idempotency-key"] == "message-7-attempt-independent"
    assert request.headers["content-type"] == "application/json"
    assert request.json() == payload


@pytest.mark.parametrize(
    ("status", "retryable"), [(429, True), (500, True), (503, True), (400, False), (404, False)]
)
def test_webhook_errors_are_mapped(provider: ProviderServer, status: int, retryable: bool) -> None:
    provider.reply(status, {"error": "scripted refusal"})
    channel = WebhookChannel(allow_private=True, timeout=5.0)
    error = refusal(channel, outgoing("webhook", f"{provider.url}/h", {"payload": {"a": 1}}))
    channel.close()
    assert error.retryable is retryable
    assert not error.dead_address
    assert str(status) in error.reason


def test_webhook_refuses_private_addresses_unless_allowed(provider: ProviderServer) -> None:
    channel = WebhookChannel(allow_private=False, timeout=5.0)
    error = refusal(channel, outgoing("webhook", f"{provider.url}/h", {"payload": {"a": 1}}))
    channel.close()
    assert not error.retryable
    assert "loopback" in error.reason
    assert provider.requests == []
