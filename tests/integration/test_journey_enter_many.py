"""Entering many people at once (broadcasts, dates, catalog events) gives what entering
them one by one gives: the same refusals, holdout, branches, step outcomes and queued
messages, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from shopkeeper.journeys import store
from shopkeeper.segments.store import conditions
from shopkeeper.storage import tables as t
from tests.harness import NOW, Harness, harness

DEFINITION = """
name: {key}
entry: {{api: true}}
reentry: {reentry}
holdout: 0.3
steps:
  - id: gold
    type: condition
    condition: traits.plan = "gold"
    then: next
    else: plain
  - {{id: gold_mail, type: send, channel: email, template: hello, next: end}}
  - {{id: plain, type: send, channel: best, fallback: [sms], template: hello}}
  - {{id: later, type: wait, duration: 1d}}
  - {{id: again, type: send, channel: email, template: hello}}
"""


def setup(h: Harness, reentry: str = "once") -> dict[str, int]:
    response = h.client.put(
        "/api/templates/hello/email",
        json={"parts": {"subject": "Hello", "text": "Hi"}},
        headers=h.admin,
    )
    assert response.status_code == 200, response.text
    for i in range(40):
        traits: dict[str, Any] = {"plan": "gold" if i % 3 == 0 else "basic"}
        if i % 4:  # every fourth person has no email address
            traits["email"] = f"p{i}@example.com"
        traits["consent"] = {"email": i % 5 != 0}
        h.send("identify", {"userId": f"p{i}", "traits": traits})
    h.drain()
    for key in ("one_by_one", "together"):
        response = h.client.post(
            "/api/journeys",
            json={
                "key": key,
                "definition": DEFINITION.format(key=key, reentry=reentry),
                "status": "active",
            },
            headers=h.admin,
        )
        assert response.status_code == 201, response.text
    with h.services.db.read() as conn:
        i = t.identities
        return {
            r.value: int(r.profile_id)
            for r in conn.execute(sa.select(i.c.value, i.c.profile_id).where(i.c.type == "user_id"))
        }


def outcome(h: Harness, key: str) -> list[Any]:
    """Everything entering left behind, per person, comparable across journeys."""
    e, s, m, j = t.enrollments, t.enrollment_steps, t.messages, t.journeys
    with h.services.db.read() as conn:
        jid = conn.execute(sa.select(j.c.id).where(j.c.key == key)).scalar_one()
        people = conn.execute(
            sa.select(e.c.id, e.c.profile_id, e.c.entry_key, e.c.status, e.c.step,
                      e.c.wake_at, e.c.holdout, e.c.end_reason)
            .where(e.c.journey_id == jid)
            .order_by(e.c.profile_id, e.c.entry_key)
        ).all()  # fmt: skip
        result = []
        for p in people:
            steps = conn.execute(
                sa.select(s.c.step, s.c.outcome).where(s.c.enrollment_id == p.id).order_by(s.c.step)
            ).all()
            sent = conn.execute(
                sa.select(m.c.step, m.c.channel, m.c.status, m.c.reason, m.c.variables)
                .where(m.c.enrollment_id == p.id)
                .order_by(m.c.step)
            ).all()
            result.append(
                (
                    p.profile_id,
                    p.entry_key.split(":", 1)[1],
                    p.status,
                    p.step,
                    p.wake_at,
                    p.holdout,
                    p.end_reason,
                    [tuple(r) for r in steps],
                    [(r.step, r.channel, r.status, r.reason, r.variables["journey"] != key)
                     for r in sent],
                )
            )  # fmt: skip
        return result


def forget(h: Harness, key: str) -> None:
    """Remove what entering the journey left, so it can be entered afresh."""
    e, s, m, j = t.enrollments, t.enrollment_steps, t.messages, t.journeys
    with h.services.db.write() as conn:
        jid = conn.execute(sa.select(j.c.id).where(j.c.key == key)).scalar_one()
        conn.execute(m.delete().where(m.c.journey_id == jid))
        conn.execute(s.delete().where(s.c.journey_id == jid))
        conn.execute(e.delete().where(e.c.journey_id == jid))


def test_entering_together_matches_entering_one_by_one(db_url: str) -> None:
    with harness(db_url, journey_entries_per_day=50) as h:
        ids = setup(h)
        runtime = h.services.journeys
        assert runtime is not None
        people = [(ids[f"p{i}"], f"k:{i}", {"n": i}) for i in range(40)]
        # Someone listed twice: "once" lets them in the first time only.
        people.append((ids["p7"], "k:7-again", {"n": 7}))
        with h.services.db.write() as conn:
            journey = store.get_journey(conn, "together")
            assert journey is not None
            definition = store.definition(conn, journey.id, journey.version)
            singly = sum(
                runtime.enter(conn, journey, definition, pid, key, props, NOW)[0] is not None
                for pid, key, props in people
            )
        a = outcome(h, "together")
        forget(h, "together")
        with h.services.db.write() as conn:
            together = runtime.enter_many(conn, journey, definition, people, NOW, conditions(conn))
            # Entering again changes nothing: every key and person is in already.
            again = runtime.enter_many(conn, journey, definition, people, NOW, conditions(conn))
        b = outcome(h, "together")
        assert singly == together == 40
        assert again == 0
        assert a == b
        # The scenario covers what it means to: both branches, the holdout, people
        # with no address or no consent, and people still waiting.
        reached = {step for row in a for step, _outcome in row[7]}
        assert {"gold", "gold_mail", "plain", "later"} <= reached
        assert any(row[5] for row in a)
        assert not all(row[5] for row in a)
        statuses = {sent[2] for row in a for sent in row[8]}
        assert statuses == {"queued", "skipped"}
        assert any(row[2] == "active" and row[4] is not None for row in a)


def test_the_daily_entry_cap_counts_entries_made_together(db_url: str) -> None:
    with harness(db_url, journey_entries_per_day=2, journey_max_concurrent=10) as h:
        ids = setup(h, reentry="every_time")
        runtime = h.services.journeys
        assert runtime is not None
        people = [(ids["p1"], f"k:{n}", {}) for n in range(5)]
        with h.services.db.write() as conn:
            journey = store.get_journey(conn, "together")
            assert journey is not None
            definition = store.definition(conn, journey.id, journey.version)
            entered = runtime.enter_many(conn, journey, definition, people, NOW, conditions(conn))
            # The cap is on entries into any journey: one more elsewhere is refused too.
            other = store.get_journey(conn, "one_by_one")
            assert other is not None
            row, reason = runtime.enter(conn, other, definition, ids["p1"], "k:x", {}, NOW)
        assert entered == 2
        assert row is None
        assert reason == "entered too many journeys today"


def test_statistics_are_refreshed_after_a_large_broadcast(db_url: str) -> None:
    """On PostgreSQL, ANALYZE of the tables a broadcast fills (a no-op on SQLite)."""
    from shopkeeper.journeys import entries

    with harness(db_url) as h:
        setup(h)
        entries._analyze(h.services.db)
        if not h.services.db.is_sqlite:
            with h.services.db.read() as conn:
                # reltuples is -1 until a table is first analyzed (or vacuumed).
                unanalyzed = conn.execute(
                    sa.text(
                        "SELECT count(*) FROM pg_class WHERE relname IN "
                        "('messages', 'enrollments', 'enrollment_steps') AND reltuples < 0 "
                        "AND relnamespace = current_schema()::regnamespace"
                    )
                ).scalar_one()
            assert unanalyzed == 0
