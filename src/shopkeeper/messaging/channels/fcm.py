"""Mobile push over an API shaped like Firebase Cloud Messaging's HTTP v1
(`POST /v1/projects/{project}/messages:send`). The OAuth access token comes from
settings; refreshing it is the operator's tooling's job.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx

from shopkeeper.messaging.channels.base import MOBILE_PUSH, Delivered, Outgoing, ProviderError
from shopkeeper.messaging.channels.http_errors import json_object, status_error, transport_error


def fcm_message(message: Outgoing) -> dict[str, Any]:
    """The request body for one device token."""
    content = message.content
    notification = {
        "title": str(content.get("title") or ""),
        "body": str(content.get("body") or ""),
    }
    if content.get("image"):
        notification["image"] = str(content["image"])
    # FCM's data map takes strings only: nested values travel as JSON text.
    data: dict[str, str] = {}
    if content.get("url"):
        data["url"] = str(content["url"])
    extra = content.get("data")
    if isinstance(extra, Mapping):
        for key, value in extra.items():
            data[str(key)] = value if isinstance(value, str) else json.dumps(value)
    body: dict[str, Any] = {"token": message.recipient, "notification": notification}
    if data:
        body["data"] = data
    return {"message": body}


def fcm_error(status: int, body: Mapping[str, Any]) -> ProviderError:
    """Read an FCM error answer: {"error": {"code", "message", "status",
    "details": [{"errorCode": "UNREGISTERED", ...}]}}."""
    error = body.get("error")
    error = error if isinstance(error, Mapping) else {}
    detail = str(error.get("message") or "")
    codes = {str(error.get("status") or "")}
    details = error.get("details")
    if isinstance(details, list):
        codes |= {str(d.get("errorCode")) for d in details if isinstance(d, Mapping)}
    codes.discard("")
    shown = f"{detail} ({', '.join(sorted(codes))})" if codes else detail
    if status in (401, 403):
        return ProviderError(
            f"FCM refused the credentials (HTTP {status}): check SHOPKEEPER_FCM_ACCESS_TOKEN "
            f"and SHOPKEEPER_FCM_PROJECT_ID. {shown}".strip(),
            retryable=False,
        )
    # 404 / UNREGISTERED: the app was uninstalled or the token expired. INVALID_ARGUMENT
    # is also how FCM refuses a malformed token, but it refuses a malformed message the
    # same way: only the former means the token is dead.
    token_invalid = "INVALID_ARGUMENT" in codes and "token" in detail.lower()
    if status == 404 or "UNREGISTERED" in codes or token_invalid:
        return ProviderError(
            f"FCM does not know this device token: {shown}".strip(),
            retryable=False,
            dead_address=True,
        )
    return status_error("FCM", status, shown)


class FcmShaped:
    name = MOBILE_PUSH

    def __init__(
        self, base_url: str, project_id: str, access_token: str, *, timeout: float = 15.0
    ) -> None:
        self.project_id = project_id
        self._path = f"/v1/projects/{project_id}/messages:send"
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"),
            timeout=timeout,
            headers={"Authorization": f"Bearer {access_token}", "User-Agent": "Shopkeeper"},
        )

    def send(self, message: Outgoing) -> Delivered:
        try:
            response = self._client.post(self._path, json=fcm_message(message))
        except httpx.HTTPError as exc:
            raise transport_error("FCM", exc) from exc
        answer = json_object(response)
        if response.is_success:
            name = answer.get("name")
            return Delivered(provider_id=str(name) if name else None)
        raise fcm_error(response.status_code, answer)

    def close(self) -> None:
        self._client.close()
