"""The Segment HTTP Tracking API: /v1/identify, track, page, screen, group, alias, batch
(and /v1/import, an alias of batch).

The handlers take the raw request (no pydantic model per event): the body is read with a
size limit, gunzipped with a limit on the expanded size, decoded with msgspec and checked
message by message. The answer is sent only after the event log's commit.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from typing import TYPE_CHECKING, Any

import msgspec
from fastapi import APIRouter, Request, Response

from shopkeeper.errors import ApiError
from shopkeeper.ingest.sources import Source
from shopkeeper.ingest.spec import (
    Accepted,
    BodyError,
    Envelope,
    Rejection,
    decode_batch,
    decode_json,
    has_nul,
)
from shopkeeper.ingest.writer import StorageUnavailable, event_row
from shopkeeper.timeutil import parse_iso_ms

if TYPE_CHECKING:
    from shopkeeper.bootstrap import Services

router = APIRouter(prefix="/v1", tags=["Tracking API (Segment-compatible)"])

_encode = msgspec.json.Encoder().encode
_OK = _encode({"success": True})

_MESSAGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": (
        "A Segment message (https://segment.com/docs/connections/spec/). userId or "
        "anonymousId is required; track needs event; alias needs previousId and userId; "
        "group needs groupId. At most 32 KB."
    ),
    "properties": {
        "type": {
            "type": "string",
            "enum": list(("identify", "track", "page", "screen", "group", "alias")),
        },
        "userId": {"type": ["string", "number"]},
        "anonymousId": {"type": ["string", "number"]},
        "messageId": {"type": "string"},
        "event": {"type": "string"},
        "name": {"type": "string"},
        "previousId": {"type": ["string", "number"]},
        "groupId": {"type": ["string", "number"]},
        "properties": {"type": "object"},
        "traits": {"type": "object"},
        "context": {"type": "object"},
        "integrations": {"type": "object"},
        "timestamp": {"type": "string", "format": "date-time"},
        "originalTimestamp": {"type": "string", "format": "date-time"},
        "sentAt": {"type": "string", "format": "date-time"},
        "writeKey": {"type": "string"},
    },
}
_BATCH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["batch"],
    "properties": {
        "batch": {"type": "array", "items": _MESSAGE_SCHEMA, "maxItems": 2500},
        "writeKey": {"type": "string"},
        "context": {"type": "object"},
        "integrations": {"type": "object"},
        "sentAt": {"type": "string", "format": "date-time"},
    },
}
_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "field": {"type": ["string", "null"]},
            },
        },
        "code": {"type": "string", "description": "Same as error.code, for Segment clients."},
        "message": {"type": "string", "description": "Same as error.message."},
    },
}


def _body_doc(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "description": (
                "JSON, optionally gzip-compressed (Content-Encoding: gzip). text/plain is "
                "accepted too, for sendBeacon. Authenticate with the source's write key as "
                "the HTTP Basic username (empty password) or as writeKey in the body."
            ),
            "content": {"application/json": {"schema": schema}, "text/plain": {"schema": schema}},
        }
    }


def _responses(batch: bool) -> dict[int | str, dict[str, Any]]:
    ok: dict[str, Any] = {
        "type": "object",
        "properties": {"success": {"type": "boolean"}},
    }
    if batch:
        ok["properties"].update(
            {
                "accepted": {"type": "integer"},
                "duplicates": {"type": "integer"},
                "rejected": {"type": "array", "items": {"type": "object"}},
            }
        )
    error = {"content": {"application/json": {"schema": _ERROR_SCHEMA}}}
    return {
        200: {
            "description": "Written to the event log (or a known duplicate).",
            "content": {"application/json": {"schema": ok}},
        },
        400: {"description": "Malformed JSON or invalid message(s).", **error},
        401: {"description": "Missing or unknown write key.", **error},
        413: {"description": "Over the request, message or expanded-size limit.", **error},
        503: {"description": "The event log could not be written; retry.", **error},
    }


def _v1_error(exc: ApiError) -> Response:
    # Segment's own clients read `code` and `message` at the top level of an error.
    body = exc.body()
    body["code"] = exc.code
    body["message"] = exc.message
    return Response(
        _encode(body), status_code=exc.status, media_type="application/json", headers=exc.headers
    )


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(
            413, "request_too_large", f"The request is over the {limit // 1024} KB limit."
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(
                413, "request_too_large", f"The request is over the {limit // 1024} KB limit."
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _gunzip(body: bytes, limit: int) -> bytes:
    """Expand a gzip body, refusing to expand past `limit` (a gzip bomb stops there)."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error:
        raise ApiError(
            400, "invalid_gzip", "The body is marked gzip but is not valid gzip data."
        ) from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise ApiError(
            413,
            "request_too_large",
            f"The request expands to more than the {limit // 1024} KB limit.",
        )
    if not inflater.eof:
        raise ApiError(400, "invalid_gzip", "The gzip body is truncated.")
    return out


