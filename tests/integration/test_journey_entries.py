"""The entries the scheduler starts, on SQLite and PostgreSQL through the real API and
pipeline: broadcasts to a segment, birthdays in each person's time zone, holidays of each
person's own country, and back-in-stock for the people who viewed the product."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from shopkeeper.bootstrap import scheduled_tasks
from shopkeeper.clock import FixedClock
from shopkeeper.journeys import entries
from shopkeeper.journeys.runtime import JourneyRuntime
from shopkeeper.storage import tables as t
from shopkeeper.timeutil import ms_to_iso, parse_iso_ms
from tests.harness import NOW, Harness, harness

DAY = 86_400_000
# Steps that finish at once, so that nobody is still "in the journey" when they may
# enter again, and that need no template.
TAG_STEP = "steps:\n  - {id: tag, type: update_profile, tags: [entered]}\n"


def person(h: Harness, user: str, *, at: int | None = None, **traits: Any) -> None:
    context = traits.pop("context", {})
    when = ms_to_iso(at if at is not None else h.clock.now_ms())
    h.send("identify", {"userId": user, "traits": traits, "context": context, "timestamp": when})


def track(h: Harness, user: str, event: str, at: int, **properties: Any) -> None:
    h.send("track", {"userId": user, "event": event, "properties": properties,
                     "timestamp": ms_to_iso(at)})  # fmt: skip


def journey(h: Harness, key: str, entry: str, steps: str = TAG_STEP) -> None:
    text = f"name: {key}\nentry: {entry}\n{steps}"
    response = h.client.post(
        "/api/journeys", json={"key": key, "definition": text, "status": "active"}, headers=h.admin
    )
    assert response.status_code == 201, response.text


def entered(h: Harness, key: str) -> list[tuple[str, str]]:
    """(user id, entry key) of everyone who entered the journey."""
    e, j, i = t.enrollments, t.journeys, t.identities
    with h.services.db.read() as conn:
        rows = conn.execute(
            sa.select(i.c.value, e.c.entry_key)
            .select_from(e.join(j, j.c.id == e.c.journey_id))
            .join(i, sa.and_(i.c.profile_id == e.c.profile_id, i.c.type == "user_id"))
            .where(j.c.key == key)
            .order_by(e.c.id)
        ).all()
    return [(r.value, r.entry_key) for r in rows]


def users(h: Harness, key: str) -> list[str]:
    return sorted(user for user, _ in entered(h, key))


def segment(h: Harness, key: str, condition: str) -> None:
    response = h.client.post(
        "/api/segments",
        json={"key": key, "name": key, "condition": condition},
        headers=h.admin,
    )
    assert response.status_code == 201, response.text


def test_a_broadcast_enters_each_member_once_however_often_it_runs(db_url: str) -> None:
    with harness(db_url) as h:
        for user, plan in (("u-1", "gold"), ("u-2", "gold"), ("u-3", "basic")):
            person(h, user, plan=plan)
        h.drain()
        segment(h, "gold", 'traits.plan = "gold"')
        at = ms_to_iso(NOW + 3_600_000)
        journey(h, "gold_news", f"{{broadcast: gold, at: '{at}'}}")
        db, settings = h.services.db, h.services.settings

        assert entries.run_broadcasts(db, settings, NOW) == 0  # not due yet
        assert entries.run_broadcasts(db, settings, NOW + 3_600_000) == 2
        assert entries.run_broadcasts(db, settings, NOW + 3_600_000) == 0
        assert users(h, "gold_news") == ["u-1", "u-2"]
        assert {key for _, key in entered(h, "gold_news")} == {
            f"broadcast:{at}:{pid}" for pid in _profile_ids(h, "u-1", "u-2")
        }

        # Someone who joins the segment afterwards missed that one-off broadcast.
        person(h, "u-3", plan="gold")
        h.drain()
        assert entries.run_broadcasts(db, settings, NOW + 2 * 3_600_000) == 0
        assert users(h, "gold_news") == ["u-1", "u-2"]


def test_a_broadcast_switched_on_after_its_time_still_sends_once(db_url: str) -> None:
    with harness(db_url) as h:
        person(h, "u-1", plan="gold")
        h.drain()
        segment(h, "gold", 'traits.plan = "gold"')
        journey(h, "late", f"{{broadcast: gold, at: '{ms_to_iso(NOW - DAY)}'}}")
        db, settings = h.services.db, h.services.settings
        assert entries.run_broadcasts(db, settings, NOW) == 1
        assert entries.run_broadcasts(db, settings, NOW + 60_000) == 0


def test_a_recurring_broadcast_enters_again_each_period(db_url: str) -> None:
    with harness(db_url) as h:
        for user in ("u-1", "u-2"):
            person(h, user, plan="gold")
        h.drain()
        segment(h, "gold", 'traits.plan = "gold"')
        journey(h, "weekly", "{broadcast: gold, every: 7d}")
        db, settings = h.services.db, h.services.settings

        assert entries.run_broadcasts(db, settings, NOW) == 2
        assert entries.run_broadcasts(db, settings, NOW + DAY) == 0  # the same week
        assert entries.run_broadcasts(db, settings, NOW + 7 * DAY) == 2
        assert entries.run_broadcasts(db, settings, NOW + 7 * DAY + 60_000) == 0
        keys = [key for _, key in entered(h, "weekly")]
        assert len(keys) == len(set(keys)) == 4
        week = 7 * DAY
        periods = {ms_to_iso(NOW // week * week), ms_to_iso((NOW + week) // week * week)}
        assert {key.split(":", 1)[1].rsplit(":", 1)[0] for key in keys} == periods


def test_the_schedulers_broadcast_wakes_this_processs_delivery(db_url: str) -> None:
    with harness(db_url) as h:
        response = h.client.put(
            "/api/templates/hello/email",
            json={"parts": {"subject": "Hello", "text": "Hi"}},
            headers=h.admin,
        )
        assert response.status_code == 200, response.text
        for user in ("u-1", "u-2"):
            person(h, user, plan="gold", email=f"{user}@example.com", consent={"email": True})
        h.drain()
        segment(h, "gold", 'traits.plan = "gold"')
        at = ms_to_iso(NOW - 1000)
        journey(h, "tagged", f"{{broadcast: gold, at: '{at}'}}")
        db, settings = h.services.db, h.services.settings
        woke: list[int] = []
        runtime = JourneyRuntime(db, settings, wake_delivery=lambda: woke.append(1))
        tasks = {task.name: task for task in scheduled_tasks(settings, h.clock, runtime)}

        # Nothing queued: delivery is left asleep.
        assert tasks["journeys.broadcasts"].run(db, settings, NOW) == 2
        assert woke == []

        mail = "steps:\n  - {id: mail, type: send, channel: email, template: hello}\n"
        journey(h, "mailed", f"{{broadcast: gold, at: '{at}'}}", steps=mail)
        assert tasks["journeys.broadcasts"].run(db, settings, NOW + 60_000) == 2
        assert woke == [1]  # once, after the chunk that queued the messages was committed
        with db.read() as conn:
            statuses = conn.execute(sa.select(t.messages.c.status)).scalars().all()
        assert statuses == ["queued", "queued"]


def _profile_ids(h: Harness, *user_ids: str) -> list[int]:
    return [int(h.profile(f"user_id:{u}")["profile_id"]) for u in user_ids]


def test_a_birthday_journey_enters_on_the_day_in_each_persons_time_zone(db_url: str) -> None:
    with harness(db_url) as h:
        person(h, "oslo", birthday="1990-11-24", context={"timezone": "Europe/Oslo"})
        person(h, "la", birthday="1985-11-24", context={"timezone": "America/Los_Angeles"})
        person(h, "other", birthday="1985-11-26", context={"timezone": "Europe/Oslo"})
        person(h, "no-birthday", context={"timezone": "Europe/Oslo"})
        h.drain()
        journey(h, "birthday", "{date: birthday, annual: true, hour: 9}")
        db, settings = h.services.db, h.services.settings

        def run(at: str) -> int:
            return entries.run_dates(db, settings, parse_iso_ms(at))

        assert run("2026-11-23T12:00:00Z") == 0  # the day before, everywhere
        assert run("2026-11-23T23:30:00Z") == 0  # 00:30 in Oslo: before 9
        assert run("2026-11-24T08:30:00Z") == 1  # 09:30 in Oslo; 00:30 in Los Angeles
        assert users(h, "birthday") == ["oslo"]
        assert run("2026-11-24T12:00:00Z") == 0  # Oslo is in already; 04:00 in LA
        assert run("2026-11-24T17:30:00Z") == 1  # 09:30 in Los Angeles
        assert users(h, "birthday") == ["la", "oslo"]
        assert run("2026-11-25T07:30:00Z") == 0  # still the 24th in LA, in already
        assert run("2026-11-25T17:30:00Z") == 0  # the 25th: nobody's birthday
        assert {key.split(":")[1] for _, key in entered(h, "birthday")} == {"2026-11-24"}
        # Next year is a new birthday.
        assert run("2027-11-24T09:00:00Z") == 1


def test_a_date_journey_n_days_after_the_last_order(db_url: str) -> None:
    with harness(db_url) as h:
        order_at = parse_iso_ms("2026-10-24T15:00:00Z")
        for user in ("bought", "recent"):
            person(h, user, context={"timezone": "Europe/Oslo"}, at=order_at)
        track(h, "bought", "Order Completed", order_at, order_id="o-1", revenue=100)
        track(h, "recent", "Order Completed", order_at + 5 * DAY, order_id="o-2", revenue=50)
        h.drain()
        journey(h, "restock", "{date: last_order_at, offset_days: 30, hour: 10}")
        db, settings = h.services.db, h.services.settings
        assert entries.run_dates(db, settings, parse_iso_ms("2026-11-22T12:00:00Z")) == 0
        assert entries.run_dates(db, settings, parse_iso_ms("2026-11-23T12:00:00Z")) == 1
        assert users(h, "restock") == ["bought"]


def test_a_holiday_journey_follows_each_persons_own_country(db_url: str) -> None:
    with harness(db_url) as h:
        person(h, "kari", email="kari@example.no", address={"country": "Norway"},
               context={"timezone": "Europe/Oslo", "locale": "nb-NO"})  # fmt: skip
        person(h, "jane", email="jane@example.com", address={"country": "US"},
               context={"timezone": "America/New_York", "locale": "en-US"})  # fmt: skip
        h.drain()
        journey(h, "mothers", "{holiday: mothers_day, days_before: 7, hour: 9}")
        db, settings = h.services.db, h.services.settings

        def run(at: str) -> int:
            return entries.run_dates(db, settings, parse_iso_ms(at))

        # Norway's Mother's Day is the second Sunday of February: 2026-02-08.
        assert run("2026-01-31T12:00:00Z") == 0
        assert run("2026-02-01T07:30:00Z") == 0  # 08:30 in Oslo
        assert run("2026-02-01T08:30:00Z") == 1  # 09:30 in Oslo
        assert run("2026-02-01T20:00:00Z") == 0
        assert entered(h, "mothers")[0][0] == "kari"
        assert entered(h, "mothers")[0][1].startswith("holiday:mothers_day:2026-02-08:")
        # The US one is the second Sunday of May: 2026-05-10.
        assert run("2026-05-03T12:00:00Z") == 0  # 08:00 in New York
        assert run("2026-05-03T14:00:00Z") == 1  # 10:00 in New York
        assert users(h, "mothers") == ["jane", "kari"]
        with db.read() as conn:
            state = conn.execute(
                sa.select(t.enrollments.c.state).order_by(t.enrollments.c.id.desc()).limit(1)
            ).scalar_one_or_none()
        assert state is not None
        assert state["entry"]["country"] == "US"
        assert state["entry"]["holiday_date"] == "2026-05-10"


def test_back_in_stock_enters_the_products_viewers_only(db_url: str) -> None:
    clock = FixedClock(NOW)
    with harness(db_url, clock=clock) as h:
        for pid in ("boot-1", "hat-2"):
            body = {"name": pid, "price": 100.0, "currency": "NOK", "stock_quantity": 0}
            response = h.client.put(f"/api/products/{pid}", json=body, headers=h.admin)
            assert response.status_code in (200, 201), response.text
        for user in ("viewer", "other", "long-ago", "wisher"):
            person(h, user, at=NOW - 60 * DAY)
        track(h, "viewer", "Product Viewed", NOW - 2 * DAY, product_id="boot-1")
        track(h, "other", "Product Viewed", NOW - 2 * DAY, product_id="hat-2")
        track(h, "long-ago", "Product Viewed", NOW - 45 * DAY, product_id="boot-1")
        track(h, "wisher", "Product Added to Wishlist", NOW - DAY, product_id="boot-1")
        h.drain()
        journey(h, "back", "{catalog: Product Back In Stock, viewed_within: 30d}")
        db, settings = h.services.db, h.services.settings
        assert entries.run_catalog(db, settings, NOW) == 0  # the first run starts here

        clock.advance(60_000)
        body = {"name": "boot-1", "price": 100.0, "currency": "NOK", "stock_quantity": 5}
        response = h.client.put("/api/products/boot-1", json=body, headers=h.admin)
        assert response.status_code == 200, response.text
        assert [e["type"] for e in response.json()["catalog_events"]] == ["Product Back In Stock"]

        assert entries.run_catalog(db, settings, clock.now_ms()) == 2
        assert entries.run_catalog(db, settings, clock.now_ms()) == 0
        assert users(h, "back") == ["viewer", "wisher"]
        with db.read() as conn:
            states = conn.execute(sa.select(t.enrollments.c.state)).scalars().all()
        assert {s["entry"]["product_id"] for s in states} == {"boot-1"}
        assert {s["entry"]["new_stock"] for s in states} == {5}
