"""Journeys as the API, the UI and the command line use them: save (a new version on
each edit), switch on and off, enroll through the API, and read results."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shopkeeper.admin import audit
from shopkeeper.journeys import store
from shopkeeper.journeys.definition import (
    Definition,
    JourneyInvalid,
    load_text,
    read_definition,
    segments_named,
    templates_named,
)
from shopkeeper.journeys.engine import ACTIVE
from shopkeeper.storage import tables as t
from shopkeeper.storage.db import Database

# Two-sided 95% normal quantile, for the uplift interval.
Z95 = 1.959963984540054


class JourneyNotFound(LookupError):
    pass


class JourneyConflict(ValueError):
    pass


@dataclass(frozen=True)
class Read:
    raw: dict[str, Any]
    source: str | None
    definition: Definition


def read(definition: Any) -> Read:
    """A definition as given to the API: a JSON object, or YAML/JSON text."""
    if isinstance(definition, str):
        if len(definition) > 200_000:
            raise JourneyInvalid("A definition is at most 200,000 characters.")
        raw = load_text(definition)
        return Read(raw, definition, read_definition(raw))
    if isinstance(definition, Mapping):
        raw = json.loads(json.dumps(definition))
        return Read(raw, None, read_definition(raw))
    raise JourneyInvalid("definition is a JSON object or YAML text.", "definition")


def check_references(conn: Connection, definition: Definition, *, for_activation: bool) -> None:
    keys = set(conn.execute(sa.select(t.segments.c.key)).scalars())
    for key in sorted(segments_named(definition)):
        if key not in keys:
            raise JourneyInvalid(f'There is no segment "{key}".', "entry")
    if for_activation:
        have = {
            (r.key, r.channel)
            for r in conn.execute(
                sa.select(t.message_templates.c.key, t.message_templates.c.channel).distinct()
            )
        }
        names = {k for k, _c in have}
        for name in sorted(templates_named(definition)):
            if name not in names:
                raise JourneyInvalid(
                    f'There is no template "{name}": create it before switching the journey on.',
                    "steps",
                )
        pools = set(conn.execute(sa.select(t.coupon_pools.c.key)).scalars())
        for step in definition.steps:
            if step.type == "coupon" and step.options["pool"] not in pools:
                raise JourneyInvalid(
                    f'There is no coupon pool "{step.options["pool"]}".', f"steps.{step.id}"
                )


def create(
    db: Database,
    now_ms: int,
    *,
    actor: str,
    key: Any,
    definition: Any,
    status: str = "draft",
    playbook: str | None = None,
) -> store.Journey:
    if not isinstance(key, str) or not store.KEY.match(key):
        raise JourneyInvalid("A journey key is 1 to 100 lower-case letters, digits, _ or -.", "key")
    if status not in ("draft", "active"):
        raise JourneyInvalid("A new journey is a draft or active.", "status")
    parsed = read(definition)
    with db.write() as conn:
        if store.get_journey(conn, key) is not None:
            raise JourneyConflict(f'A journey "{key}" exists already.')
        check_references(conn, parsed.definition, for_activation=status == "active")
        journey = store.insert_journey(
            conn, key, parsed.raw, parsed.source, status=status, now_ms=now_ms, by=actor,
            playbook=playbook,
        )  # fmt: skip
        audit.record(
            conn, at_ms=now_ms, actor=actor, action="journey.create", target=f"journey {key}",
            details={"status": status, "playbook": playbook},
        )  # fmt: skip
    return journey


def update(db: Database, now_ms: int, *, actor: str, key: str, definition: Any) -> store.Journey:
    parsed = read(definition)
    with db.write() as conn:
        journey = _get(conn, key)
        if journey.status == "archived":
            raise JourneyConflict("An archived journey cannot be edited.")
        check_references(conn, parsed.definition, for_activation=journey.status == "active")
        journey = store.add_version(
            conn, journey, parsed.raw, parsed.source, now_ms=now_ms, by=actor
        )
        audit.record(
            conn, at_ms=now_ms, actor=actor, action="journey.update", target=f"journey {key}",
            details={"version": journey.version},
        )  # fmt: skip
    return journey


def set_status(
    db: Database, now_ms: int, *, actor: str, key: str, status: str
) -> tuple[store.Journey, bool]:
    """Returns the journey and whether enrollments in flight must be stopped."""
    if status not in store.STATUSES:
        raise JourneyInvalid(f"status is one of {', '.join(store.STATUSES)}.", "status")
    with db.write() as conn:
        journey = _get(conn, key)
        if journey.status == "archived" and status != "archived":
            raise JourneyConflict("An archived journey stays archived; copy it instead.")
        if status == "active":
            check_references(
                conn, store.definition(conn, journey.id, journey.version), for_activation=True
            )
        store.set_status(conn, journey.id, status, now_ms)
        audit.record(
            conn, at_ms=now_ms, actor=actor, action="journey.status", target=f"journey {key}",
            details={"from": journey.status, "to": status},
        )  # fmt: skip
        updated = store.journey_by_id(conn, journey.id)
    assert updated is not None
    return updated, status == "archived" and journey.status != "archived"


def _get(conn: Connection, key: str) -> store.Journey:
    journey = store.get_journey(conn, key)
    if journey is None:
        raise JourneyNotFound(f'There is no journey "{key}".')
    return journey


def get(db: Database, key: str) -> store.Journey:
    with db.read() as conn:
        return _get(conn, key)


# -- results --------------------------------------------------------------------------


def _counts(conn: Connection, journey_id: int) -> dict[str, Any]:
    e = t.enrollments
    rows = conn.execute(
        sa.select(
            e.c.status,
            e.c.holdout,
            sa.func.count(),
            sa.func.count(e.c.converted_at),
            sa.func.coalesce(sa.func.sum(e.c.revenue), 0),
        )
        .where(e.c.journey_id == journey_id)
        .group_by(e.c.status, e.c.holdout)
    ).all()
    by_status: dict[str, int] = {}
    groups = {True: [0, 0, 0.0], False: [0, 0, 0.0]}
    for status, holdout, n, converted, revenue in rows:
        by_status[status] = by_status.get(status, 0) + int(n)
        g = groups[bool(holdout)]
        g[0] += int(n)
        g[1] += int(converted)
        g[2] += float(revenue or 0)
    m = t.messages
    statuses: dict[Any, Any] = dict(
        conn.execute(
            sa.select(m.c.status, sa.func.count())
            .where(m.c.journey_id == journey_id)
            .group_by(m.c.status)
        ).all()
    )
    treated, held = groups[False], groups[True]
    return {
        "entered": sum(by_status.values()),
        "in_progress": by_status.get(ACTIVE, 0),
        "completed": by_status.get("completed", 0),
        "exited": by_status.get("exited", 0),
        "stopped": by_status.get("stopped", 0),
        "messages": {str(k): int(v) for k, v in statuses.items()},
        "conversions": int(treated[1] + held[1]),
        "revenue": round(float(treated[2] + held[2]), 2),
        "uplift": uplift(int(treated[0]), int(treated[1]), int(held[0]), int(held[1])),
        "treated": {
            "entered": treated[0],
            "converted": treated[1],
            "revenue": round(treated[2], 2),
        },
        "holdout": {"entered": held[0], "converted": held[1], "revenue": round(held[2], 2)},
    }


def uplift(n_t: int, c_t: int, n_h: int, c_h: int) -> dict[str, Any] | None:
    """Conversion rate of those messaged minus that of the holdout, with a 95% Wald
    interval for the difference of two proportions. None without both groups."""
    if n_t == 0 or n_h == 0:
        return None
    p_t, p_h = c_t / n_t, c_h / n_h
    diff = p_t - p_h
    se = math.sqrt(p_t * (1 - p_t) / n_t + p_h * (1 - p_h) / n_h)
    return {
        "treated_rate": p_t,
        "holdout_rate": p_h,
        "difference": diff,
        "low": diff - Z95 * se,
        "high": diff + Z95 * se,
        "relative": (diff / p_h) if p_h > 0 else None,
    }


def step_counts(conn: Connection, journey_id: int) -> dict[str, dict[str, int]]:
    s = t.enrollment_steps
    out: dict[str, dict[str, int]] = {}
    for step, outcome, n in conn.execute(
        sa.select(s.c.step, s.c.outcome, sa.func.count())
        .where(s.c.journey_id == journey_id)
        .group_by(s.c.step, s.c.outcome)
    ):
        out.setdefault(step, {})[outcome or ""] = int(n)
    e = t.enrollments
    for step, n in conn.execute(
        sa.select(e.c.step, sa.func.count())
        .where(e.c.journey_id == journey_id, e.c.status == ACTIVE, e.c.step.is_not(None))
        .group_by(e.c.step)
    ):
        out.setdefault(step, {})["now_here"] = int(n)
    return out


def step_conversions(conn: Connection, journey_id: int) -> dict[str, dict[str, Any]]:
    """Conversions and revenue credited to each message step (the last message an
    enrollment was sent before it converted)."""
    m, ev = t.messages, t.message_events
    out: dict[str, dict[str, Any]] = {}
    for step, detail in conn.execute(
        sa.select(m.c.step, ev.c.detail)
        .select_from(ev.join(m, m.c.id == ev.c.message_id))
        .where(m.c.journey_id == journey_id, ev.c.kind == "converted")
    ):
        row = out.setdefault(step or "", {"conversions": 0, "revenue": 0.0})
        row["conversions"] += 1
        revenue = (detail or {}).get("revenue")
        if isinstance(revenue, (int, float)):
            row["revenue"] = round(row["revenue"] + float(revenue), 2)
    return out


def summary(conn: Connection, journey: store.Journey) -> dict[str, Any]:
    definition = store.definition(conn, journey.id, journey.version)
    counts = _counts(conn, journey.id)
    return {
        "key": journey.key,
        "name": journey.name,
        "description": definition.description,
        "status": journey.status,
        "version": journey.version,
        "playbook": journey.playbook,
        "entry": entry_text(definition),
        "created_at": journey.created_at,
        "updated_at": journey.updated_at,
        **counts,
    }


def entry_text(definition: Definition) -> str:
    from shopkeeper.journeys import definition as d

    entry = definition.entry
    if isinstance(entry, d.EventEntry):
        text = f'does "{entry.event}"'
        if entry.where_text:
            text += f" where {entry.where_text}"
        return text + (f" (once per {entry.dedupe})" if entry.dedupe else "")
    if isinstance(entry, d.SegmentEntry):
        return f'{entry.on} segment "{entry.segment}"'
    if isinstance(entry, d.DateEntry):
        return f"date {entry.attribute} {entry.offset_days:+d} days"
    if isinstance(entry, d.HolidayEntry):
        return f"{entry.days_before} days before {entry.holiday} (each person's country)"
    if isinstance(entry, d.CatalogEntry):
        return f'catalog event "{entry.event}"'
    if isinstance(entry, d.BroadcastEntry):
        return f'broadcast to segment "{entry.segment}"'
    return "API call"


def summaries(db: Database) -> list[dict[str, Any]]:
    with db.read() as conn:
        return [summary(conn, j) for j in store.all_journeys(conn)]


def detail(db: Database, key: str) -> dict[str, Any]:
    with db.read() as conn:
        journey = _get(conn, key)
        out = summary(conn, journey)
        raw, source = store.version_source(conn, journey.id, journey.version)
        definition = store.definition(conn, journey.id, journey.version)
        out["definition"] = raw
        out["source"] = source or None
        out["versions"] = store.versions(conn, journey.id)
        out["steps"] = [
            {"id": s.id, "type": s.type, "targets": s.targets()} for s in definition.steps
        ]
        out["step_counts"] = step_counts(conn, journey.id)
        out["step_conversions"] = step_conversions(conn, journey.id)
    return out


def enrollments(
    db: Database, key: str, status: str | None, limit: int, offset: int
) -> list[dict[str, Any]]:
    e = t.enrollments
    with db.read() as conn:
        journey = _get(conn, key)
        query = sa.select(e).where(e.c.journey_id == journey.id)
        if status:
            query = query.where(e.c.status == status)
        rows = conn.execute(query.order_by(e.c.id.desc()).limit(limit).offset(offset)).all()
    return [
        {
            "id": int(r.id),
            "profile_id": int(r.profile_id),
            "version": int(r.version),
            "status": r.status,
            "step": r.step,
            "wake_at": r.wake_at,
            "holdout": bool(r.holdout),
            "entered_at": int(r.entered_at),
            "ended_at": r.ended_at,
            "end_reason": r.end_reason,
            "converted_at": r.converted_at,
            "revenue": r.revenue,
        }
        for r in rows
    ]
