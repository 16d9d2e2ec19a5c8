"""The messages table: queueing a message once per idempotency key, claiming due ones
for delivery, recording what became of them, and reading a person's messages."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shopkeeper.storage import tables as t
from shopkeeper.storage.db import Database

QUEUED = "queued"
SENDING = "sending"
SENT = "sent"
DELIVERED = "delivered"
FAILED = "failed"
SKIPPED = "skipped"
STATUSES = (QUEUED, SENDING, SENT, DELIVERED, FAILED, SKIPPED)

m = t.messages


@dataclass(frozen=True)
class Message:
    id: int
    idempotency_key: str
    profile_id: int
    journey_id: int | None
    enrollment_id: int | None
    step: str | None
    channel: str
    template: str | None
    transactional: bool
    status: str
    reason: str | None
    recipient: str | None
    locale: str | None
    content: Mapping[str, Any] | None
    variables: Mapping[str, Any]
    send_at: int
    attempts: int
    created_at: int
    sent_at: int | None


def _message(row: Any) -> Message:
    return Message(
        id=int(row.id),
        idempotency_key=row.idempotency_key,
        profile_id=int(row.profile_id),
        journey_id=row.journey_id,
        enrollment_id=row.enrollment_id,
        step=row.step,
        channel=row.channel,
        template=row.template,
        transactional=bool(row.transactional),
        status=row.status,
        reason=row.reason,
        recipient=row.recipient,
        locale=row.locale,
        content=row.content,
        variables=dict(row.variables or {}),
        send_at=int(row.send_at),
        attempts=int(row.attempts),
        created_at=int(row.created_at),
        sent_at=row.sent_at,
    )


def queue(
    conn: Connection,
    db: Database,
    *,
    key: str,
    profile_id: int,
    channel: str,
    template: str | None,
    transactional: bool,
    variables: Mapping[str, Any],
    send_at: int,
    now_ms: int,
    journey_id: int | None = None,
    enrollment_id: int | None = None,
    step: str | None = None,
    status: str = QUEUED,
    reason: str | None = None,
    recipient: str | None = None,
    content: Mapping[str, Any] | None = None,
) -> int | None:
    """The new message's id, or None when a message with this key exists already."""
    values = row_values(
        key=key, profile_id=profile_id, channel=channel, template=template,
        transactional=transactional, variables=variables, send_at=send_at, now_ms=now_ms,
        journey_id=journey_id, enrollment_id=enrollment_id, step=step, status=status,
        reason=reason, recipient=recipient, content=content,
    )  # fmt: skip
    result = conn.execute(
        db.insert_ignore(m)
        .values(**values)
        # RETURNING, not rowcount: psycopg reports -1 for INSERT ... ON CONFLICT.
        .returning(m.c.id)
    ).first()
    return None if result is None else int(result[0])


def get(conn: Connection, message_id: int) -> Message | None:
    row = conn.execute(sa.select(m).where(m.c.id == message_id)).first()
    return _message(row) if row else None


def claim_due(db: Database, now_ms: int, limit: int, lease_ms: int) -> list[Message]:
    """Due messages, leased to this process: queued ones whose time has come, and ones
    whose sender died mid-send (their lease ran out; the retry reuses the same
    idempotency key, so providers that honour it do not deliver twice)."""
    # Two queries, each an ordered walk of the (status, send_at) index that stops at
    # `limit`; one query with OR made the database collect and sort every queued
    # message on each claim (a broadcast's 100,000 of them, a thousand times over).
    # Ordered by send_at alone: the index holds no id on PostgreSQL, and "then by id"
    # made it sort every message due at the same moment (a whole broadcast) per claim.
    picks = [
        sa.select(m.c.id, m.c.send_at)
        .where(m.c.status == QUEUED, m.c.send_at <= now_ms)
        .order_by(m.c.send_at)
        .limit(limit),
        sa.select(m.c.id, m.c.send_at)
        .where(m.c.status == SENDING, m.c.lease_until < now_ms)
        .order_by(m.c.send_at)
        .limit(limit),
    ]
    if not db.is_sqlite:
        picks = [pick.with_for_update(skip_locked=True) for pick in picks]
    with db.write() as conn:
        found = [(int(r.send_at), int(r.id)) for pick in picks for r in conn.execute(pick)]
        ids = [i for _at, i in sorted(found)[:limit]]
        if not ids:
            return []
        conn.execute(
            m.update()
            .where(m.c.id.in_(ids))
            .values(status=SENDING, lease_until=now_ms + lease_ms, attempts=m.c.attempts + 1)
        )
        rows = conn.execute(sa.select(m).where(m.c.id.in_(ids)).order_by(m.c.id)).all()
    return [_message(r) for r in rows]


