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

import math
from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shopkeeper.config import Settings
from shopkeeper.pipeline.processor import BatchChanges
from shopkeeper.segments.scores.lead import NEGLIGIBLE, Decay, points_earned
from shopkeeper.segments.scores.lead_store import award_points, current_rules
from shopkeeper.storage import tables as t
from shopkeeper.storage.db import Database

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
        if not changes.applied and not changes.merges:
            return
        # One small query per batch: rule changes take effect at the next batch.
        rules = current_rules(conn).event_rules
        by_profile: dict[int, list[Any]] = defaultdict(list)
        for applied in changes.applied:
            by_profile[applied.profile_id].append(applied.event)
        earned = {}
        if rules:
            for pid, events in by_profile.items():
                points = points_earned(rules, events)
                if points:
                    earned[pid] = points
        award_points(conn, earned, now_ms, self.decay, merges=changes.merges)


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