def _basic_key(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise ApiError(
            401, "unauthorized", "The Authorization header is not valid Basic auth."
        ) from None
    return decoded.partition(":")[0] or None


def _source(services: Services, key: str | None) -> Source:
    if not key:
        raise ApiError(
            401,
            "unauthorized",
            "A write key is required: send it as the HTTP Basic username or as writeKey "
            "in the body.",
        )
    source = services.write_keys.lookup(key)
    if source is None:
        raise ApiError(401, "unauthorized", "Unknown or revoked write key.")
    return source


async def _ingest(request: Request, kind: str) -> Response:
    services: Services = request.app.state.services
    metrics = services.metrics
    try:
        return await _handle(request, services, kind)
    except ApiError as exc:
        metrics.events_rejected.labels(exc.code).inc()
        return _v1_error(exc)


async def _handle(request: Request, services: Services, kind: str) -> Response:
    settings = services.settings
    received = services.clock.now_ms()
    body = await _read_body(request, settings.max_request_bytes)
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding == "gzip":
        body = _gunzip(body, settings.max_request_bytes)
    elif encoding not in ("", "identity"):
        raise ApiError(
            415,
            "unsupported_encoding",
            f"Content-Encoding {encoding!r} is not supported; use gzip.",
        )
    strip_nul = has_nul(body)
    header_key = _basic_key(request.headers.get("authorization"))
    if header_key is not None:
        source = _source(services, header_key)
    client = request.client
    envelope_ip = client.host if client else None

    try:
        if kind == "batch":
            batch = decode_batch(body)
            if header_key is None:
                source = _source(services, batch.writeKey)
            if len(batch.batch) > settings.max_batch_messages:
                raise ApiError(
                    400,
                    "batch_too_large",
                    f"The batch holds {len(batch.batch)} messages; the limit is "
                    f"{settings.max_batch_messages}.",
                    "batch",
                )
            if batch.sentAt is not None:
                _check_sent_at(batch.sentAt)
            envelope = Envelope(
                received_ms=received,
                request_ip=envelope_ip,
                context=batch.context,
                integrations=batch.integrations,
                sent_at=batch.sentAt,
            )
            results = []
            for index, raw in enumerate(batch.batch):
                try:
                    message = msgspec.json.decode(raw)
                except msgspec.DecodeError:  # pragma: no cover - the batch decoded
                    message = None
                results.append(
                    services.validator.check(
                        message,
                        index=index,
                        size=len(raw),
                        envelope=envelope,
                        strip_nul=strip_nul,
                    )
                )
        else:
            message = decode_json(body)
            if header_key is None:
                key = message.get("writeKey") if isinstance(message, dict) else None
                source = _source(services, key if isinstance(key, str) else None)
            envelope = Envelope(received_ms=received, request_ip=envelope_ip)
            results = [
                services.validator.check(
                    message,
                    index=0,
                    size=len(body),
                    envelope=envelope,
                    forced_type=kind,
                    strip_nul=strip_nul,
                )
            ]
    except BodyError as exc:
        raise ApiError(exc.status, exc.code, exc.message, exc.field) from None

    accepted = [r for r in results if isinstance(r, Accepted)]
    rejected = [r for r in results if isinstance(r, Rejection)]
    for rejection in rejected:
        services.metrics.events_rejected.labels(rejection.code).inc()
    if kind != "batch" and rejected:
        only = rejected[0]
        status = 413 if only.code == "message_too_large" else 400
        return _v1_error(ApiError(status, only.code, only.message, only.field))
    if kind == "batch" and rejected and not accepted:
        first = rejected[0]
        return _v1_error(
            ApiError(
                400,
                "invalid_batch",
                f"No message in the batch is valid; the first: {first.message}",
                "batch",
                extra={"rejected": [r.to_json() for r in rejected]},
            )
        )

    rows = [event_row(a, source.id, received) for a in accepted]
    try:
        result = await services.writer.write(rows)
    except StorageUnavailable:
        raise ApiError(
            503,
            "storage_unavailable",
            "The event log could not be written; nothing was stored. Retry later.",
            headers={"Retry-After": "5"},
        ) from None
    services.metrics.events_received.labels(source.name).inc(result.inserted)
    if result.duplicates:
        services.metrics.events_duplicate.inc(result.duplicates)

    if kind != "batch":
        return Response(_OK, media_type="application/json")
    payload: dict[str, Any] = {
        "success": True,
        "accepted": result.inserted,
        "duplicates": result.duplicates,
        "rejected": [r.to_json() for r in rejected],
    }
    return Response(_encode(payload), media_type="application/json")


def _check_sent_at(value: str) -> None:
    try:
        parse_iso_ms(value)
    except ValueError:
        raise ApiError(
            400,
            "invalid_timestamp",
            f"sentAt is not an ISO-8601 date-time: {value[:40]!r}.",
            "sentAt",
        ) from None


def _route(kind: str, summary: str) -> None:
    schema = _BATCH_SCHEMA if kind == "batch" else _MESSAGE_SCHEMA

    async def endpoint(request: Request) -> Response:
        return await _ingest(request, kind)

    endpoint.__name__ = f"v1_{kind}"
    # analytics.js (classic and analytics-next) posts to the one-letter paths.
    for path, label in ((kind, summary), (kind[0], f"Same as /v1/{kind} (analytics.js path)")):
        router.add_api_route(
            f"/{path}",
            endpoint,
            methods=["POST"],
            summary=label,
            openapi_extra=_body_doc(schema),
            responses=_responses(kind == "batch"),
            response_class=Response,
            operation_id=f"v1_{path}",
        )


for _kind, _summary in (
    ("identify", "Identify a user and record their traits"),
    ("track", "Record an action the user took"),
    ("page", "Record a page view"),
    ("screen", "Record a mobile screen view"),
    ("group", "Associate the user with a group (company, household)"),
    ("alias", "Link a previous id to a user id"),
    ("batch", "Send up to 2,500 messages of any type at once"),
):
    _route(_kind, _summary)


async def _import(request: Request) -> Response:
    return await _ingest(request, "batch")


router.add_api_route(
    "/import",
    _import,
    methods=["POST"],
    summary="Same as /v1/batch (Segment's historical import endpoint)",
    openapi_extra=_body_doc(_BATCH_SCHEMA),
    responses=_responses(True),
    response_class=Response,
)


class V1Cors:
    """CORS for /v1/* only: browsers may send events from any shop page. The admin API
    stays same-origin."""

    HEADERS = [
        (b"access-control-allow-origin", b"*"),
        (b"access-control-allow-methods", b"POST, OPTIONS"),
        (b"access-control-allow-headers", b"Content-Type, Authorization, Content-Encoding"),
        (b"access-control-max-age", b"86400"),
    ]

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS":
            await send(
                {"type": "http.response.start", "status": 204, "headers": list(self.HEADERS)}
            )
            await send({"type": "http.response.body", "body": b""})
            return

        async def send_with_cors(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *self.HEADERS]}
            await send(message)

        await self.app(scope, receive, send_with_cors)
