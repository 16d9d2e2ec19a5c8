"""What the admin API and the UI do with segments: save, change, delete, preview an
unsaved condition, explain a profile's membership, read members, history and sizes.
Every change is audited in its own transaction; a new or changed condition is evaluated
over the population at once, so the size shown after saving is the real one."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from shopkeeper.admin import audit
from shopkeeper.segments import store
from shopkeeper.segments.explain import Explanation, blocking, explain
from shopkeeper.segments.facts import load_facts, needs_of
from shopkeeper.segments.lang import ast
from shopkeeper.segments.lang.evaluate import UnknownSegment, field_value
from shopkeeper.segments.lang.json_form import to_json
from shopkeeper.segments.membership import (
    RefreshResult,
    dialect_of,
    for_population,
    live_sizes,
    population,
    refresh_segment,
)
from shopkeeper.segments.store import Segment, SegmentError
from shopkeeper.storage import tables as t
from shopkeeper.storage.db import Database
from shopkeeper.timeutil import ms_to_iso

DAY_MS = 86_400_000
SAMPLE_SIZE = 10
HISTORY_DAYS = 90

FUNNEL = ast.Field("derived", ("funnel_stage",), "funnel_stage")

members_t = t.segment_members
history_t = t.segment_history


class SegmentNotFound(LookupError):
    def __init__(self, key: str) -> None:
        super().__init__(f'There is no segment "{key}".')
        self.key = key


class SegmentInUse(ValueError):
    pass


def get(db: Database, key: str) -> Segment:
    with db.read() as conn:
        segment = store.get_segment(conn, key)
    if segment is None:
        raise SegmentNotFound(key)
    return segment


def enabled_builtins(db: Database) -> dict[str, str]:
    """Built-in segment key -> the key it is saved under."""
    with db.read() as conn:
        return {s.builtin: s.key for s in store.all_segments(conn) if s.builtin}


# -- changing definitions ----------------------------------------------------------------


def create(
    db: Database,
    now_ms: int,
    *,
    actor: str,
    key: Any,
    name: Any,
    condition: Any,
    description: str | None = None,
    realtime: bool = True,
    refresh_minutes: Any = 60,
    builtin: str | None = None,
) -> tuple[Segment, RefreshResult | None]:
    key = store.check_key(key)
    name = _check_name(name)
    refresh = store.check_refresh(refresh_minutes)
    node, text = store.read_condition(condition)
    with db.write() as conn:
        if store.get_segment(conn, key) is not None:
            raise SegmentError(
                f'There is already a segment "{key}". Choose another key, or change that one.',
                "key",
                code="conflict",
            )
        store.insert_segment(
            conn,
            key=key,
            name=name,
            description=_description(description),
            node=node,
            condition=text,
            realtime=bool(realtime),
            refresh_minutes=refresh,
            builtin=builtin,
            now_ms=now_ms,
        )
        audit.record(
            conn,
            at_ms=now_ms,
            actor=actor,
            action="segment.create",
            target=f"segment {key}",
            details={"condition": text, "realtime": bool(realtime), "builtin": builtin},
        )
    result = refresh_segment(db, key, now_ms)
    return get(db, key), result


def update(
    db: Database, now_ms: int, key: str, changes: dict[str, Any], *, actor: str
) -> tuple[Segment, RefreshResult | None]:
    """`changes`: any of name, description, condition, realtime, refresh_minutes."""
    clean: dict[str, Any] = {}
    if "name" in changes:
        clean["name"] = _check_name(changes["name"])
    if "description" in changes:
        clean["description"] = _description(changes["description"])
    if "refresh_minutes" in changes:
        clean["refresh_minutes"] = store.check_refresh(changes["refresh_minutes"])
    if "realtime" in changes:
        if not isinstance(changes["realtime"], bool):
            raise SegmentError("realtime is true or false", "realtime")
        clean["realtime"] = changes["realtime"]
    if "condition" in changes:
        clean["node"], clean["condition"] = store.read_condition(changes["condition"])
    with db.write() as conn:
        current = store.get_segment(conn, key)
        if current is None:
            raise SegmentNotFound(key)
        updated = store.update_segment(conn, current, clean, now_ms)
        audit.record(
            conn,
            at_ms=now_ms,
            actor=actor,
            action="segment.update",
            target=f"segment {key}",
            details={
                name: value
                for name, value in clean.items()
                if name != "node" and value != getattr(current, name)
            },
        )
    result = None
    if updated.version != current.version:
        result = refresh_segment(db, key, now_ms)
    return get(db, key), result


def delete(db: Database, now_ms: int, key: str, *, actor: str) -> None:
    with db.write() as conn:
        segment = store.get_segment(conn, key)
        if segment is None:
            raise SegmentNotFound(key)
        users = store.dependents(conn, key)
        if users:
            names = ", ".join(f'"{k}"' for k in users)
            raise SegmentInUse(
                f'Segment "{key}" is used by {names} (in segment "{key}"): change those first.'
            )
        audiences = store.audience_names(conn, segment)
        if audiences:
            names = ", ".join(f'"{n}"' for n in audiences)
            raise SegmentInUse(
                f'Segment "{key}" is synced to the audience {names}: delete the sync first.'
            )
        store.delete_segment(conn, segment)
        audit.record(
            conn,
            at_ms=now_ms,
            actor=actor,
            action="segment.delete",
            target=f"segment {key}",
            details={"condition": segment.condition},
        )


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise SegmentError("Give the segment a name (at most 200 characters)", "name")
    return name.strip()


def _description(description: Any) -> str | None:
    if description is None:
        return None
    if not isinstance(description, str) or len(description) > 5000:
        raise SegmentError("The description is text of at most 5000 characters", "description")
    return description.strip() or None


# -- previews and explanations -------------------------------------------------------------


@dataclass(frozen=True)
class Preview:
    count: int
    sample: list[dict[str, Any]]
    condition: str
    condition_json: dict[str, Any]


def preview(
    db: Database, condition: Any, now_ms: int, *, key: str | None = None, sample: int = SAMPLE_SIZE
) -> Preview:
    """Count and a sample of the profiles an unsaved condition holds for. `key`: the
    segment being edited, so that a condition leading back to it is refused."""
    node, text = store.read_condition(condition)
    with db.snapshot() as conn:
        segments = store.conditions(conn)
        store.check_references(key, node, {k: v for k, v in segments.items() if k != key})
        for_population(conn)
        query = (
            population(dialect_of(db), node, segments, now_ms)
            .columns(sa.column("id", sa.BigInteger))
            .subquery()
        )
        count = int(conn.execute(sa.select(sa.func.count()).select_from(query)).scalar() or 0)
        ids = [
            int(pid)
            for pid in conn.execute(
                sa.select(query.c.id).order_by(query.c.id.desc()).limit(sample)
            ).scalars()
        ]
        people = _people(conn, ids)
    return Preview(count, [people[pid] for pid in ids if pid in people], text, to_json(node))


def explain_membership(
    db: Database, profile_id: int, now_ms: int, *, key: str | None = None, condition: Any = None
) -> dict[str, Any]:
    """Evaluate a saved segment (key) or an unsaved condition for one profile."""
    with db.snapshot() as conn:
        segments = store.conditions(conn)
        if key is not None:
            if key not in segments:
                raise SegmentNotFound(key)
            node: ast.Condition = segments[key]
            member = (
                conn.execute(
                    sa.select(members_t.c.entered_at)
                    .join(t.segments, t.segments.c.id == members_t.c.segment_id)
                    .where(t.segments.c.key == key, members_t.c.profile_id == profile_id)
                ).first()
                is not None
            )
        else:
            node, _text = store.read_condition(condition)
            store.check_references(None, node, segments)
            member = None
        try:
            needs = needs_of([node], segments)
        except UnknownSegment as exc:
            raise SegmentError(str(exc)) from None
        facts = load_facts(conn, [profile_id], needs, now_ms).get(profile_id)
    if facts is None:
        raise LookupError(f"Profile {profile_id} was merged into another one or erased.")
    tree: Explanation = explain(node, segments, facts, now_ms)
    return {
        "profile_id": profile_id,
        "segment": key,
        "holds": tree.holds,
        "member": member,
        "kept_out_by": [{"clause": item.text, "seen": item.seen} for item in blocking(tree)],
        "explanation": tree.to_dict(),
    }


# -- reading -------------------------------------------------------------------------------


def _people(conn: sa.Connection, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    if not ids:
        return {}
    p = t.profiles
    rows = conn.execute(
        sa.select(p.c.id, p.c.display_name, p.c.is_known, p.c.traits).where(p.c.id.in_(list(ids)))
    )
    out = {}
    for row in rows:
        traits = row.traits or {}
        email = traits.get("email")
        out[int(row.id)] = {
            "profile_id": int(row.id),
            "display_name": row.display_name,
            "email": email if isinstance(email, str) else None,
            "known": bool(row.is_known),
        }
    return out


def size_trend(
    conn: sa.Connection, segment_ids: Sequence[int], now_ms: int, days: int = 7
) -> dict[int, int]:
    """The size each segment had `days` ago (the newest point at or before then; the
    oldest point when the segment is younger)."""
    if not segment_ids:
        return {}
    sizes = t.segment_sizes
    cutoff = now_ms - days * DAY_MS
    out: dict[int, int] = {}
    rows = conn.execute(
        sa.select(sizes.c.segment_id, sizes.c.at, sizes.c.size)
        .where(sizes.c.segment_id.in_(list(segment_ids)))
        .order_by(sizes.c.segment_id, sizes.c.at)
    )
    best: dict[int, tuple[int, int]] = {}
    for sid, at, size in rows:
        sid = int(sid)
        if sid not in best or at <= cutoff:
            best[sid] = (int(at), int(size))
    for sid, (_at, size) in best.items():
        out[sid] = size
    return out


def summaries(db: Database, now_ms: int) -> list[dict[str, Any]]:
    with db.read() as conn:
        segments = store.all_segments(conn)
        ids = [s.id for s in segments]
        sizes = live_sizes(conn, ids)
        before = size_trend(conn, ids, now_ms)
    return [summary(s, sizes.get(s.id, 0), before.get(s.id)) for s in segments]


def summary(segment: Segment, size: int, week_ago: int | None) -> dict[str, Any]:
    return {
        "key": segment.key,
        "name": segment.name,
        "description": segment.description,
        "condition": segment.condition,
        "realtime": segment.realtime,
        "refresh_minutes": segment.refresh_minutes,
        "builtin": segment.builtin,
        "version": segment.version,
        "size": size,
        "size_7_days_ago": week_ago,
        "change_7_days": None if week_ago is None else size - week_ago,
        "refreshed_at": ms_to_iso(segment.refreshed_at) if segment.refreshed_at else None,
        "created_at": ms_to_iso(segment.created_at),
        "updated_at": ms_to_iso(segment.updated_at),
    }


def detail(db: Database, key: str, now_ms: int) -> dict[str, Any]:
    segment = get(db, key)
    since = now_ms - HISTORY_DAYS * DAY_MS
    with db.read() as conn:
        size = live_sizes(conn, [segment.id]).get(segment.id, 0)
        week_ago = size_trend(conn, [segment.id], now_ms).get(segment.id)
        sizes = t.segment_sizes
        points = [
            {"at": ms_to_iso(int(at)), "size": int(n)}
            for at, n in conn.execute(
                sa.select(sizes.c.at, sizes.c.size)
                .where(sizes.c.segment_id == segment.id, sizes.c.at >= since)
                .order_by(sizes.c.at)
            )
        ]
        week = now_ms - 7 * DAY_MS
        flows: dict[Any, Any] = dict(
            conn.execute(
                sa.select(history_t.c.entered, sa.func.count())
                .where(history_t.c.segment_id == segment.id, history_t.c.at >= week)
                .group_by(history_t.c.entered)
            ).all()
        )
        users = store.dependents(conn, key)
        audiences = store.audience_names(conn, segment)
    out = summary(segment, size, week_ago)
    out.update(
        {
            "condition_json": to_json(segment.node),
            "sizes": points,
            "entered_7_days": int(flows.get(True, 0)),
            "exited_7_days": int(flows.get(False, 0)),
            "used_by_segments": users,
            "audiences": audiences,
        }
    )
    return out


def members(db: Database, key: str, limit: int, offset: int) -> dict[str, Any]:
    segment = get(db, key)
    with db.read() as conn:
        rows = conn.execute(
            sa.select(members_t.c.profile_id, members_t.c.entered_at)
            .where(members_t.c.segment_id == segment.id)
            .order_by(members_t.c.entered_at.desc(), members_t.c.profile_id.desc())
            .limit(limit + 1)
            .offset(offset)
        ).all()
        more = len(rows) > limit
        rows = rows[:limit]
        people = _people(conn, [int(r.profile_id) for r in rows])
        total = live_sizes(conn, [segment.id]).get(segment.id, 0)
    return {
        "segment": key,
        "total": total,
        "members": [
            {
                **people.get(int(r.profile_id), {"profile_id": int(r.profile_id)}),
                "entered_at": ms_to_iso(int(r.entered_at)),
            }
            for r in rows
        ],
        "next_offset": offset + limit if more else None,
    }


def history(db: Database, key: str, limit: int, before: int | None) -> dict[str, Any]:
    """Entries and exits, newest first; `before`: a history id cursor."""
    segment = get(db, key)
    with db.read() as conn:
        query = (
            sa.select(history_t)
            .where(history_t.c.segment_id == segment.id)
            .order_by(history_t.c.id.desc())
            .limit(limit)
        )
        if before is not None:
            query = query.where(history_t.c.id < before)
        rows = conn.execute(query).all()
        people = _people(conn, [int(r.profile_id) for r in rows])
    return {
        "segment": key,
        "changes": [
            {
                "id": int(r.id),
                "event": "Segment Entered" if r.entered else "Segment Exited",
                "at": ms_to_iso(int(r.at)),
                **people.get(int(r.profile_id), {"profile_id": int(r.profile_id)}),
            }
            for r in rows
        ],
        "next_before": int(rows[-1].id) if len(rows) == limit else None,
    }


def profile_segments(db: Database, profile_id: int, now_ms: int) -> dict[str, Any]:
    """The segments a profile is in, and its scores."""
    with db.snapshot() as conn:
        rows = conn.execute(
            sa.select(t.segments.c.key, t.segments.c.name, members_t.c.entered_at)
            .join(members_t, members_t.c.segment_id == t.segments.c.id)
            .where(members_t.c.profile_id == profile_id)
            .order_by(t.segments.c.name)
        ).all()
        scores = conn.execute(
            sa.select(t.profile_scores).where(t.profile_scores.c.profile_id == profile_id)
        ).first()
        funnel = ast.Compare(FUNNEL, "=", "")
        facts = load_facts(conn, [profile_id], needs_of([funnel], {}), now_ms).get(profile_id)
    stage = field_value(FUNNEL, facts, now_ms) if facts is not None else None
    return {
        "profile_id": profile_id,
        "segments": [
            {"key": r.key, "name": r.name, "entered_at": ms_to_iso(int(r.entered_at))} for r in rows
        ],
        "scores": {
            "rfm_recency": scores.rfm_recency if scores else None,
            "rfm_frequency": scores.rfm_frequency if scores else None,
            "rfm_monetary": scores.rfm_monetary if scores else None,
            "rfm_segment": scores.rfm_segment if scores else None,
            "lead_score": round(float(scores.lead_score), 2)
            if scores is not None and scores.lead_score is not None
            else None,
            "funnel_stage": stage,
        },
    }
