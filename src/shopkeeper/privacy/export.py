"""Export: everything held about a person, as one JSON document.

The document holds the single customer view (traits, computed attributes and their
bookkeeping), every identity, consent and merge record, every event applied to the
person's profiles (oldest first, with the payload as stored), the events not applied yet
that carry their identifiers, the consent history those events hold, and `messages`
(filled by later stages). It covers the same rows that an erase deletes (person.py).

A long history is streamed: the events are read with a server-side cursor and written in
chunks, so memory does not grow with the history.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shopkeeper import __version__
from shopkeeper.admin import audit
from shopkeeper.identity.identifiers import IdentifierExtractor, JunkFilter
from shopkeeper.privacy.person import Person, ProfileNotFound, find_person
from shopkeeper.profiles.consents import extract_consents
from shopkeeper.profiles.model import EventView
from shopkeeper.profiles.view import customer_view
from shopkeeper.storage import tables as t
from shopkeeper.storage.db import Database
from shopkeeper.timeutil import ms_to_iso

__all__ = ["ProfileNotFound", "export_profile", "open_export_stream", "record_export"]

_CHUNK_BYTES = 64 * 1024
_STATUS = {t.PENDING: "pending", t.APPLIED: "applied", t.PARKED: "parked", t.DROPPED: "dropped"}
# Lists of the customer view that the document gives their own top-level keys.
_HOISTED = ("identities", "consents", "merges", "absorbed_profile_ids")
_encoder = msgspec.json.Encoder()


def export_profile(
    conn: Connection,
    profile_id: int,
    *,
    now_ms: int | None = None,
    extractor: IdentifierExtractor | None = None,
) -> dict[str, Any]:
    """The whole document in memory (for callers that need a dict; the API and the CLI
    stream it with open_export_stream). Raises ProfileNotFound."""
    document: dict[str, Any] = {}
    for key, value in _document(conn, profile_id, now_ms, extractor):
        document[key] = list(value) if isinstance(value, Iterator) else value
    return document


def open_export_stream(
    db: Database,
    profile_id: int,
    *,
    now_ms: int,
    extractor: IdentifierExtractor | None = None,
) -> Generator[bytes, None, None]:
    """The document as chunks of JSON bytes, read in one snapshot. Raises ProfileNotFound
    here, before the first chunk, so that an API can still answer 404."""
    stream = _stream(db, profile_id, now_ms, extractor)
    next(stream)  # runs up to the header: finds the person or raises
    return stream


def record_export(db: Database, profile_id: int, now_ms: int, actor: str) -> None:
    with db.write() as conn:
        audit.record(
            conn, at_ms=now_ms, actor=actor, action="profile.export", target=f"profile {profile_id}"
        )


# -- building the document -----------------------------------------------------------------


def _stream(
    db: Database, profile_id: int, now_ms: int, extractor: IdentifierExtractor | None
) -> Generator[bytes, None, None]:
    with db.snapshot() as conn:
        parts = _document(conn, profile_id, now_ms, extractor)
        yield b""
        yield from _encode(parts)


def _document(
    conn: Connection,
    profile_id: int,
    now_ms: int | None,
    extractor: IdentifierExtractor | None,
) -> list[tuple[str, Any]]:
    """The document's keys in order; events are iterators, read when their turn comes."""
    person = find_person(conn, profile_id, extractor or IdentifierExtractor(JunkFilter()))
    view = customer_view(conn, person.profile_id)
    stored = conn.execute(
        sa.select(t.profiles.c.trait_times, t.profiles.c.computed).where(
            t.profiles.c.id == person.profile_id
        )
    ).first()
    if view is None or stored is None:
        raise ProfileNotFound(f"no profile {profile_id}")
    sources = {
        int(sid): name for sid, name in conn.execute(sa.select(t.sources.c.id, t.sources.c.name))
    }
    profile = {key: value for key, value in view.items() if key not in _HOISTED}
    profile["trait_times"] = stored.trait_times
    # The reducers' working state (session intervals, the order ledger, category scores):
    # derived from the person's events, so theirs to see as well.
    profile["bookkeeping"] = {
        key: value for key, value in (stored.computed or {}).items() if key.startswith("_")
    }
    held = {(i["type"], i["value"]) for i in view["identities"]}
    # Filled while the events are written, which comes first in the document.
    consent_history: list[dict[str, Any]] = []
    return [
        ("exported_at", ms_to_iso(now_ms) if now_ms is not None else None),
        ("shopkeeper_version", __version__),
        ("profile_id", person.profile_id),
        ("profile", profile),
        *[(key, view[key]) for key in _HOISTED],
        (
            "identifiers_in_unapplied_events",
            [
                {"type": ident.type, "value": ident.value}
                for ident in person.identifiers
                if (ident.type, ident.value) not in held
            ],
        ),
        ("events", _applied(conn, person, sources, consent_history)),
        ("consent_history", consent_history),
        ("unapplied_events", _unapplied(conn, person, sources)),
        ("messages", []),
    ]


