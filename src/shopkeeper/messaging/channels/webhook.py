"""A journey's "call a webhook" step: POST a JSON object to the step's URL.

The URL is checked before every request (not only when the journey is saved), because
a host name's addresses can change in between; private and loopback addresses are
refused unless the operator allows them (SHOPKEEPER_WEBHOOK_ALLOW_PRIVATE).
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from shopkeeper.messaging.channels.base import WEBHOOK, Delivered, Outgoing, ProviderError
from shopkeeper.messaging.channels.http_errors import short, status_error, transport_error
from shopkeeper.segments.audiences.destinations import DestinationRefused, check_url


class WebhookChannel:
    name = WEBHOOK

    def __init__(self, allow_private: bool, timeout: float) -> None:
        self.allow_private = allow_private
        # No redirects: a public URL answering 307 to http://10.0.0.5/ would otherwise
        # slip past the address check.
        self._client = httpx.Client(
            timeout=timeout, follow_redirects=False, headers={"User-Agent": "Shopkeeper"}
        )

    def send(self, message: Outgoing) -> Delivered:
        payload = message.content.get("payload")
        if not isinstance(payload, Mapping):
            raise ProviderError("The webhook payload must be a JSON object.", retryable=False)
        try:
            check_url(message.recipient, allow_private=self.allow_private)
        except DestinationRefused as exc:
            raise ProviderError(f"Webhook refused: {exc}", retryable=False) from exc
        try:
            response = self._client.post(
                message.recipient,
                json=dict(payload),
                # The receiver can drop a retry of a request it already handled.
                headers={"Idempotency-Key": message.idempotency_key},
            )
        except httpx.HTTPError as exc:
            raise transport_error("The webhook", exc) from exc
        except (TypeError, ValueError) as exc:
            raise ProviderError(f"The webhook payload is not JSON: {exc}", retryable=False) from exc
        if response.is_success:
            return Delivered(provider_id=None)
        raise status_error("The webhook", response.status_code, short(response.text))

    def close(self) -> None:
        self._client.close()
