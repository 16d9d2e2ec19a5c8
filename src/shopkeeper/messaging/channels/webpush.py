"""Web push to browsers through their push services (RFC 8030), with `pywebpush`: the
payload is encrypted for the subscription (RFC 8291, aes128gcm) and the request signed
with the shop's VAPID key (RFC 8292).

A subscription's endpoint comes from a browser, so from anyone: it is checked like a
webhook URL before every push, or the server could be made to POST to its own network.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any
from urllib.parse import urlsplit

import requests
from cryptography.hazmat.primitives import serialization
from py_vapid import Vapid02, VapidException
from pywebpush import WebPusher, WebPushException

from shopkeeper.messaging.channels.base import WEB_PUSH, Delivered, Outgoing, ProviderError
from shopkeeper.messaging.channels.http_errors import short, status_error
from shopkeeper.segments.audiences.destinations import DestinationRefused, check_url

PAYLOAD_FIELDS = ("title", "body", "url", "icon", "image", "data")
# How long the push service keeps a message for a browser that is offline.
DEFAULT_TTL_SECONDS = 24 * 60 * 60
# VAPID tokens may live at most 24 hours (RFC 8292); half leaves room for clock skew.
TOKEN_LIFETIME_SECONDS = 12 * 60 * 60


def push_payload(message: Outgoing) -> bytes:
    """What the service worker receives, before encryption."""
    content = message.content
    payload = {key: content[key] for key in PAYLOAD_FIELDS if content.get(key) is not None}
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def origin(endpoint: str) -> str:
    parts = urlsplit(endpoint)
    return f"{parts.scheme}://{parts.netloc}"


def load_vapid_key(private_key: str, subject: str) -> Any:
    """The VAPID key from its base64url text (raw 32 bytes, or DER), refused with a
    ValueError now rather than at the first push."""
    try:
        vapid = Vapid02.from_string(private_key=private_key)
        # Signs a throwaway token: py_vapid checks the subject (mailto: or https:).
        vapid.sign({"sub": subject, "aud": "https://push.example", "exp": 1})
    except VapidException as exc:
        raise ValueError(f"The VAPID settings are not usable: {exc}") from None
    except (ValueError, TypeError) as exc:
        raise ValueError(f"The VAPID private key cannot be read: {exc}") from None
    return vapid


class WebPush:
    name = WEB_PUSH

    def __init__(
        self,
        vapid_private_key: str,
        vapid_subject: str,
        timeout: float,
        *,
        ttl: int = DEFAULT_TTL_SECONDS,
        allow_private: bool = False,
    ) -> None:
        self.vapid_subject = vapid_subject
        self.timeout = timeout
        self.ttl = ttl
        self.allow_private = allow_private
        self._vapid = load_vapid_key(vapid_private_key, vapid_subject)
        # Pushes to one service (most go to a handful) reuse its connection.
        self._session = requests.Session()

    @property
    def public_key(self) -> str:
        """The application server key browsers subscribe with (base64url, uncompressed
        P-256 point): the public half of the VAPID key."""
        raw = self._vapid.public_key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    def send(self, message: Outgoing) -> Delivered:
        endpoint = message.recipient
        try:
            check_url(endpoint, allow_private=self.allow_private)
        except DestinationRefused as exc:
            raise ProviderError(
                f"Push endpoint refused: {exc}", retryable=False, dead_address=True
            ) from exc
        headers = self._vapid.sign(
            {
                "sub": self.vapid_subject,
                "aud": origin(endpoint),
                "exp": int(time.time()) + TOKEN_LIFETIME_SECONDS,
            }
        )
        subscription = {"endpoint": endpoint, "keys": dict(message.keys)}
        try:
            pusher = WebPusher(subscription, requests_session=self._session)
            response = pusher.send(
                push_payload(message),
                headers,
                ttl=self.ttl,
                content_encoding="aes128gcm",
                timeout=self.timeout,
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            kind = "timed out" if isinstance(exc, requests.Timeout) else "failed"
            raise ProviderError(
                f"The push service request {kind}: {short(str(exc))}", retryable=True
            ) from exc
        except (requests.RequestException, WebPushException, ValueError, TypeError) as exc:
            # Missing or malformed keys (p256dh not a P-256 point, auth not base64) or
            # an endpoint requests cannot use: this subscription can never work.
            raise ProviderError(
                f"The push subscription is not usable: {short(str(exc))}",
                retryable=False,
                dead_address=True,
            ) from exc
        status = int(response.status_code)
        if 200 <= status < 300:
            # The push service's URL for this message (RFC 8030 section 5).
            return Delivered(provider_id=response.headers.get("Location"))
        if status in (404, 410):
            # The browser unsubscribed or the subscription expired.
            raise ProviderError(
                f"The push subscription is gone (HTTP {status}).",
                retryable=False,
                dead_address=True,
            )
        raise status_error("The push service", status, short(response.text))

    def close(self) -> None:
        self._session.close()
