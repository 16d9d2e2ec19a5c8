"""Segment messages: validation and normalisation, without a model object per event.

A request body is decoded once with msgspec (a batch into raw message slices, so each
message's own size is known for free); each message is then checked and normalised into
the dict that the event log stores. Every rejection names the field and says what is
wrong in words a shop developer can act on.
"""

from __future__ import annotations

import uuid
import zlib
from dataclasses import dataclass, field
from typing import Any

import msgspec

from shopkeeper.identity.identifiers import JunkFilter, id_string
from shopkeeper.timeutil import ms_to_iso, parse_iso_ms

MESSAGE_TYPES = ("identify", "track", "page", "screen", "group", "alias")
PARTITIONS = 256
MAX_NAME_LENGTH = 500
MAX_ID_LENGTH = 500
MAX_MESSAGE_ID_LENGTH = 200
# Years outside this range are typos or unit mix-ups (seconds sent as milliseconds).
_MIN_MS = parse_iso_ms("1990-01-01T00:00:00Z")
_MAX_MS = parse_iso_ms("2200-01-01T00:00:00Z")


class BatchEnvelope(msgspec.Struct, forbid_unknown_fields=False):
    batch: list[msgspec.Raw]
    writeKey: str | None = None
    context: dict[str, Any] | None = None
    integrations: dict[str, Any] | None = None
    sentAt: str | None = None


_batch_decoder = msgspec.json.Decoder(BatchEnvelope)
_any_decoder = msgspec.json.Decoder()