_EVENT_COLUMNS = (
    t.events.c.seq,
    t.events.c.source_id,
    t.events.c.message_id,
    t.events.c.type,
    t.events.c.event,
    t.events.c.timestamp,
    t.events.c.received_at,
    t.events.c.processed_at,
    t.events.c.status,
    t.events.c.profile_id,
    t.events.c.error,
    t.events.c.payload,
)


def _event(row: Any, sources: dict[int, str]) -> dict[str, Any]:
    return {
        "seq": int(row.seq),
        "message_id": row.message_id,
        "source": sources.get(int(row.source_id)),
        "type": row.type,
        "event": row.event,
        "timestamp": ms_to_iso(row.timestamp),
        "received_at": ms_to_iso(row.received_at),
        "processed_at": ms_to_iso(row.processed_at) if row.processed_at is not None else None,
        "status": _STATUS.get(int(row.status), str(row.status)),
        "profile_id": int(row.profile_id) if row.profile_id is not None else None,
        "error": row.error,
        "payload": row.payload,
    }


def _applied(
    conn: Connection, person: Person, sources: dict[int, str], consent_history: list[dict[str, Any]]
) -> Iterator[dict[str, Any]]:
    result = conn.execute(
        sa.select(*_EVENT_COLUMNS)
        .where(t.events.c.profile_id.in_(person.lineage))
        .order_by(t.events.c.timestamp, t.events.c.seq)
        .execution_options(yield_per=500)
    )
    for row in result:
        event = _event(row, sources)
        consent_history.extend(_consents(row, event["source"]))
        yield event


def _unapplied(
    conn: Connection, person: Person, sources: dict[int, str]
) -> Iterator[dict[str, Any]]:
    seqs = list(person.unapplied_seqs)
    for start in range(0, len(seqs), 500):
        for row in conn.execute(
            sa.select(*_EVENT_COLUMNS)
            .where(t.events.c.seq.in_(seqs[start : start + 500]))
            .order_by(t.events.c.seq)
        ):
            yield _event(row, sources)


def _consents(row: Any, source: str | None) -> list[dict[str, Any]]:
    """The consent changes one applied event carried, read as the pipeline reads them."""
    payload = row.payload if isinstance(row.payload, dict) else {}
    name = payload.get("event") if row.type == "track" else payload.get("name")
    changes = extract_consents(
        EventView(
            type=row.type,
            event=name if isinstance(name, str) else None,
            timestamp_ms=int(row.timestamp),
            timestamp=ms_to_iso(row.timestamp),
            message_id=row.message_id,
            source_name=source or "",
            properties=_dict(payload.get("properties")),
            traits=_dict(payload.get("traits")),
            context=_dict(payload.get("context")),
        )
    )
    return [
        {
            "at": ms_to_iso(change.at_ms),
            "channel": change.channel,
            "purpose": change.purpose,
            "granted": change.granted,
            "via": change.via,
            "source": source,
            "message_id": row.message_id,
        }
        for change in changes
    ]


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _encode(parts: list[tuple[str, Any]]) -> Iterator[bytes]:
    """JSON for the document, in chunks of about _CHUNK_BYTES."""
    buffer = bytearray(b"{")
    for index, (key, value) in enumerate(parts):
        if index:
            buffer += b","
        buffer += _encoder.encode(key) + b":"
        if not isinstance(value, Iterator):
            buffer += _encoder.encode(value)
            continue
        buffer += b"["
        for position, item in enumerate(value):
            if position:
                buffer += b","
            buffer += _encoder.encode(item)
            if len(buffer) >= _CHUNK_BYTES:
                yield bytes(buffer)
                buffer.clear()
        buffer += b"]"
    buffer += b"}"
    yield bytes(buffer)
