"""What the HTTP adapters (SMS, WhatsApp, mobile push, web push, webhook) share: which
answers are worth another attempt, and a reason a person can act on."""

from __future__ import annotations

from typing import Any

import httpx

from shopkeeper.messaging.channels.base import ProviderError

# Longest piece of a provider's answer kept in a reason: enough to read the provider's
# message, short enough for the messages table and the UI.
MAX_DETAIL = 300


def is_retryable_status(status: int) -> bool:
    """429 (slow down), 408 (the provider gave up waiting) and 5xx (the provider is
    unwell): another attempt later may succeed. Every other 4xx says the request itself
    is wrong, and sending it again would be refused again."""
    return status in (408, 429) or status >= 500


def json_object(response: httpx.Response) -> dict[str, Any]:
    """The response body as a JSON object, or {} when it is not one."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 3] + "..."


def status_error(provider: str, status: int, detail: str) -> ProviderError:
    """The default reading of a refusal: retry on 408/429/5xx, give up on the rest."""
    reason = f"{provider} answered HTTP {status}"
    if detail:
        reason += f": {short(detail)}"
    return ProviderError(reason, retryable=is_retryable_status(status))


def transport_error(provider: str, exc: httpx.HTTPError) -> ProviderError:
    """The request did not get an answer (refused connection, timeout, reset): the
    provider may be back later. Providers that take an idempotency key make the retry
    safe even when the first request did arrive."""
    kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "failed"
    return ProviderError(
        f"{provider} request {kind}: {short(str(exc)) or type(exc).__name__}", retryable=True
    )