class BodyError(Exception):
    """The request as a whole is unusable (status, code, message, field)."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field


@dataclass(slots=True)
class Rejection:
    index: int
    message_id: str | None
    code: str
    message: str
    field: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "messageId": self.message_id,
            "error": {"code": self.code, "message": self.message, "field": self.field},
        }


@dataclass(slots=True)
class Accepted:
    """A valid, normalised message, ready for the event log."""

    message_id: str
    type: str
    event: str | None
    user_id: str | None
    anonymous_id: str | None
    timestamp_ms: int
    partition: int
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Envelope:
    """What a batch carries for all of its messages, and what the server knows."""

    received_ms: int
    request_ip: str | None = None
    context: dict[str, Any] | None = None
    integrations: dict[str, Any] | None = None
    sent_at: str | None = None
    received_iso: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        # Formatted once per request, not once per message.
        object.__setattr__(self, "received_iso", ms_to_iso(self.received_ms))


@dataclass(frozen=True, slots=True)
class Limits:
    max_message_bytes: int = 32 * 1024
    max_request_bytes: int = 500 * 1024
    max_batch_messages: int = 2500


class _Invalid(Exception):
    def __init__(self, code: str, message: str, field: str | None) -> None:
        self.code = code
        self.message = message
        self.field = field


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(item) for item in value]
    return value


def has_nul(body: bytes) -> bool:
    return b"\\u0000" in body


def partition_of(key: str) -> int:
    return zlib.crc32(key.encode()) % PARTITIONS


def decode_json(body: bytes) -> Any:
    try:
        return _any_decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise BodyError(400, "invalid_json", f"The body is not valid JSON: {exc}") from None


def decode_batch(body: bytes) -> BatchEnvelope:
    try:
        return _batch_decoder.decode(body)
    except msgspec.ValidationError as exc:
        text = str(exc)
        field = "batch" if "$.batch" in text or "batch" in text else None
        raise BodyError(400, "invalid_batch", f"The batch is not usable: {text}", field) from None
    except msgspec.DecodeError as exc:
        raise BodyError(400, "invalid_json", f"The body is not valid JSON: {exc}") from None


class MessageValidator:
    def __init__(self, junk: JunkFilter, limits: Limits) -> None:
        self.junk = junk
        self.limits = limits

    def check(
        self,
        message: Any,
        *,
        index: int,
        size: int,
        envelope: Envelope,
        forced_type: str | None = None,
        strip_nul: bool = False,
    ) -> Accepted | Rejection:
        """Check one decoded message. `strip_nul`: the body held an escaped NUL character,
        which PostgreSQL cannot store in JSON text; such characters are removed."""
        if strip_nul:
            message = _without_nul(message)
        message_id = None
        if isinstance(message, dict):
            message_id = id_string(message.get("messageId"))
        try:
            if size > self.limits.max_message_bytes:
                raise _Invalid(
                    "message_too_large",
                    f"The message is {size} bytes; the limit is "
                    f"{self.limits.max_message_bytes // 1024} KB per message.",
                    None,
                )
            return self._normalise(message, envelope, forced_type)
        except _Invalid as exc:
            return Rejection(index, message_id, exc.code, exc.message, exc.field)

    def _normalise(self, message: Any, envelope: Envelope, forced_type: str | None) -> Accepted:
        if not isinstance(message, dict):
            raise _Invalid("invalid_message", "A message must be a JSON object.", None)
        msg = dict(message)
        msg.pop("writeKey", None)  # never store a key in the event log

        msg_type = forced_type or msg.get("type")
        if not isinstance(msg_type, str) or msg_type.lower() not in MESSAGE_TYPES:
            raise _Invalid(
                "invalid_type",
                f"type must be one of {', '.join(MESSAGE_TYPES)}; got {msg_type!r}.",
                "type",
            )
        msg_type = msg_type.lower()
        msg["type"] = msg_type

        for name in ("context", "properties", "traits", "integrations"):
            value = msg.get(name)
            if value is None:
                msg.pop(name, None)
            elif not isinstance(value, dict):
                raise _Invalid("invalid_field", f"{name} must be a JSON object.", name)
        if envelope.context:
            msg["context"] = {**envelope.context, **msg.get("context", {})}
        if envelope.integrations:
            msg["integrations"] = {**envelope.integrations, **msg.get("integrations", {})}
        if msg_type == "identify" and "traits" not in msg:
            # RudderStack's server-side SDKs send an identify's traits in context.traits
            # only; read them as the identify's traits, as RudderStack itself does.
            context_traits = msg.get("context", {}).get("traits")
            if isinstance(context_traits, dict):
                msg["traits"] = dict(context_traits)

        user_id = self._id(msg, "userId")
        anonymous_id = self._id(msg, "anonymousId")
        if msg_type == "alias":
            previous = self._id(msg, "previousId")
            if previous is None:
                raise _Invalid("missing_field", "alias needs a previousId.", "previousId")
            if user_id is None:
                raise _Invalid("missing_field", "alias needs a userId.", "userId")
        usable = [
            value for value in (user_id, anonymous_id) if value and not self.junk.is_junk(value)
        ]
        if not usable:
            raise _Invalid(
                "missing_identity",
                "Every message needs a userId or an anonymousId (placeholder values such as "
                "'null', 'undefined' or 'guest' do not count).",
                "userId",
            )

        event: str | None = None
        if msg_type == "track":
            event = msg.get("event")
            if not isinstance(event, str) or not event.strip():
                raise _Invalid("missing_field", "track needs an event name.", "event")
            if len(event) > MAX_NAME_LENGTH:
                raise _Invalid(
                    "invalid_field", f"event is longer than {MAX_NAME_LENGTH} characters.", "event"
                )
        elif msg_type in ("page", "screen"):
            page_name = msg.get("name")
            if page_name is not None and not isinstance(page_name, str):
                raise _Invalid("invalid_field", "name must be a string.", "name")
            event = page_name[:MAX_NAME_LENGTH] if page_name else None
        elif msg_type == "group":
            group_id = self._id(msg, "groupId")
            if group_id is None:
                raise _Invalid("missing_field", "group needs a groupId.", "groupId")

        message_id = self._id(msg, "messageId", MAX_MESSAGE_ID_LENGTH)
        if message_id is None:
            message_id = f"sk-{uuid.uuid4()}"
            msg["messageId"] = message_id

        timestamp_ms = self._timestamps(msg, envelope)

        if envelope.request_ip:
            context = msg.setdefault("context", {})
            if not context.get("ip"):
                context["ip"] = envelope.request_ip

        key = anonymous_id if anonymous_id and not self.junk.is_junk(anonymous_id) else usable[0]
        return Accepted(
            message_id=message_id,
            type=msg_type,
            event=event,
            user_id=user_id,
            anonymous_id=anonymous_id,
            timestamp_ms=timestamp_ms,
            partition=partition_of(key),
            payload=msg,
        )

    @staticmethod
    def _id(msg: dict[str, Any], name: str, max_length: int = MAX_ID_LENGTH) -> str | None:
        raw = msg.get(name)
        if raw is None:
            msg.pop(name, None)
            return None
        value = id_string(raw)
        if value is None:
            if isinstance(raw, str):  # empty or blank
                msg.pop(name, None)
                return None
            raise _Invalid("invalid_field", f"{name} must be a string or a number.", name)
        if len(value) > max_length:
            raise _Invalid("invalid_field", f"{name} is longer than {max_length} characters.", name)
        msg[name] = value
        return value

    @staticmethod
    def _time(msg: dict[str, Any], name: str) -> int | None:
        raw = msg.get(name)
        if raw is None:
            return None
        if not isinstance(raw, str):
            raise _Invalid("invalid_timestamp", f"{name} must be an ISO-8601 date string.", name)
        try:
            value = parse_iso_ms(raw)
        except ValueError:
            raise _Invalid(
                "invalid_timestamp",
                f"{name} is not an ISO-8601 date-time: {raw[:40]!r}.",
                name,
            ) from None
        if not _MIN_MS <= value < _MAX_MS:
            raise _Invalid("invalid_timestamp", f"{name} is not between 1990 and 2200.", name)
        return value

    def _timestamps(self, msg: dict[str, Any], envelope: Envelope) -> int:
        """Set receivedAt and a clock-skew-corrected timestamp, as Segment does:
        timestamp = receivedAt - (sentAt - originalTimestamp)."""
        received = envelope.received_ms
        original = self._time(msg, "originalTimestamp")
        if original is None:
            original = self._time(msg, "timestamp")
            if original is not None:
                msg["originalTimestamp"] = msg["timestamp"]
        if "sentAt" not in msg and envelope.sent_at is not None:
            msg["sentAt"] = envelope.sent_at
        sent = self._time(msg, "sentAt")
        if original is None:
            timestamp = received
        elif sent is None:
            timestamp = original
        else:
            timestamp = received - (sent - original)
        msg["receivedAt"] = envelope.received_iso
        msg["timestamp"] = ms_to_iso(timestamp)
        return timestamp
