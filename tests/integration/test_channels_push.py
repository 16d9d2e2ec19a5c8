"""Push channels against a real local server standing in for the push services: mobile
push shaped like FCM HTTP v1, and web push (VAPID-signed, aes128gcm-encrypted), which the
test decrypts with the subscription's own key, as the browser would."""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Iterator
from typing import Any

import http_ece
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from shopkeeper.messaging.channels.fcm import FcmShaped
from shopkeeper.messaging.channels.webpush import WebPush
from tests.integration.channel_servers import (
    ProviderServer,
    outgoing,
    provider_server,
    refusal,
)


@pytest.fixture(scope="module")
def running_provider() -> Iterator[ProviderServer]:
    with provider_server() as provider:
        yield provider


@pytest.fixture
def provider(running_provider: ProviderServer) -> ProviderServer:
    running_provider.reset()
    return running_provider


# -- mobile push (FCM) ---------------------------------------------------------------------

PUSH_CONTENT = {
    "title": "Still thinking about it?",
    "body": "Your teapot is waiting",
    "url": "https://shop.example/cart",
    "image": "https://shop.example/teapot.jpg",
    "icon": "https://shop.example/icon.png",
    "data": {"cart_id": "c-9", "items": 2, "sale": True},
}


def test_fcm_posts_a_v1_message_with_bearer_token(provider: ProviderServer) -> None:
    provider.reply(200, {"name": "projects/shop-app/messages/0:1500415314455276%31bd1c"})
    channel = FcmShaped(provider.url, "shop-app", "ya29.token")
    delivered = channel.send(outgoing("mobile_push", "device-token-1", PUSH_CONTENT))
    channel.close()

    assert delivered.provider_id == "projects/shop-app/messages/0:1500415314455276%31bd1c"
    [request] = provider.requests
    assert request.path == "/v1/projects/shop-app/messages:send"
    assert request.headers["authorization"] == "Bearer ya29.token"
    assert request.json() == {
        "message": {
            "token": "device-token-1",
            "notification": {
                "title": "Still thinking about it?",
                "body": "Your teapot is waiting",
                "image": "https://shop.example/teapot.jpg",
            },
            "data": {
                "url": "https://shop.example/cart",
                "cart_id": "c-9",
                "items": "2",
                "sale": "true",
            },
        }
    }


