"""Lead score rules and score rows in the database (lead_score_rules, profile_scores).

The arithmetic is in lead.py; this module reads and writes, in the caller's
transaction, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from shopkeeper.segments.lang import ast
from shopkeeper.segments.lang.parser import SegmentSyntaxError, parse
from shopkeeper.segments.scores.lead import (
    DEFAULT_RULES,
    Decay,
    EventRule,
    LeadScore,
    RuleError,
    add_points,
    combine,
    rule_from_row,
)
from shopkeeper.storage import tables as t
from shopkeeper.timeutil import ms_to_iso

log = logging.getLogger(__name__)

_IN_CHUNK = 500
rules_t = t.lead_score_rules
scores_t = t.profile_scores


@dataclass(frozen=True, slots=True)
class StoredProfileRule:
    """A profile rule as stored: its condition in the segment language, parsed."""

    id: int
    name: str
    points: float
    node: ast.Condition


@dataclass(frozen=True, slots=True)
class RuleSet:
    event_rules: tuple[EventRule, ...]
    # True while the table holds no rule at all: the built-in rules apply.
    using_defaults: bool
    profile_rules: tuple[StoredProfileRule, ...] = ()


def current_rules(conn: Connection) -> RuleSet:
    """The event rules in force. Rows the pipeline cannot use (a condition edited by
    hand into something that is not a filter) are skipped with a warning rather than
    stopping the pipeline; rows without an event are profile rules (not scored here)."""
    rows = conn.execute(
        sa.select(
            rules_t.c.id, rules_t.c.name, rules_t.c.event, rules_t.c.condition, rules_t.c.points
        ).order_by(rules_t.c.id)
    ).all()
    if not rows:
        return RuleSet(DEFAULT_RULES, using_defaults=True)
    rules: list[EventRule] = []
    profile_rules: list[StoredProfileRule] = []
    for row in rows:
        if row.event is None:
            try:
                node = parse(row.condition or "")
            except SegmentSyntaxError as exc:
                log.warning("lead score rule %s is skipped: %s", row.id, exc)
                continue
            profile_rules.append(StoredProfileRule(int(row.id), row.name, row.points, node))
            continue
        try:
            rules.append(rule_from_row(int(row.id), row.name, row.event, row.condition, row.points))
        except RuleError as exc:
            log.warning("lead score rule %s is skipped: %s", row.id, exc)
    return RuleSet(tuple(rules), using_defaults=False, profile_rules=tuple(profile_rules))


def rule_rows(conn: Connection) -> list[dict[str, Any]]:
    """Every stored rule, as the API shows it (profile rules with their condition text)."""
    rows = conn.execute(sa.select(rules_t).order_by(rules_t.c.id)).all()
    return [_row_dict(row) for row in rows]


def _row_dict(row: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": int(row.id),
        "name": row.name,
        "event": row.event,
        "where": None,
        "condition": None,
        "points": float(row.points),
        "created_at": ms_to_iso(row.created_at),
    }
    if row.event is None:
        out["condition"] = row.condition
        return out
    try:
        out["where"] = rule_from_row(
            int(row.id), row.name, row.event, row.condition, row.points
        ).where()
    except RuleError:
        out["condition"] = row.condition  # shown as stored, so it can be seen and deleted
    return out


def create_rule(conn: Connection, rule: EventRule, now_ms: int) -> dict[str, Any]:
    result = conn.execute(
        rules_t.insert()
        .values(
            name=rule.name,
            event=rule.event,
            condition=rule.condition_json(),
            points=rule.points,
            created_at=now_ms,
        )
        .returning(rules_t.c.id)
    )
    rule_id = int(result.scalar_one())
    row = conn.execute(sa.select(rules_t).where(rules_t.c.id == rule_id)).one()
    return _row_dict(row)


def create_profile_rule(
    conn: Connection, name: str, condition: str, points: float, now_ms: int
) -> dict[str, Any]:
    result = conn.execute(
        rules_t.insert()
        .values(name=name, event=None, condition=condition, points=points, created_at=now_ms)
        .returning(rules_t.c.id)
    )
    rule_id = int(result.scalar_one())
    row = conn.execute(sa.select(rules_t).where(rules_t.c.id == rule_id)).one()
    return _row_dict(row)


def delete_rule(conn: Connection, rule_id: int) -> dict[str, Any] | None:
    row = conn.execute(sa.select(rules_t).where(rules_t.c.id == rule_id)).first()
    if row is None:
        return None
    conn.execute(rules_t.delete().where(rules_t.c.id == rule_id))
    conn.execute(t.lead_rule_matches.delete().where(t.lead_rule_matches.c.rule_id == rule_id))
    return _row_dict(row)


# -- score rows ---------------------------------------------------------------------------


def read_scores(conn: Connection, profile_ids: Iterable[int]) -> dict[int, LeadScore]:
    wanted = sorted(set(profile_ids))
    found: dict[int, LeadScore] = {}
    for start in range(0, len(wanted), _IN_CHUNK):
        rows = conn.execute(
            sa.select(scores_t.c.profile_id, scores_t.c.lead_score, scores_t.c.lead_score_at)
            .where(scores_t.c.profile_id.in_(wanted[start : start + _IN_CHUNK]))
            .where(scores_t.c.lead_score.is_not(None))
        ).all()
        for pid, score, at in rows:
            found[int(pid)] = LeadScore(float(score), int(at if at is not None else 0))
    return found


def write_scores(conn: Connection, scores: Mapping[int, LeadScore]) -> None:
    """One upsert row per profile (lead columns only; RFM columns are left alone)."""
    if not scores:
        return
    insert: Any = (sqlite.insert if conn.dialect.name == "sqlite" else postgresql.insert)(scores_t)
    stmt = insert.on_conflict_do_update(
        index_elements=[scores_t.c.profile_id],
        set_={
            "lead_score": insert.excluded.lead_score,
            "lead_score_at": insert.excluded.lead_score_at,
        },
    )
    # Sorted so that two transactions touching the same rows lock them in one order.
    conn.execute(
        stmt,
        [
            {"profile_id": pid, "lead_score": s.score, "lead_score_at": s.at_ms}
            for pid, s in sorted(scores.items())
        ],
    )


def award_points(
    conn: Connection,
    earned: Mapping[int, Sequence[tuple[float, int]]],
    now_ms: int,
    decay: Decay,
    *,
    merges: Sequence[tuple[int, int]] = (),
) -> dict[int, LeadScore]:
    """Add points (points, event time) to profiles' scores, after folding merged
    profiles' scores into their survivors (in merge order; an absorbed profile's row is
    deleted). Also the way to award a ProfileRule's points when a profile enters its
    condition. Returns the new scores of the profiles it wrote."""
    involved = set(earned)
    for survivor, absorbed in merges:
        involved.update((survivor, absorbed))
    if not involved:
        return {}
    stored: dict[int, LeadScore | None] = dict(read_scores(conn, involved))
    changed: dict[int, LeadScore] = {}
    gone: list[int] = []
    for survivor, absorbed in merges:
        folded = combine(stored.get(survivor), stored.pop(absorbed, None), now_ms, decay)
        gone.append(absorbed)
        changed.pop(absorbed, None)
        if folded is not None:
            stored[survivor] = changed[survivor] = folded
    absorbed_set = set(gone)
    absorbed_ids = sorted(absorbed_set)
    for pid, points in earned.items():
        if points and pid not in absorbed_set:
            stored[pid] = changed[pid] = add_points(stored.get(pid), points, now_ms, decay)
    for start in range(0, len(absorbed_ids), _IN_CHUNK):
        chunk = absorbed_ids[start : start + _IN_CHUNK]
        conn.execute(scores_t.delete().where(scores_t.c.profile_id.in_(chunk)))
    for pid in absorbed_ids:
        changed.pop(pid, None)
    write_scores(conn, changed)
    return changed
