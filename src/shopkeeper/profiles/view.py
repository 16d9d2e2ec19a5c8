"""The read side of profiles: the single customer view, the timeline and search."""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shopkeeper.identity.identifiers import normalize_email, normalize_phone
from shopkeeper.storage import tables as t
from shopkeeper.timeutil import ms_to_iso

REF_TYPES = ("profile", "user_id", "anonymous_id", "email", "phone")
_TYPE = re.compile(r"^[a-z][a-z0-9_]{0,99}$")


class BadRef(ValueError):
    pass


def parse_ref(ref: str) -> tuple[str, str]:
    """`email:ana@example.com` -> ("email", "ana@example.com"). The value may hold colons."""
    type_, sep, value = ref.partition(":")
    if not sep or not value.strip():
        raise BadRef(
            "A profile is named as type:value, e.g. email:ana@example.com, user_id:42 or profile:7."
        )
    type_ = type_.strip().lower()
    if not _TYPE.match(type_):
        raise BadRef(f"{type_!r} is not an identifier type.")
    return type_, value.strip()


def resolve(conn: Connection, type_: str, value: str) -> int | None:
    """The live profile a reference names; absorbed profile ids resolve to the survivor."""
    if type_ == "profile":
        if not value.isdigit():
            raise BadRef("profile ids are numbers, e.g. profile:7.")
        row = conn.execute(
            sa.select(t.profiles.c.id, t.profiles.c.merged_into).where(
                t.profiles.c.id == int(value)
            )
        ).first()
        if row is None:
            return None
        return int(row.merged_into if row.merged_into is not None else row.id)
    if type_ == "email":
        value = normalize_email(value) or value.strip().lower()
    elif type_ == "phone":
        value = normalize_phone(value, None) or value
    owner = conn.execute(
        sa.select(t.identities.c.profile_id).where(
            t.identities.c.type == type_, t.identities.c.value == value
        )
    ).scalar()
    return int(owner) if owner is not None else None


def _public(computed: dict[str, Any]) -> dict[str, Any]:
    """Computed attributes without the reducers' internal bookkeeping (`_` keys)."""
    return {key: value for key, value in computed.items() if not key.startswith("_")}


def customer_view(conn: Connection, profile_id: int) -> dict[str, Any] | None:
    row = conn.execute(
        sa.select(t.profiles).where(
            t.profiles.c.id == profile_id, t.profiles.c.merged_into.is_(None)
        )
    ).first()
    if row is None:
        return None
    sources = dict(conn.execute(sa.select(t.sources.c.id, t.sources.c.name)).all())
    identities = [
        {
            "type": r.type,
            "value": r.value,
            "first_seen_at": ms_to_iso(r.first_seen_at),
            "last_seen_at": ms_to_iso(r.last_seen_at),
            "source": sources.get(r.source_id),
        }
        for r in conn.execute(
            sa.select(t.identities)
            .where(t.identities.c.profile_id == profile_id)
            .order_by(t.identities.c.first_seen_at, t.identities.c.type, t.identities.c.value)
        )
    ]
    consents = [
        {
            "channel": r.channel,
            "purpose": r.purpose,
            "granted": bool(r.granted),
            "updated_at": ms_to_iso(r.updated_at),
            "source": r.source,
            "via": r.via,
            "message_id": r.message_id,
        }
        for r in conn.execute(
            sa.select(t.consents)
            .where(t.consents.c.profile_id == profile_id)
            .order_by(t.consents.c.channel, t.consents.c.purpose)
        )
    ]
    absorbed = [
        int(pid)
        for pid in conn.execute(
            sa.select(t.profiles.c.id)
            .where(t.profiles.c.merged_into == profile_id)
            .order_by(t.profiles.c.id)
        ).scalars()
    ]
    lineage = [profile_id, *absorbed]
    merges = [
        {
            "at": ms_to_iso(r.at),
            "status": r.status,
            "survivor_id": int(r.survivor_id),
            "other_id": int(r.other_id),
            "reason": r.reason,
            "identifiers": [{"type": i[0], "value": i[1]} for i in r.identifiers],
            "message_id": r.message_id,
            "event_type": r.event_type,
        }
        for r in conn.execute(
            sa.select(t.merges)
            .where(sa.or_(t.merges.c.survivor_id.in_(lineage), t.merges.c.other_id.in_(lineage)))
            .order_by(t.merges.c.at, t.merges.c.id)
        )
    ]
    return {
        "profile_id": int(row.id),
        "display_name": row.display_name,
        "is_known": bool(row.is_known),
        "created_at": ms_to_iso(row.created_at),
        "updated_at": ms_to_iso(row.updated_at),
        "identities": identities,
        "traits": row.traits,
        "computed": _public(row.computed),
        "consents": consents,
        "merges": merges,
        "absorbed_profile_ids": absorbed,
    }