def fcm_error_body(code: int, status: str, message: str, error_code: str | None) -> Any:
    details = (
        [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": error_code}]
        if error_code
        else []
    )
    return {"error": {"code": code, "message": message, "status": status, "details": details}}


@pytest.mark.parametrize(
    ("status", "body", "retryable", "dead"),
    [
        (
            404,
            fcm_error_body(404, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED"),
            False,
            True,
        ),
        (
            400,
            fcm_error_body(
                400,
                "INVALID_ARGUMENT",
                "The registration token is not a valid FCM registration token",
                "INVALID_ARGUMENT",
            ),
            False,
            True,
        ),
        (
            400,
            fcm_error_body(400, "INVALID_ARGUMENT", "Invalid JSON payload received.", None),
            False,
            False,
        ),
        (
            429,
            fcm_error_body(429, "RESOURCE_EXHAUSTED", "Quota exceeded", "QUOTA_EXCEEDED"),
            True,
            False,
        ),
        (
            503,
            fcm_error_body(503, "UNAVAILABLE", "The service is unavailable", "UNAVAILABLE"),
            True,
            False,
        ),
        (
            401,
            fcm_error_body(401, "UNAUTHENTICATED", "Request had invalid credentials.", None),
            False,
            False,
        ),
        (403, fcm_error_body(403, "PERMISSION_DENIED", "Permission denied", None), False, False),
    ],
)
def test_fcm_errors_are_mapped(
    provider: ProviderServer, status: int, body: Any, retryable: bool, dead: bool
) -> None:
    provider.reply(status, body)
    channel = FcmShaped(provider.url, "shop-app", "ya29.token")
    error = refusal(channel, outgoing("mobile_push", "device-token-1", PUSH_CONTENT))
    channel.close()
    assert (error.retryable, error.dead_address) == (retryable, dead)
    if status in (401, 403):
        assert "credentials" in error.reason
        assert "SHOPKEEPER_FCM_ACCESS_TOKEN" in error.reason


# -- web push ------------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Browser:
    """What a browser holds for one push subscription: its ECDH key pair and auth secret."""

    def __init__(self) -> None:
        self.private_key = ec.generate_private_key(ec.SECP256R1())
        self.auth = os.urandom(16)

    @property
    def keys(self) -> dict[str, str]:
        public = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {"p256dh": b64url(public), "auth": b64url(self.auth)}

    def decrypt(self, body: bytes) -> Any:
        plain = http_ece.decrypt(
            body, private_key=self.private_key, auth_secret=self.auth, version="aes128gcm"
        )
        return json.loads(plain)


@pytest.fixture(scope="module")
def vapid() -> tuple[str, ec.EllipticCurvePublicKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    raw = key.private_numbers().private_value.to_bytes(32, "big")
    return b64url(raw), key.public_key()


def verify_vapid(header: str, public_key: ec.EllipticCurvePublicKey) -> dict[str, Any]:
    """Check a `vapid t=<JWT>,k=<public key>` header the way a push service does and
    return the token's claims."""
    scheme, _, params = header.partition(" ")
    assert scheme == "vapid"
    fields = dict(part.strip().split("=", 1) for part in params.split(","))
    sent_key = unb64url(fields["k"])
    assert sent_key == public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    head, claims, signature = fields["t"].split(".")
    assert json.loads(unb64url(head))["alg"] == "ES256"
    raw = unb64url(signature)
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    # Raises InvalidSignature unless the shop's private key signed it.
    public_key.verify(der, f"{head}.{claims}".encode(), ec.ECDSA(hashes.SHA256()))
    return json.loads(unb64url(claims))  # type: ignore[no-any-return]


def test_web_push_is_encrypted_signed_and_readable_by_the_browser(
    provider: ProviderServer, vapid: tuple[str, ec.EllipticCurvePublicKey]
) -> None:
    private, public = vapid
    browser = Browser()
    provider.reply(201, None, headers={"Location": f"{provider.url}/m/42"})
    channel = WebPush(private, "mailto:ops@shop.example", 5.0, allow_private=True)
    endpoint = f"{provider.url}/push/sub-abc"
    delivered = channel.send(outgoing("web_push", endpoint, PUSH_CONTENT, keys=browser.keys))
    channel.close()

    assert delivered.provider_id == f"{provider.url}/m/42"
    [request] = provider.requests
    assert request.path == "/push/sub-abc"
    assert request.headers["content-encoding"] == "aes128gcm"
    assert int(request.headers["ttl"]) > 0
    assert b"teapot" not in request.body
    claims = verify_vapid(request.headers["authorization"], public)
    assert claims["aud"] == provider.url
    assert claims["sub"] == "mailto:ops@shop.example"
    assert time.time() < claims["exp"] <= time.time() + 24 * 3600
    assert browser.decrypt(request.body) == PUSH_CONTENT


@pytest.mark.parametrize(
    ("status", "retryable", "dead"),
    [
        (410, False, True),
        (404, False, True),
        (429, True, False),
        (502, True, False),
        (400, False, False),
    ],
)
def test_web_push_errors_are_mapped(
    provider: ProviderServer,
    vapid: tuple[str, ec.EllipticCurvePublicKey],
    status: int,
    retryable: bool,
    dead: bool,
) -> None:
    provider.reply(status, {"error": "scripted"})
    channel = WebPush(vapid[0], "mailto:ops@shop.example", 5.0, allow_private=True)
    message = outgoing("web_push", f"{provider.url}/push/x", PUSH_CONTENT, keys=Browser().keys)
    error = refusal(channel, message)
    channel.close()
    assert (error.retryable, error.dead_address) == (retryable, dead)


def test_web_push_refuses_private_endpoints_and_broken_keys(
    provider: ProviderServer, vapid: tuple[str, ec.EllipticCurvePublicKey]
) -> None:
    strict = WebPush(vapid[0], "mailto:ops@shop.example", 5.0)
    message = outgoing("web_push", f"{provider.url}/push/x", PUSH_CONTENT, keys=Browser().keys)
    error = refusal(strict, message)
    strict.close()
    assert error.dead_address
    assert "loopback" in error.reason

    lenient = WebPush(vapid[0], "mailto:ops@shop.example", 5.0, allow_private=True)
    broken = outgoing("web_push", f"{provider.url}/push/x", PUSH_CONTENT, keys={"auth": "x"})
    error = refusal(lenient, broken)
    lenient.close()
    assert error.dead_address
    assert not error.retryable
    assert provider.requests == []