def update(conn: Connection, message_id: int, **values: Any) -> None:
    conn.execute(m.update().where(m.c.id == message_id).values(**values))


def update_many(conn: Connection, changes: Iterable[tuple[int, Mapping[str, Any]]]) -> None:
    """`update` for many messages: one executemany per set of changed columns."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for message_id, values in changes:
        row = {"_id": message_id, **{f"_{name}": value for name, value in values.items()}}
        groups.setdefault(tuple(sorted(values)), []).append(row)
    for names, rows in groups.items():
        statement = (
            m.update()
            .where(m.c.id == sa.bindparam("_id"))
            .values({name: sa.bindparam(f"_{name}", type_=m.c[name].type) for name in names})
        )
        conn.execute(statement, rows)


def record_event(
    conn: Connection, message_id: int, kind: str, at: int, detail: Mapping[str, Any] | None = None
) -> None:
    conn.execute(
        t.message_events.insert().values(
            message_id=message_id, kind=kind, at=at, detail=dict(detail or {})
        )
    )


def record_events(
    conn: Connection, events: Iterable[tuple[int, str, int, Mapping[str, Any] | None]]
) -> None:
    """`record_event` for many (message id, kind, at, detail), in one executemany."""
    rows = [
        {"message_id": message_id, "kind": kind, "at": at, "detail": dict(detail or {})}
        for message_id, kind, at, detail in events
    ]
    if rows:
        conn.execute(t.message_events.insert(), rows)


def sent_counts(
    conn: Connection, profile_id: int, since_ms: int, *, exclude: int
) -> dict[str, int]:
    """Marketing messages sent to the person since then, per channel ("*": all)."""
    rows = conn.execute(
        sa.select(m.c.channel, sa.func.count())
        .where(
            m.c.profile_id == profile_id,
            m.c.sent_at >= since_ms,
            m.c.transactional.is_(False),
            m.c.id != exclude,
        )
        .group_by(m.c.channel)
    ).all()
    out = {str(channel): int(n) for channel, n in rows}
    out["*"] = sum(out.values())
    return out


def journey_sent_counts(
    conn: Connection, profile_id: int, journey_id: int, since_ms: int, *, exclude: int
) -> int:
    return int(
        conn.execute(
            sa.select(sa.func.count()).where(
                m.c.profile_id == profile_id,
                m.c.journey_id == journey_id,
                m.c.sent_at >= since_ms,
                m.c.id != exclude,
            )
        ).scalar_one()
    )


@dataclass(frozen=True)
class Recent:
    """Messages sent to one person since two moments (the last day and the last week)."""

    day: dict[str, int]
    week: dict[str, int]


# Ids per IN (...) list in the batch reads below: far below both databases' limits.
_CHUNK = 500


def _chunks(values: list[Any]) -> Iterable[list[Any]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def sent_counts_many(
    conn: Connection,
    profile_ids: Iterable[int],
    *,
    day_since: int,
    week_since: int,
    exclude: Mapping[int, Collection[int]],
) -> dict[int, Recent]:
    """`sent_counts` since `day_since` and since `week_since` (the earlier) for many
    people, in one grouped query per 500 of them. `exclude` names, per person, message
    ids not to count (the messages being decided about)."""
    ids = sorted(set(profile_ids))
    out = {pid: Recent({"*": 0}, {"*": 0}) for pid in ids}
    in_day = sa.func.sum(sa.case((m.c.sent_at >= day_since, 1), else_=0))
    for chunk in _chunks(ids):
        query = (
            sa.select(m.c.profile_id, m.c.channel, in_day.label("day"), sa.func.count())
            .where(
                m.c.profile_id.in_(chunk),
                m.c.sent_at >= week_since,
                m.c.transactional.is_(False),
            )
            .group_by(m.c.profile_id, m.c.channel)
        )
        skipped = sorted({i for pid in chunk for i in exclude.get(pid, ())})
        if skipped:
            query = query.where(m.c.id.not_in(skipped))
        for pid, channel, day, week in conn.execute(query):
            recent = out[int(pid)]
            for counts, n in ((recent.day, int(day or 0)), (recent.week, int(week))):
                if n:
                    counts[str(channel)] = n
                    counts["*"] += n
    return out


def journey_sent_counts_many(
    conn: Connection,
    pairs: Iterable[tuple[int, int]],
    *,
    day_since: int,
    week_since: int,
    exclude: Mapping[int, Collection[int]],
) -> dict[tuple[int, int], tuple[int, int]]:
    """`journey_sent_counts` since `day_since` and since `week_since` for many
    (profile id, journey id) pairs: {pair: (day, week)}, one query per 500 people."""
    wanted = set(pairs)
    out = dict.fromkeys(wanted, (0, 0))
    ids = sorted({pid for pid, _ in wanted})
    journeys = sorted({jid for _, jid in wanted})
    in_day = sa.func.sum(sa.case((m.c.sent_at >= day_since, 1), else_=0))
    for chunk in _chunks(ids):
        query = (
            sa.select(m.c.profile_id, m.c.journey_id, in_day.label("day"), sa.func.count())
            .where(
                m.c.profile_id.in_(chunk),
                m.c.journey_id.in_(journeys),
                m.c.sent_at >= week_since,
            )
            .group_by(m.c.profile_id, m.c.journey_id)
        )
        skipped = sorted({i for pid in chunk for i in exclude.get(pid, ())})
        if skipped:
            query = query.where(m.c.id.not_in(skipped))
        for pid, jid, day, week in conn.execute(query):
            pair = (int(pid), int(jid))
            if pair in out:
                out[pair] = (int(day or 0), int(week))
    return out


def for_profile(
    conn: Connection, profile_ids: list[int], limit: int = 100, offset: int = 0
) -> list[Message]:
    rows = conn.execute(
        sa.select(m)
        .where(m.c.profile_id.in_(profile_ids))
        .order_by(m.c.created_at.desc(), m.c.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return [_message(r) for r in rows]


def is_suppressed(conn: Connection, channel: str, address: str) -> str | None:
    s = t.message_suppressions
    reason = conn.execute(
        sa.select(s.c.reason).where(s.c.channel == channel, s.c.address == address)
    ).scalar()
    return str(reason) if reason is not None else None


def suppressed_many(
    conn: Connection, pairs: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], str]:
    """`is_suppressed` for many (channel, address) pairs: {pair: reason} of the
    suppressed ones, one query per 500 addresses."""
    wanted = set(pairs)
    s = t.message_suppressions
    out: dict[tuple[str, str], str] = {}
    for chunk in _chunks(sorted({address for _, address in wanted})):
        for channel, address, reason in conn.execute(
            sa.select(s.c.channel, s.c.address, s.c.reason).where(s.c.address.in_(chunk))
        ):
            if (channel, address) in wanted:
                out[(channel, address)] = str(reason)
    return out


def suppress(
    conn: Connection, db: Database, channel: str, address: str, reason: str, now_ms: int
) -> None:
    conn.execute(
        db.insert_ignore(t.message_suppressions).values(
            channel=channel, address=address[:2000], reason=reason[:200], created_at=now_ms
        )
    )


def suppress_many(
    conn: Connection, db: Database, rows: Iterable[tuple[str, str, str]], now_ms: int
) -> None:
    """`suppress` for many (channel, address, reason), in one executemany."""
    values = [
        {
            "channel": channel,
            "address": address[:2000],
            "reason": reason[:200],
            "created_at": now_ms,
        }
        for channel, address, reason in rows
    ]
    if values:
        conn.execute(db.insert_ignore(t.message_suppressions), values)


def as_dict(message: Message) -> dict[str, Any]:
    return {
        "id": message.id,
        "profile_id": message.profile_id,
        "journey_id": message.journey_id,
        "step": message.step,
        "channel": message.channel,
        "template": message.template,
        "transactional": message.transactional,
        "status": message.status,
        "reason": message.reason,
        "recipient": message.recipient,
        "locale": message.locale,
        "content": message.content,
        "send_at": message.send_at,
        "attempts": message.attempts,
        "created_at": message.created_at,
        "sent_at": message.sent_at,
    }


def row_values(
    *,
    key: str,
    profile_id: int,
    channel: str,
    template: str | None,
    transactional: bool,
    variables: Mapping[str, Any],
    send_at: int,
    now_ms: int,
    journey_id: int | None = None,
    enrollment_id: int | None = None,
    step: str | None = None,
    status: str = QUEUED,
    reason: str | None = None,
    recipient: str | None = None,
    content: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A new messages row (insert it with db.insert_ignore(t.messages), so a second
    message with the same idempotency key is skipped)."""
    return {
        "idempotency_key": key[:300],
        "profile_id": profile_id,
        "journey_id": journey_id,
        "enrollment_id": enrollment_id,
        "step": step,
        "channel": channel,
        "template": template,
        "transactional": transactional,
        "status": status,
        "reason": reason,
        "recipient": recipient,
        "content": dict(content) if content is not None else None,
        "variables": dict(variables),
        "send_at": send_at,
        "attempts": 0,
        "created_at": now_ms,
        "lease_until": None,
        "sent_at": None,
        "provider_id": None,
        "locale": None,
    }
