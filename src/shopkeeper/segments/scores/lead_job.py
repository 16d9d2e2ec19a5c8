"""The lead score kept by the pipeline (a BatchHook) and decayed by the scheduler.

The hook is a step of the batch transaction: points commit with the events' `applied`
marks, so an event scores exactly once even when a batch is retried or replayed event by
event. Two batches never update one profile's score at once: the processor holds the
profile's row lock (PostgreSQL) or the database's write lock (SQLite) until commit. The
refresh is one UPDATE per chunk of rows, computed from each row's current values, so it
can run beside the pipeline: whichever writes last stores the same decayed quantity,
referenced to its own time.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shopkeeper.config import Settings
from shopkeeper.pipeline.processor import BatchChanges
from shopkeeper.segments.facts import load_facts, needs_of
from shopkeeper.segments.lang.evaluate import Predicate, UnknownSegment, compile_predicate
from shopkeeper.segments.scores.lead import NEGLIGIBLE, Decay, points_earned
from shopkeeper.segments.scores.lead_store import StoredProfileRule, award_points, current_rules
from shopkeeper.segments.store import conditions
from shopkeeper.storage import tables as t
from shopkeeper.storage.db import Database

log = logging.getLogger(__name__)

REFRESH_CHUNK = 20_000
scores_t = t.profile_scores


def decay_from_settings(settings: Settings) -> Decay:
    return Decay.of(settings.lead_score_half_life_days, settings.lead_score_cap)


class LeadScoreHook:
    """Adds the points of each batch's applied events that match a rule, one upsert per
    changed profile, and folds the scores of profiles merged in the batch."""

    def __init__(self, decay: Decay) -> None:
        self.decay = decay

    @classmethod
    def from_settings(cls, settings: Settings) -> LeadScoreHook:
        return cls(decay_from_settings(settings))

    def after_batch(self, conn: Connection, changes: BatchChanges, now_ms: int) -> None:
        if not changes.applied and not changes.merges and not changes.changed_profiles:
            return
        # One small query per batch: rule changes take effect at the next batch.
        ruleset = current_rules(conn)
        rules = ruleset.event_rules
        by_profile: dict[int, list[Any]] = defaultdict(list)
        for applied in changes.applied:
            by_profile[applied.profile_id].append(applied.event)
        earned: dict[int, list[tuple[float, int]]] = {}
        if rules:
            for pid, events in by_profile.items():
                points = points_earned(rules, events)
                if points:
                    earned[pid] = list(points)
        if ruleset.profile_rules or changes.merges:
            profile_rule_points(conn, ruleset.profile_rules, changes, now_ms, earned)
        award_points(conn, earned, now_ms, self.decay, merges=changes.merges)


def profile_rule_points(
    conn: Connection,
    rules: Sequence[StoredProfileRule],
    changes: BatchChanges,
    now_ms: int,
    earned: dict[int, list[tuple[float, int]]],
) -> None:
    """Profile rules: a profile earns a rule's points when it comes to satisfy the rule's
    condition (evaluated for the profiles this batch changed), once, and again only after
    it stopped satisfying it. Which profiles satisfy which rule is kept in
    lead_rule_matches; an absorbed profile's rows go with it."""
    matches = t.lead_rule_matches
    absorbed = sorted({other for _survivor, other in changes.merges})
    if absorbed:
        conn.execute(matches.delete().where(matches.c.profile_id.in_(absorbed)))
    profile_ids = set(changes.changed_profiles)
    profile_ids.update(a.profile_id for a in changes.applied)
    profile_ids.difference_update(absorbed)
    if not rules or not profile_ids:
        return
    segments = conditions(conn)
    usable: list[tuple[StoredProfileRule, Predicate]] = []
    for rule in rules:
        try:
            usable.append((rule, compile_predicate(rule.node, segments)))
        except UnknownSegment as exc:
            log.warning("lead score rule %s is skipped: %s", rule.id, exc)
    if not usable:
        return
    ids = sorted(profile_ids)
    facts = load_facts(conn, ids, needs_of([rule.node for rule, _ in usable], segments), now_ms)
    current = {
        (int(r.rule_id), int(r.profile_id))
        for r in conn.execute(
            sa.select(matches.c.rule_id, matches.c.profile_id).where(matches.c.profile_id.in_(ids))
        )
    }
    entered: list[dict[str, int]] = []
    left: list[tuple[int, int]] = []
    for pid in ids:
        person = facts.get(pid)
        if person is None:
            continue
        for rule, predicate in usable:
            satisfied = predicate(person, now_ms)
            had = (rule.id, pid) in current
            if satisfied and not had:
                entered.append({"rule_id": rule.id, "profile_id": pid, "since": now_ms})
                earned.setdefault(pid, []).append((rule.points, now_ms))
            elif had and not satisfied:
                left.append((rule.id, pid))
    if entered:
        conn.execute(matches.insert(), entered)
    for rule_id, pid in left:
        conn.execute(
            matches.delete().where(matches.c.rule_id == rule_id, matches.c.profile_id == pid)
        )


def _pow_function(conn: Connection) -> Any:
    """power(x, y) in SQL. SQLite has it only when built with its math functions, so
    there it is a Python function registered on the connection (the same C pow)."""
    if conn.dialect.name != "sqlite":
        return sa.func.power
    driver = conn.connection.driver_connection
    assert driver is not None
    driver.create_function("shopkeeper_pow", 2, math.pow, deterministic=True)
    return sa.func.shopkeeper_pow


def refresh_lead_scores(db: Database, now_ms: int, decay: Decay) -> int:
    """Decay every stored lead score to `now_ms`, so that segments comparing lead_score
    see current values. Chunks of rows by profile id, each in its own transaction (the
    pipeline goes on between them). Scores that fall below a millionth of the cap become
    0 and are no longer rewritten. Returns how many rows it updated."""
    updated = 0
    after = -1
    while True:
        with db.write() as conn:
            upper = conn.execute(
                sa.select(sa.func.max(sa.literal_column("profile_id"))).select_from(
                    sa.select(scores_t.c.profile_id)
                    .where(scores_t.c.profile_id > after)
                    .order_by(scores_t.c.profile_id)
                    .limit(REFRESH_CHUNK)
                    .subquery()
                )
            ).scalar()
            if upper is None:
                return updated
            power = _pow_function(conn)
            elapsed = sa.cast(
                sa.literal(now_ms, sa.BigInteger) - scores_t.c.lead_score_at, sa.Float
            )
            decayed = scores_t.c.lead_score * power(0.5, elapsed / decay.half_life_ms)
            result = conn.execute(
                scores_t.update()
                .where(scores_t.c.profile_id > after, scores_t.c.profile_id <= upper)
                .where(scores_t.c.lead_score > 0, scores_t.c.lead_score_at < now_ms)
                .values(
                    lead_score=sa.case(
                        (decayed < NEGLIGIBLE * decay.cap, sa.literal(0.0, sa.Float)),
                        else_=decayed,
                    ),
                    lead_score_at=now_ms,
                )
            )
            updated += int(result.rowcount or 0)
            after = int(upper)


def refresh_lead_scores_task(db: Database, settings: Settings, now_ms: int) -> int:
    """The scheduler's entry point (suggested: every hour)."""
    return refresh_lead_scores(db, now_ms, decay_from_settings(settings))
