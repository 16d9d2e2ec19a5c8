"""Stable message ids: the same row imported twice is the same message, which the event
log then skips as a duplicate (unique on source and messageId)."""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

from shopkeeper.ingest.spec import has_nul

PREFIXES = {"customers": "crm-customer", "orders": "pos-order"}
# Sorted keys: the id depends on what the row says, not on the order of its columns.
_encode = msgspec.json.Encoder(order="sorted").encode


def stamp(kind: str, message: dict[str, Any]) -> tuple[int, bool]:
    """Set `messageId` from the kind and the message's content. Returns the message's
    encoded size (for the per-message limit) and whether it holds NUL characters (which
    the validator strips: PostgreSQL cannot store them in JSON)."""
    body = _encode(message)
    digest = hashlib.sha256(kind.encode() + b"\0" + body).hexdigest()[:32]
    message["messageId"] = f"{PREFIXES[kind]}-{digest}"
    return len(body) + 60, has_nul(body)