def timeline(
    conn: Connection, profile_id: int, limit: int, before: int | None = None
) -> list[dict[str, Any]]:
    """Applied events, newest first. `before` is a seq cursor from the previous page."""
    sources = dict(conn.execute(sa.select(t.sources.c.id, t.sources.c.name)).all())
    query = (
        sa.select(
            t.events.c.seq,
            t.events.c.source_id,
            t.events.c.type,
            t.events.c.event,
            t.events.c.timestamp,
            t.events.c.received_at,
            t.events.c.payload,
        )
        .where(t.events.c.profile_id == profile_id, t.events.c.status == t.APPLIED)
        .order_by(t.events.c.timestamp.desc(), t.events.c.seq.desc())
        .limit(limit)
    )
    if before is not None:
        anchor = conn.execute(
            sa.select(t.events.c.timestamp).where(t.events.c.seq == before)
        ).scalar()
        if anchor is not None:
            query = query.where(
                sa.or_(
                    t.events.c.timestamp < anchor,
                    sa.and_(t.events.c.timestamp == anchor, t.events.c.seq < before),
                )
            )
    out = []
    for r in conn.execute(query):
        payload = r.payload
        out.append(
            {
                "seq": int(r.seq),
                "message_id": payload.get("messageId"),
                "type": r.type,
                "event": r.event,
                "timestamp": ms_to_iso(r.timestamp),
                "received_at": ms_to_iso(r.received_at),
                "source": sources.get(r.source_id),
                "user_id": payload.get("userId"),
                "anonymous_id": payload.get("anonymousId"),
                "properties": payload.get("properties") or {},
                "traits": payload.get("traits") or {},
                "context": payload.get("context") or {},
            }
        )
    return out


def search(conn: Connection, query: str, limit: int) -> list[dict[str, Any]]:
    """Profiles whose identifier starts with the query, or whose name contains it."""
    text = query.strip()
    if not text:
        return []
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    by_identifier = (
        sa.select(t.identities.c.profile_id)
        .where(
            sa.or_(
                t.identities.c.value.like(escaped + "%", escape="\\"),
                t.identities.c.value == text.lower(),
            )
        )
        .limit(limit)
    )
    by_name = (
        sa.select(t.profiles.c.id)
        .where(
            t.profiles.c.merged_into.is_(None),
            sa.func.lower(t.profiles.c.display_name).like("%" + escaped.lower() + "%", escape="\\"),
        )
        .limit(limit)
    )
    ids = {int(pid) for pid in conn.execute(by_identifier).scalars()}
    ids |= {int(pid) for pid in conn.execute(by_name).scalars()}
    if text.isdigit() and len(text) <= 18:  # a profile id; longer would overflow BIGINT
        ids.add(int(text))
    if not ids:
        return []
    rows = conn.execute(
        sa.select(
            t.profiles.c.id,
            t.profiles.c.display_name,
            t.profiles.c.is_known,
            t.profiles.c.computed,
            t.profiles.c.updated_at,
        )
        .where(t.profiles.c.id.in_(ids), t.profiles.c.merged_into.is_(None))
        .order_by(t.profiles.c.updated_at.desc())
        .limit(limit)
    ).all()
    return [
        {
            "profile_id": int(r.id),
            "display_name": r.display_name,
            "is_known": bool(r.is_known),
            "last_seen_at": (r.computed or {}).get("last_seen_at"),
            "orders_count": (r.computed or {}).get("orders_count", 0),
        }
        for r in rows
    ]
