"""Journeys, their versions and enrollments in the database."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shopkeeper.journeys.definition import Definition, read_definition
from shopkeeper.journeys.engine import ACTIVE, Enrollment
from shopkeeper.storage import tables as t
from shopkeeper.storage.db import json_dumps, json_loads

KEY = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,99}$")
STATUSES = ("draft", "active", "paused", "archived")


@dataclass(frozen=True)
class Journey:
    id: int
    key: str
    name: str
    status: str
    version: int
    playbook: str | None
    created_at: int
    updated_at: int


# Parsed definitions by their JSON text.
_DEFINITIONS: dict[str, Definition] = {}


def _journey(row: Any) -> Journey:
    return Journey(
        int(row.id),
        row.key,
        row.name,
        row.status,
        int(row.version),
        row.playbook,
        int(row.created_at),
        int(row.updated_at),
    )


def get_journey(conn: Connection, key: str) -> Journey | None:
    row = conn.execute(sa.select(t.journeys).where(t.journeys.c.key == key)).first()
    return _journey(row) if row else None


def journey_by_id(conn: Connection, journey_id: int) -> Journey | None:
    row = conn.execute(sa.select(t.journeys).where(t.journeys.c.id == journey_id)).first()
    return _journey(row) if row else None


def all_journeys(conn: Connection) -> list[Journey]:
    return [_journey(r) for r in conn.execute(sa.select(t.journeys).order_by(t.journeys.c.key))]


def definition(conn: Connection, journey_id: int, version: int) -> Definition:
    v = t.journey_versions
    raw = conn.execute(
        sa.select(v.c.definition).where(v.c.journey_id == journey_id, v.c.version == version)
    ).scalar_one()
    # Parsed once per distinct definition (the text, not the ids: ids repeat across
    # databases, and one process may serve several in tests).
    text = json.dumps(raw, sort_keys=True)
    cached = _DEFINITIONS.get(text)
    if cached is None:
        if len(_DEFINITIONS) > 1000:
            _DEFINITIONS.clear()
        cached = _DEFINITIONS[text] = read_definition(raw)
    return cached


def version_source(conn: Connection, journey_id: int, version: int) -> tuple[dict[str, Any], str]:
    v = t.journey_versions
    row = conn.execute(
        sa.select(v.c.definition, v.c.source).where(
            v.c.journey_id == journey_id, v.c.version == version
        )
    ).one()
    return dict(row.definition), row.source or ""


def versions(conn: Connection, journey_id: int) -> list[dict[str, Any]]:
    v = t.journey_versions
    return [
        {"version": int(r.version), "created_at": int(r.created_at), "created_by": r.created_by}
        for r in conn.execute(
            sa.select(v.c.version, v.c.created_at, v.c.created_by)
            .where(v.c.journey_id == journey_id)
            .order_by(v.c.version.desc())
        )
    ]


def insert_journey(
    conn: Connection,
    key: str,
    raw: Mapping[str, Any],
    source: str | None,
    *,
    status: str,
    now_ms: int,
    by: str | None,
    playbook: str | None = None,
) -> Journey:
    parsed = read_definition(raw)
    jid = conn.execute(
        t.journeys.insert()
        .values(
            key=key,
            name=parsed.name,
            status=status,
            version=1,
            playbook=playbook,
            created_at=now_ms,
            updated_at=now_ms,
        )
        .returning(t.journeys.c.id)
    ).scalar_one()
    conn.execute(
        t.journey_versions.insert().values(
            journey_id=jid,
            version=1,
            definition=dict(raw),
            source=source,
            created_at=now_ms,
            created_by=by,
        )
    )
    journey = journey_by_id(conn, int(jid))
    assert journey is not None
    return journey


def add_version(
    conn: Connection,
    journey: Journey,
    raw: Mapping[str, Any],
    source: str | None,
    *,
    now_ms: int,
    by: str | None,
) -> Journey:
    """A new version; enrollments in flight keep theirs."""
    parsed = read_definition(raw)
    version = journey.version + 1
    conn.execute(
        t.journey_versions.insert().values(
            journey_id=journey.id,
            version=version,
            definition=dict(raw),
            source=source,
            created_at=now_ms,
            created_by=by,
        )
    )
    conn.execute(
        t.journeys.update()
        .where(t.journeys.c.id == journey.id)
        .values(version=version, name=parsed.name, updated_at=now_ms)
    )
    updated = journey_by_id(conn, journey.id)
    assert updated is not None
    return updated


def set_status(conn: Connection, journey_id: int, status: str, now_ms: int) -> None:
    conn.execute(
        t.journeys.update()
        .where(t.journeys.c.id == journey_id)
        .values(status=status, updated_at=now_ms)
    )


def active_journeys(conn: Connection) -> list[tuple[Journey, Definition]]:
    """Journeys taking new entries, with their current definitions."""
    rows = conn.execute(sa.select(t.journeys).where(t.journeys.c.status == "active")).all()
    return [(_journey(r), definition(conn, int(r.id), int(r.version))) for r in rows]


# -- enrollments ------------------------------------------------------------------------


@dataclass(frozen=True)
class EnrollmentRow:
    journey_id: int
    version: int
    entry_key: str
    enrollment: Enrollment
    converted_at: int | None


def _enrollment(row: Any) -> EnrollmentRow:
    return EnrollmentRow(
        int(row.journey_id),
        int(row.version),
        row.entry_key,
        Enrollment(
            id=int(row.id),
            profile_id=int(row.profile_id),
            entered_at=int(row.entered_at),
            status=row.status,
            step=row.step,
            wake_at=int(row.wake_at) if row.wake_at is not None else None,
            state=dict(row.state or {}),
            holdout=bool(row.holdout),
        ),
        int(row.converted_at) if row.converted_at is not None else None,
    )


def insert_enrollment(
    conn: Connection,
    insert_ignore: Any,
    *,
    journey: Journey,
    profile_id: int,
    entry_key: str,
    holdout: bool,
    state: Mapping[str, Any],
    now_ms: int,
) -> EnrollmentRow | None:
    """The new enrollment, or None when this entry key already entered."""
    result = conn.execute(
        insert_ignore.values(
            journey_id=journey.id,
            version=journey.version,
            profile_id=profile_id,
            entry_key=entry_key[:300],
            status=ACTIVE,
            step=None,
            wake_at=None,
            state=dict(state),
            holdout=holdout,
            entered_at=now_ms,
            updated_at=now_ms,
        )
        # RETURNING, not rowcount: psycopg reports -1 for INSERT ... ON CONFLICT.
        .returning(t.enrollments.c.id)
    ).first()
    if result is None:
        return None
    e = t.enrollments
    row = conn.execute(sa.select(e).where(e.c.id == result[0])).one()
    return _enrollment(row)


def enrollment(conn: Connection, enrollment_id: int) -> EnrollmentRow | None:
    row = conn.execute(sa.select(t.enrollments).where(t.enrollments.c.id == enrollment_id)).first()
    return _enrollment(row) if row else None


def profile_enrollments(
    conn: Connection, profile_ids: Sequence[int], since_ms: int
) -> list[EnrollmentRow]:
    """Active enrollments of these profiles, and ended ones entered since `since_ms`
    whose goal may still be met."""
    e = t.enrollments
    rows = conn.execute(
        sa.select(e)
        .where(
            e.c.profile_id.in_(list(profile_ids)),
            sa.or_(
                e.c.status == ACTIVE,
                sa.and_(e.c.converted_at.is_(None), e.c.entered_at >= since_ms),
            ),
        )
        .order_by(e.c.id)
    ).all()
    return [_enrollment(r) for r in rows]


def save_enrollment(
    conn: Connection, row: EnrollmentRow, new: Enrollment, now_ms: int, end_reason: str | None
) -> None:
    values: dict[str, Any] = {
        "status": new.status,
        "step": new.step,
        "wake_at": new.wake_at,
        "state": dict(new.state),
        "updated_at": now_ms,
        "lease_until": None,
    }
    if new.status != ACTIVE and row.enrollment.status == ACTIVE:
        values["ended_at"] = now_ms
        values["end_reason"] = (end_reason or "")[:200]
    conn.execute(t.enrollments.update().where(t.enrollments.c.id == new.id).values(**values))


def record_step(
    conn: Connection, insert_ignore: Any, row: EnrollmentRow, step: str, outcome: str, at: int
) -> bool:
    """True when the step is recorded now (False: it was reached before)."""
    result = conn.execute(
        insert_ignore.values(
            enrollment_id=row.enrollment.id,
            step=step,
            journey_id=row.journey_id,
            at=at,
            outcome=outcome[:100],
        ).returning(t.enrollment_steps.c.step)
    ).first()
    return result is not None


def update_step_outcome(conn: Connection, enrollment_id: int, step: str, outcome: str) -> None:
    s = t.enrollment_steps
    conn.execute(
        s.update()
        .where(s.c.enrollment_id == enrollment_id, s.c.step == step)
        .values(outcome=outcome[:100])
    )


def mark_converted(conn: Connection, enrollment_id: int, at: int, revenue: float | None) -> None:
    e = t.enrollments
    conn.execute(
        e.update()
        .where(e.c.id == enrollment_id, e.c.converted_at.is_(None))
        .values(converted_at=at, revenue=revenue)
    )


def count_entries(
    conn: Connection, profile_id: int, since_ms: int, journey_id: int | None = None
) -> int:
    e = t.enrollments
    query = sa.select(sa.func.count()).where(
        e.c.profile_id == profile_id, e.c.entered_at >= since_ms
    )
    if journey_id is not None:
        query = query.where(e.c.journey_id == journey_id)
    return int(conn.execute(query).scalar_one())


def last_entry(conn: Connection, journey_id: int, profile_id: int) -> int | None:
    e = t.enrollments
    value = conn.execute(
        sa.select(sa.func.max(e.c.entered_at)).where(
            e.c.journey_id == journey_id, e.c.profile_id == profile_id
        )
    ).scalar()
    return int(value) if value is not None else None


def active_count(conn: Connection, journey_id: int, profile_id: int) -> int:
    e = t.enrollments
    return int(
        conn.execute(
            sa.select(sa.func.count()).where(
                e.c.journey_id == journey_id, e.c.profile_id == profile_id, e.c.status == ACTIVE
            )
        ).scalar_one()
    )


# -- for many people at once (broadcasts, dates, catalog events) ----------------------


@dataclass(frozen=True)
class EntryStats:
    """What the re-entry rules and caps need to know about one person."""

    last_entry: int | None = None  # in this journey
    active: int = 0  # active enrollments in this journey
    entries_since: int = 0  # entries into any journey since the cap's start


def entry_stats(
    conn: Connection, journey_id: int, profile_ids: Sequence[int], since_ms: int
) -> dict[int, EntryStats]:
    """EntryStats for each of these people, in two queries."""
    e = t.enrollments
    ids = sorted(set(profile_ids))
    here: dict[int, tuple[int | None, int]] = {}
    active = sa.func.sum(sa.case((e.c.status == ACTIVE, 1), else_=0))
    for r in conn.execute(
        sa.select(e.c.profile_id, sa.func.max(e.c.entered_at), active)
        .where(e.c.journey_id == journey_id, e.c.profile_id.in_(ids))
        .group_by(e.c.profile_id)
    ):
        here[int(r[0])] = (int(r[1]) if r[1] is not None else None, int(r[2] or 0))
    recent = {
        int(r[0]): int(r[1])
        for r in conn.execute(
            sa.select(e.c.profile_id, sa.func.count())
            .where(e.c.profile_id.in_(ids), e.c.entered_at >= since_ms)
            .group_by(e.c.profile_id)
        )
    }
    return {pid: EntryStats(*here.get(pid, (None, 0)), recent.get(pid, 0)) for pid in ids}


def insert_enrollments(
    conn: Connection,
    insert_ignore: Any,
    journey: Journey,
    people: Sequence[tuple[int, str, bool, Mapping[str, Any]]],
    now_ms: int,
) -> dict[str, EnrollmentRow]:
    """New enrollments for (profile id, entry key, holdout, state), one statement for
    all of them; returned by entry key (in the order given), without the keys that had
    entered already."""
    if not people:
        return {}
    e = t.enrollments
    wanted = [(profile_id, key[:300], holdout, state) for profile_id, key, holdout, state in people]
    if conn.dialect.name == "postgresql":
        # Four arrays, not a parameter per value: a statement of a few thousand
        # parameters costs more to build and parse than to run.
        found = conn.execute(
            _PG_INSERT_ENROLLMENTS,
            {
                "journey_id": journey.id,
                "version": journey.version,
                "status": ACTIVE,
                "now": now_ms,
                "profiles": [profile_id for profile_id, _k, _h, _s in wanted],
                "keys": [key for _p, key, _h, _s in wanted],
                "holdouts": [holdout for _p, _k, holdout, _s in wanted],
                "states": [json_dumps(state) for _p, _k, _h, state in wanted],
            },
        ).all()
    else:
        found = conn.execute(
            insert_ignore.returning(e.c.id, e.c.entry_key),
            [
                {
                    "journey_id": journey.id,
                    "version": journey.version,
                    "profile_id": profile_id,
                    "entry_key": key,
                    "status": ACTIVE,
                    "step": None,
                    "wake_at": None,
                    "state": dict(state),
                    "holdout": holdout,
                    "entered_at": now_ms,
                    "updated_at": now_ms,
                }
                for profile_id, key, holdout, state in wanted
            ],
        ).all()
    ids = {row.entry_key: int(row.id) for row in found}
    created: dict[str, EnrollmentRow] = {}
    for profile_id, key, holdout, state in wanted:
        if key in ids and key not in created:
            created[key] = EnrollmentRow(
                journey.id,
                journey.version,
                key,
                Enrollment(
                    id=ids[key],
                    profile_id=profile_id,
                    entered_at=now_ms,
                    status=ACTIVE,
                    step=None,
                    wake_at=None,
                    # As the database gives it back (JSON's types).
                    state=json_loads(json_dumps(state)),
                    holdout=holdout,
                ),
                None,
            )
    return created


_PG_INSERT_ENROLLMENTS = sa.text(
    "INSERT INTO enrollments (journey_id, version, profile_id, entry_key, status, state, "
    "holdout, entered_at, updated_at) "
    "SELECT :journey_id, :version, u.profile_id, u.entry_key, :status, u.state, u.holdout, "
    ":now, :now FROM unnest(CAST(:profiles AS BIGINT[]), CAST(:keys AS TEXT[]), "
    "CAST(:holdouts AS BOOLEAN[]), CAST(:states AS JSONB[])) "
    "AS u(profile_id, entry_key, holdout, state) "
    "ON CONFLICT DO NOTHING RETURNING id, entry_key"
)


def record_steps(
    conn: Connection, insert_ignore: Any, steps: Sequence[tuple[EnrollmentRow, str, str]], at: int
) -> None:
    """Record (enrollment, step, outcome) for enrollments that never reached these steps
    (new ones): one statement; a step reached before keeps its row."""
    if steps:
        conn.execute(
            insert_ignore,
            [
                {
                    "enrollment_id": row.enrollment.id,
                    "step": step,
                    "journey_id": row.journey_id,
                    "at": at,
                    "outcome": outcome[:100],
                }
                for row, step, outcome in steps
            ],
        )


def save_new_enrollments(
    conn: Connection, saves: Sequence[tuple[Enrollment, str | None]], now_ms: int
) -> None:
    """save_enrollment for enrollments created in this transaction (so still active in
    the database): one executemany."""
    if not saves:
        return
    e = t.enrollments
    if conn.dialect.name == "postgresql":
        # One statement over arrays instead of one per enrollment.
        conn.execute(
            _PG_SAVE_NEW_ENROLLMENTS,
            {
                "now": now_ms,
                "ids": [new.id for new, _reason in saves],
                "statuses": [new.status for new, _reason in saves],
                "steps": [new.step for new, _reason in saves],
                "wakes": [new.wake_at for new, _reason in saves],
                "states": [json_dumps(dict(new.state)) for new, _reason in saves],
                "ended": [None if new.status == ACTIVE else now_ms for new, _reason in saves],
                "reasons": [
                    None if new.status == ACTIVE else (reason or "")[:200] for new, reason in saves
                ],
            },
        )
        return
    conn.execute(
        e.update()
        .where(e.c.id == sa.bindparam("eid"))
        .values(
            status=sa.bindparam("new_status"),
            step=sa.bindparam("new_step"),
            wake_at=sa.bindparam("new_wake_at"),
            state=sa.bindparam("new_state", type_=e.c.state.type),
            updated_at=now_ms,
            lease_until=None,
            ended_at=sa.bindparam("new_ended_at"),
            end_reason=sa.bindparam("new_end_reason"),
        ),
        [
            {
                "eid": new.id,
                "new_status": new.status,
                "new_step": new.step,
                "new_wake_at": new.wake_at,
                "new_state": dict(new.state),
                "new_ended_at": None if new.status == ACTIVE else now_ms,
                "new_end_reason": None if new.status == ACTIVE else (reason or "")[:200],
            }
            for new, reason in saves
        ],
    )


_PG_SAVE_NEW_ENROLLMENTS = sa.text(
    "UPDATE enrollments AS e SET status = u.status, step = u.step, wake_at = u.wake_at, "
    "state = u.state, updated_at = :now, lease_until = NULL, ended_at = u.ended_at, "
    "end_reason = u.end_reason "
    "FROM unnest(CAST(:ids AS BIGINT[]), CAST(:statuses AS TEXT[]), CAST(:steps AS TEXT[]), "
    "CAST(:wakes AS BIGINT[]), CAST(:states AS JSONB[]), CAST(:ended AS BIGINT[]), "
    "CAST(:reasons AS TEXT[])) AS u(id, status, step, wake_at, state, ended_at, end_reason) "
    "WHERE e.id = u.id"
)
