"""SMS and WhatsApp over a REST API shaped like Twilio's Messages resource (Twilio
itself, or any provider or test server that speaks the same shape at another base URL).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from shopkeeper.messaging.channels.base import SMS, WHATSAPP, Delivered, Outgoing, ProviderError
from shopkeeper.messaging.channels.http_errors import json_object, status_error, transport_error

# Twilio error codes that say the number itself can never receive the message:
# 21211 invalid 'To' number, 21614 'To' is not a mobile number, 21610 the person
# replied STOP (Twilio blocks every further message to them from this sender).
DEAD_NUMBER_CODES = frozenset({21211, 21610, 21614})

WHATSAPP_PREFIX = "whatsapp:"


def address_for(channel: str, number: str) -> str:
    """WhatsApp numbers travel as `whatsapp:+15551234567` in Twilio's API."""
    if channel == WHATSAPP and not number.startswith(WHATSAPP_PREFIX):
        return WHATSAPP_PREFIX + number
    return number


def twilio_error(status: int, body: Mapping[str, Any]) -> ProviderError:
    """Read a Twilio-shaped error answer: {"code": 21211, "message": "...", ...}."""
    code = body.get("code")
    detail = str(body.get("message") or "")
    if code is not None:
        detail = f"{detail} (error {code})".strip()
    if status in (401, 403):
        return ProviderError(
            f"The SMS provider refused the credentials (HTTP {status}): check "
            f"SHOPKEEPER_SMS_ACCOUNT_SID and SHOPKEEPER_SMS_AUTH_TOKEN. {detail}".strip(),
            retryable=False,
        )
    if status == 400 and code in DEAD_NUMBER_CODES:
        return ProviderError(
            f"The SMS provider cannot deliver to this number: {detail}",
            retryable=False,
            dead_address=True,
        )
    return status_error("The SMS provider", status, detail)


class TwilioShaped:
    def __init__(
        self,
        base_url: str,
        account_sid: str,
        auth_token: str,
        sender: str,
        channel: str,
        *,
        timeout: float = 15.0,
    ) -> None:
        if channel not in (SMS, WHATSAPP):
            raise ValueError(f"TwilioShaped sends sms or whatsapp, not {channel!r}.")
        self.name = channel
        self.sender = sender
        self._path = f"/2010-04-01/Accounts/{account_sid}/Messages.json"
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"),
            auth=(account_sid, auth_token),
            timeout=timeout,
            headers={"User-Agent": "Shopkeeper"},
        )

    def send(self, message: Outgoing) -> Delivered:
        body = str(message.content.get("body") or "")
        if not body.strip():
            raise ProviderError("The message has no body.", retryable=False)
        form = {
            "To": address_for(self.name, message.recipient),
            "From": address_for(self.name, self.sender),
            "Body": body,
        }
        try:
            response = self._client.post(
                self._path,
                data=form,
                # Twilio drops a second request with the same token, so a retry after a
                # timeout (the first request may have arrived) cannot send twice.
                headers={"I-Twilio-Idempotency-Token": message.idempotency_key},
            )
        except httpx.HTTPError as exc:
            raise transport_error("The SMS provider", exc) from exc
        answer = json_object(response)
        if response.is_success:
            sid = answer.get("sid")
            # Accepted even without a sid: raising here would send it again.
            return Delivered(provider_id=str(sid) if sid else None)
        raise twilio_error(response.status_code, answer)

    def close(self) -> None:
        self._client.close()
