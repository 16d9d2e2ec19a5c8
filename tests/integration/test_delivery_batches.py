"""Delivery per claimed batch, on SQLite and PostgreSQL: the checks see what the same
batch sent before (caps, dead addresses), a batch decides and renders as one message
alone would, a failed group write falls back to one write per message, recommendations
are only read for templates that show them, and a batch's statements do not grow with
its messages."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from shopkeeper.journeys import service as journeys
from shopkeeper.messaging import messages
from shopkeeper.messaging.messages import Message
from shopkeeper.storage import tables as t
from shopkeeper.storage.db import Database
from tests.harness import NOW, Harness, harness
from tests.integration.channel_servers import SmtpServer, smtp_server

NO_RULES: dict[str, Any] = {
    "cap_per_channel_day": 0,
    "cap_per_channel_week": 0,
    "cap_all_day": 0,
    "cap_all_week": 0,
    "quiet_hours_start": 0,
    "quiet_hours_end": 0,
}


@contextmanager
def smtp_harness(db_url: str, **settings: Any) -> Iterator[tuple[SmtpServer, Harness]]:
    """A harness whose email channel is a real SMTP server (aiosmtpd), with no caps or
    quiet hours."""
    with (
        smtp_server() as smtp,
        harness(
            db_url, channel_email="smtp", smtp_host=smtp.host, smtp_port=smtp.port,
            **NO_RULES, **settings,
        ) as h,
    ):  # fmt: skip
        yield smtp, h


def save_template(h: Harness, key: str, parts: dict[str, str], channel: str = "email") -> None:
    response = h.client.put(f"/api/templates/{key}/{channel}", json={"parts": parts},
                            headers=h.admin)  # fmt: skip
    assert response.status_code == 200, response.text


def person(h: Harness, user: str, *, email: bool = True, consent: bool = True) -> int:
    traits: dict[str, Any] = {"firstName": user.title(), "consent": {"email": consent}}
    if email:
        traits["email"] = f"{user}@example.com"
    h.send("identify", {"userId": user, "traits": traits})
    h.drain()
    return int(h.profile(f"user_id:{user}")["profile_id"])


def queue(h: Harness, key: str, profile_id: int, template: str = "hello", **more: Any) -> int:
    values: dict[str, Any] = {"channel": "email", "transactional": False, "variables": {}}
    values.update(more)
    with h.services.db.write() as conn:
        queued = messages.queue(conn, h.services.db, key=key, profile_id=profile_id,
                                template=template, send_at=NOW, now_ms=NOW, **values)  # fmt: skip
    assert queued is not None
    return queued


def fates(h: Harness, ids: list[int]) -> list[tuple[str, str | None]]:
    with h.services.db.read() as conn:
        found = [messages.get(conn, i) for i in ids]
    return [(m.status, m.reason) for m in found if m is not None]


def get(h: Harness, message_id: int) -> Message:
    with h.services.db.read() as conn:
        found = messages.get(conn, message_id)
    assert found is not None
    return found


def one_batch(h: Harness, expected: int) -> None:
    """Everything queued is delivered by one run_once (one claimed batch)."""
    deliverer = h.services.deliverer
    assert deliverer is not None
    assert deliverer.run_once(NOW) == expected
    assert deliverer.run_once(NOW) == 0


def recorded(h: Harness, ids: list[int]) -> tuple[list[tuple[int, str]], list[tuple[str, str]]]:
    """The message events, and the timeline events written (event, messageId)."""
    with h.services.db.read() as conn:
        kinds = conn.execute(
            sa.select(t.message_events.c.message_id, t.message_events.c.kind)
            .where(t.message_events.c.message_id.in_(ids))
            .order_by(t.message_events.c.message_id, t.message_events.c.id)
        ).all()
        timeline = conn.execute(
            sa.select(t.events.c.event, t.events.c.message_id)
            .where(t.events.c.message_id.like("message-%"))
            .order_by(t.events.c.message_id)
        ).all()
    return [(int(i), str(k)) for i, k in kinds], [(str(e), str(m)) for e, m in timeline]


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    """Every SQL statement sent to the database (either engine) while inside."""
    seen: list[str] = []

    def note(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    engines = {id(e): e for e in (db.engine, db.read_engine)}.values()
    for engine in engines:
        event.listen(engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", note)


# -- caps and dead addresses see the batch's own sends ------------------------------------


def test_a_cap_counts_what_the_same_batch_sent(db_url: str) -> None:
    with harness(db_url, **{**NO_RULES, "cap_all_day": 1}) as h:
        save_template(h, "hello", {"subject": "Hello", "text": "Hi"})
        kari, ola = person(h, "kari"), person(h, "ola")
        ids = [queue(h, "b:1", kari), queue(h, "b:2", ola), queue(h, "b:3", kari)]
        one_batch(h, 3)
        assert fates(h, ids) == [
            ("sent", None),
            ("sent", None),
            ("skipped", "frequency cap: 1 messages today (limit 1)"),
        ]
        # The next batch reads the first one from the database.
        later = queue(h, "b:4", kari)
        one_batch(h, 1)
        assert fates(h, [later]) == [("skipped", "frequency cap: 1 messages today (limit 1)")]


def test_a_journey_cap_counts_what_the_same_batch_sent(db_url: str) -> None:
    with harness(db_url, **NO_RULES) as h:
        save_template(h, "hello", {"subject": "Hello", "text": "Hi"})
        definition = {
            "name": "Capped",
            "entry": {"event": "Signed Up"},
            "steps": [{"id": "send", "type": "send", "channel": "email", "template": "hello"}],
            "caps": {"per_day": 1},
        }
        capped = journeys.create(h.services.db, NOW, actor="test", key="capped",
                                 definition=definition, status="active")  # fmt: skip
        kari = person(h, "kari")
        ids = [
            queue(h, "j:1", kari, journey_id=capped.id, transactional=True),
            queue(h, "j:2", kari, journey_id=capped.id),
            queue(h, "j:3", kari),  # not the journey's: the shop has no caps
        ]
        one_batch(h, 3)
        assert fates(h, ids) == [
            ("sent", None),
            ("skipped", "frequency cap: 1 messages of this journey today (limit 1)"),
            ("sent", None),
        ]


def test_a_hard_bounce_suppresses_the_address_for_the_rest_of_the_batch(db_url: str) -> None:
    with smtp_harness(db_url) as (smtp, h):
        smtp.recorder.rcpt_replies["kari@example.com"] = "550 5.1.1 No such user"
        save_template(h, "hello", {"subject": "Hello", "text": "Hi"})
        kari, ola = person(h, "kari"), person(h, "ola")
        ids = [queue(h, "d:1", kari), queue(h, "d:2", ola), queue(h, "d:3", kari)]
        one_batch(h, 3)
        (first, reason), second, third = fates(h, ids)
        assert first == "failed"
        assert reason is not None
        assert "550" in reason
        assert second == ("sent", None)
        assert third == ("skipped", f"suppressed: {reason}")
        with h.services.db.read() as conn:
            assert messages.is_suppressed(conn, "email", "kari@example.com") == reason
        assert [m.rcpt_tos for m in smtp.recorder.received] == [["ola@example.com"]]


# -- a batch decides and renders as one message alone would ---------------------------


@pytest.mark.parametrize("batch_size", [1, 100])
def test_every_check_gives_the_same_reasons_in_any_batch_size(db_url: str, batch_size: int) -> None:
    with harness(db_url, message_batch_size=batch_size, **NO_RULES) as h:
        save_template(h, "hello", {"subject": "Hello {{ profile.first_name }}", "text": "Hi"})
        save_template(h, "hello", {"title": "Hi {{ profile.first_name }}"}, channel="in_app")
        ana, ben = person(h, "ana"), person(h, "ben", consent=False)
        cy, dee = person(h, "cy", email=False), person(h, "dee")
        with h.services.db.write() as conn:
            messages.suppress(conn, h.services.db, "email", "dee@example.com", "complained", NOW)
        ids = [
            queue(h, "s:1", ana),
            queue(h, "s:2", ben),
            queue(h, "s:3", cy),
            queue(h, "s:4", dee),
            queue(h, "s:5", dee, transactional=True),
            queue(h, "s:6", ben, transactional=True),
            queue(h, "s:7", 999_999),
            queue(h, "s:8", ana, channel="in_app"),
            queue(h, "s:9", ana, template="missing"),
            queue(h, "s:10", ana, template=None),
        ]
        deliverer = h.services.deliverer
        assert deliverer is not None
        assert deliverer.drain(NOW) == len(ids)
        assert fates(h, ids) == [
            ("sent", None),
            ("skipped", "no consent for email"),
            ("skipped", "no email address"),
            ("skipped", "suppressed: complained"),
            ("skipped", "suppressed: complained"),
            ("sent", None),
            ("skipped", "the person was erased"),
            ("delivered", None),
            ("skipped", "could not render: no variant for en, nor for en, and no default variant"),
            ("skipped", "could not render: the message names no template"),
        ]
        sent = get(h, ids[0])
        assert sent.content == {"subject": "Hello Ana", "text": "Hi"}
        assert (sent.recipient, sent.locale, sent.sent_at) == ("ana@example.com", "", NOW)
        assert get(h, ids[7]).content == {"title": "Hi Ana"}
        events, timeline = recorded(h, ids)
        assert events == [(ids[0], "sent"), (ids[5], "sent"), (ids[7], "delivered")]
        assert sorted(timeline) == sorted([
            ("Message Sent", f"message-{ids[0]}-sent"),
            ("Message Sent", f"message-{ids[5]}-sent"),
            ("Message Delivered", f"message-{ids[7]}-delivered"),
        ])  # fmt: skip


def test_a_batch_renders_what_one_message_alone_would(db_url: str) -> None:
    with harness(db_url, **NO_RULES) as h:
        for product_id, name in (("sofa-1", "Oslo Sofa"), ("lamp-1", "Lamp"), ("rug-1", "Rug")):
            body = {"name": name, "category": "Home > Living room", "price": 100}
            assert h.client.put(f"/api/products/{product_id}", json=body,
                                headers=h.admin).status_code == 200  # fmt: skip
        save_template(h, "picks", {
            "subject": "{{ product.name if product else 'Hello' }}",
            "text": "{% for p in recommendations %}{{ p.name }};{% endfor %}"
                    "{% for line in cart %}{{ line.name }}x{{ line.quantity }};{% endfor %}",
        })  # fmt: skip
        h.send("track", {"userId": "kari", "event": "Product Added",
                         "properties": {"product_id": "lamp-1", "quantity": 2}})  # fmt: skip
        kari, ola = person(h, "kari"), person(h, "ola")
        ids = [
            queue(h, "r:1", kari, template="picks", variables={"product_id": "sofa-1"}),
            queue(h, "r:2", ola, template="picks"),
            queue(h, "r:3", kari, template="picks"),
        ]
        one_batch(h, 3)
        deliverer = h.services.deliverer
        assert deliverer is not None
        contents = [get(h, i).content for i in ids]
        alone = [deliverer.render(get(h, i), NOW)[0] for i in ids]
        assert contents == alone
        assert contents[0] == {"subject": "Oslo Sofa", "text": "Rug;Lampx2;"}
        assert contents[1] == {"subject": "Hello", "text": "Lamp;Oslo Sofa;Rug;"}


# -- writing outcomes -------------------------------------------------------------------


@contextmanager
def refused_event(db: Database, message_id: int | None = None) -> Iterator[None]:
    """A trigger that refuses the message's "sent" event (a real failed write); with no
    message, every message event, so that no outcome can be written."""
    only = f"NEW.message_id = {int(message_id)} AND NEW.kind = 'sent'" if message_id else ""
    if db.is_sqlite:
        create = [
            "CREATE TRIGGER refuse_event BEFORE INSERT ON message_events "
            f"{f'WHEN {only} ' if only else ''}"
            "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
        ]
        drop = ["DROP TRIGGER IF EXISTS refuse_event"]
    else:
        refuse = "RAISE EXCEPTION 'refused by the test';"
        body = f"IF {only} THEN {refuse} END IF;" if only else refuse
        create = [
            f"CREATE FUNCTION refuse_event() RETURNS trigger AS $$ BEGIN {body} "
            "RETURN NEW; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER refuse_event BEFORE INSERT ON message_events "
            "FOR EACH ROW EXECUTE FUNCTION refuse_event()",
        ]
        drop = [
            "DROP TRIGGER IF EXISTS refuse_event ON message_events",
            "DROP FUNCTION IF EXISTS refuse_event()",
        ]
    with db.write() as conn:
        for statement in create:
            conn.exec_driver_sql(statement)
    try:
        yield
    finally:
        with db.write() as conn:
            for statement in drop:
                conn.exec_driver_sql(statement)


def test_a_group_that_cannot_be_written_is_written_message_by_message(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with harness(db_url, **NO_RULES) as h:
        save_template(h, "hello", {"subject": "Hello", "text": "Hi"})
        people = [person(h, name) for name in ("ana", "ben", "cy")]
        ids = [queue(h, f"f:{n}", pid) for n, pid in enumerate(people)]
        with refused_event(h.services.db, ids[1]), caplog.at_level(logging.ERROR):
            one_batch(h, 3)
        assert "writing 3 message outcomes failed; writing them one by one" in caplog.text
        (first, second, third) = fates(h, ids)
        assert first == third == ("sent", None)
        assert second[0] == "failed"
        assert second[1] is not None
        assert second[1].startswith("internal error: ")
        assert "refused by the test" in second[1]
        events, timeline = recorded(h, ids)
        assert events == [(ids[0], "sent"), (ids[1], "failed"), (ids[2], "sent")]
        assert sorted(timeline) == sorted([
            ("Message Sent", f"message-{ids[0]}-sent"),
            ("Message Failed", f"message-{ids[1]}-failed"),
            ("Message Sent", f"message-{ids[2]}-sent"),
        ])  # fmt: skip


# -- what a batch reads ---------------------------------------------------------------


def popular_reads(seen: list[str]) -> int:
    return sum("product_stats" in statement for statement in seen)


def test_recommendations_are_read_only_for_templates_that_show_them(db_url: str) -> None:
    with harness(db_url, **NO_RULES) as h:
        for product_id in ("sofa-1", "lamp-1"):
            body = {"name": product_id.title(), "category": "Home", "price": 100}
            assert h.client.put(f"/api/products/{product_id}", json=body,
                                headers=h.admin).status_code == 200  # fmt: skip
        save_template(h, "plain", {"subject": "Hello", "text": "Hi {{ profile.first_name }}"})
        save_template(h, "picks", {
            "subject": "Picks",
            "text": "{% macro show(items) %}{% for p in items %}{{ p.name }};{% endfor %}"
                    "{% endmacro %}{{ show(recommendations) }}",
        })  # fmt: skip
        people = [person(h, name) for name in ("ana", "ben", "cy")]
        plain = [queue(h, f"p:{n}", pid, template="plain") for n, pid in enumerate(people)]
        with statements(h.services.db) as seen:
            one_batch(h, 3)
        assert popular_reads(seen) == 0
        assert [get(h, i).content for i in plain] == [
            {"subject": "Hello", "text": f"Hi {name}"} for name in ("Ana", "Ben", "Cy")
        ]

        picks = [queue(h, f"q:{n}", pid, template="picks") for n, pid in enumerate(people)]
        with statements(h.services.db) as seen:
            one_batch(h, 3)
        # Nobody has interests nor a cart: one read of the shop's popular products.
        assert popular_reads(seen) == 1
        assert {str((get(h, i).content or {})["text"]) for i in picks} == {"Lamp-1;Sofa-1;"}


def test_the_statements_of_a_batch_do_not_grow_with_its_messages(db_url: str) -> None:
    with harness(db_url, **{**NO_RULES, "cap_all_day": 5}) as h:
        save_template(h, "hello", {"subject": "Hello", "text": "Hi {{ profile.first_name }}"})
        people = [person(h, f"p{n}") for n in range(24)]
        counts = []
        for size, prefix in ((4, "small"), (24, "large")):
            for n, pid in enumerate(people[:size]):
                queue(h, f"{prefix}:{n}", pid)
            with statements(h.services.db) as seen:
                one_batch(h, size)
            counts.append(len(seen))
        small, large = counts
        # One message at a time, 20 more messages would take hundreds more statements.
        assert large <= small + 10, (small, large)


# -- sending beside the worker (drain claims the next batch while one is being sent) ----


def test_a_cap_counts_what_the_batch_before_sent_while_it_is_still_being_sent(
    db_url: str,
) -> None:
    with harness(db_url, message_batch_size=1, **{**NO_RULES, "cap_all_day": 1}) as h:
        save_template(h, "hello", {"subject": "Hello", "text": "Hi"})
        kari, ola = person(h, "kari"), person(h, "ola")
        # One message per batch: each batch is claimed while the one before is sent.
        ids = [queue(h, "n:1", kari), queue(h, "n:2", ola), queue(h, "n:3", kari),
               queue(h, "n:4", ola)]  # fmt: skip
        deliverer = h.services.deliverer
        assert deliverer is not None
        assert deliverer.drain(NOW) == 4
        assert fates(h, ids) == [
            ("sent", None),
            ("sent", None),
            ("skipped", "frequency cap: 1 messages today (limit 1)"),
            ("skipped", "frequency cap: 1 messages today (limit 1)"),
        ]


def test_a_hard_bounce_suppresses_the_address_for_the_next_batches(db_url: str) -> None:
    with smtp_harness(db_url, message_batch_size=1) as (smtp, h):
        smtp.recorder.rcpt_replies["kari@example.com"] = "550 5.1.1 No such user"
        save_template(h, "hello", {"subject": "Hello", "text": "Hi"})
        kari, ola = person(h, "kari"), person(h, "ola")
        # Another person at the same address: the suppression is the address's.
        h.send("identify", {"userId": "kari2", "traits": {"email": "kari@example.com",
                                                          "consent": {"email": True}}})  # fmt: skip
        h.drain()
        kari2 = int(h.profile("user_id:kari2")["profile_id"])
        ids = [queue(h, "h:1", kari), queue(h, "h:2", kari2), queue(h, "h:3", ola)]
        deliverer = h.services.deliverer
        assert deliverer is not None
        assert deliverer.drain(NOW) == 3
        (first, reason), second, third = fates(h, ids)
        assert first == "failed"
        assert second == ("skipped", f"suppressed: {reason}")
        assert third == ("sent", None)
        assert [m.rcpt_tos for m in smtp.recorder.received] == [["ola@example.com"]]


@pytest.mark.parametrize("batch_size", [1, 100])
def test_outcomes_that_cannot_be_written_stop_delivery_and_mark_nothing_sent(
    db_url: str, batch_size: int, caplog: pytest.LogCaptureFixture
) -> None:
    with smtp_harness(db_url, message_batch_size=batch_size) as (smtp, h):
        save_template(h, "hello", {"subject": "Hello", "text": "Hi"})
        people = [person(h, name) for name in ("ana", "ben", "cy")]
        ids = [queue(h, f"w:{n}", pid) for n, pid in enumerate(people)]
        deliverer = h.services.deliverer
        assert deliverer is not None
        with (
            refused_event(h.services.db),
            caplog.at_level(logging.ERROR),
            pytest.raises(Exception, match="refused by the test"),
        ):
            deliverer.drain(NOW)
        # What the sink took is not recorded as sent: the messages stay leased (or, with
        # one message per batch, the last may not have been claimed before the error
        # stopped delivery), and once the lease runs out they are retried with the same
        # key (the same Message-ID).
        statuses = [status for status, _reason in fates(h, ids)]
        assert set(statuses) <= {"sending", "queued"}
        assert statuses.count("sending") >= len(smtp.recorder.received)
        assert 1 <= len(smtp.recorder.received) <= len(ids)
        first = {m.message["Message-ID"] for m in smtp.recorder.received}
        later = NOW + 10 * 60 * 1000
        assert deliverer.drain(later) == len(ids)
        assert [status for status, _reason in fates(h, ids)] == ["sent"] * len(ids)
        again = [m.message["Message-ID"] for m in smtp.recorder.received]
        assert first <= set(again)
        assert len(set(again)) == len(ids)
