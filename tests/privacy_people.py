"""Two customers for the privacy tests, and a search of every column of every table.

Ana has two profiles (a laptop visit, then a sign-up on her phone) merged by an order,
then four events not applied yet; Bob has a profile and one pending event.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from shopkeeper.storage import tables as t
from shopkeeper.storage.db import Database
from shopkeeper.timeutil import ms_to_iso
from tests.harness import NOW, Harness

ANA_EMAIL = "ana.lindqvist@example.com"
ANA_USER = "user-ana-7731"
ANA_PHONE = "+4791234567"
ANA_ANONS = ("anon-ana-laptop", "anon-ana-phone", "anon-ana-tablet")
# Everything that would name Ana, searched case-insensitively in every column.
ANA_NEEDLES = (
    ANA_EMAIL,
    ANA_USER,
    ANA_PHONE,
    "912 34 567",
    "Lindqvist",
    "o-ana-1",
    *ANA_ANONS,
)
BOB_NEEDLES = ("bob@example.org", "user-bob-4410", "anon-bob", "Bob Berg")


def at(minutes: float) -> str:
    return ms_to_iso(NOW + int(minutes * 60_000))


def page(message_id: str, minutes: float, **ids: Any) -> dict[str, Any]:
    return {
        "type": "page",
        "name": "Home",
        "messageId": message_id,
        "timestamp": at(minutes),
        **ids,
    }


def track(message_id: str, event: str, minutes: float, **fields: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "event": event,
        "messageId": message_id,
        "timestamp": at(minutes),
        **fields,
    }


def viewed(message_id: str, minutes: float, **ids: Any) -> dict[str, Any]:
    return track(
        message_id,
        "Product Viewed",
        minutes,
        properties={"product_id": "sofa-1", "name": "Sofa", "price": 120},
        **ids,
    )


def setup_people(h: Harness) -> dict[str, int]:
    """Ana: two profiles (a laptop visit, then a sign-up on her phone) merged by an order,
    then four events not applied yet: one by user id, one carrying her email in context
    traits from a new tablet, one from that tablet alone, and one parked. Bob: a profile
    and one pending event. Returns the profile ids."""
    h.batch(
        [
            page("m1", -300, anonymousId="anon-ana-laptop"),
            viewed("m2", -299, anonymousId="anon-ana-laptop"),
            {
                "type": "identify",
                "messageId": "m3",
                "userId": ANA_USER,
                "anonymousId": "anon-ana-phone",
                "timestamp": at(-200),
                "traits": {
                    "email": "Ana.Lindqvist@Example.com",
                    "phone": "+47 912 34 567",
                    "name": "Ana Lindqvist",
                    "email_opt_in": True,
                },
            },
        ]
    )
    h.batch(
        [
            {
                "type": "identify",
                "messageId": "b1",
                "userId": "user-bob-4410",
                "anonymousId": "anon-bob",
                "timestamp": at(-250),
                "traits": {"email": "bob@example.org", "name": "Bob Berg"},
            },
            viewed("b2", -249, anonymousId="anon-bob"),
        ]
    )
    assert h.drain() == 5
    laptop = h.profile("anonymous_id:anon-ana-laptop")["profile_id"]
    phone = h.profile("anonymous_id:anon-ana-phone")["profile_id"]
    assert laptop != phone
    h.send(
        "track",
        track(
            "m4",
            "Order Completed",
            -100,
            userId=ANA_USER,
            anonymousId="anon-ana-laptop",
            properties={
                "order_id": "o-ana-1",
                "revenue": 120,
                "products": [{"product_id": "sofa-1", "price": 120, "quantity": 1}],
            },
        ),
    )
    assert h.drain() == 1
    h.batch(
        [
            viewed("m5", -10, userId=ANA_USER),
            page("m6", -9, anonymousId="anon-ana-tablet", context={"traits": {"email": ANA_EMAIL}}),
            page("m7", -8, anonymousId="anon-ana-tablet"),
            track("m8", "Checkout Started", -7, anonymousId="anon-ana-laptop"),
            page("b3", -6, anonymousId="anon-bob"),
        ]
    )
    with h.services.db.write() as conn:
        conn.execute(
            t.events.update()
            .where(t.events.c.message_id == "m8")
            .values(status=t.PARKED, error="ValueError: boom", processed_at=NOW)
        )
    bob = h.profile("email:bob@example.org")["profile_id"]
    return {"ana": laptop, "ana_absorbed": phone, "bob": bob}


def every_value(db: Database) -> list[tuple[str, str, str]]:
    """(table, column, value as lower-case text) for every column of every row."""
    out = []
    with db.read() as conn:
        for table in t.metadata.sorted_tables:
            for row in conn.execute(sa.select(table)):
                for column, value in row._mapping.items():
                    text = (
                        json.dumps(value, ensure_ascii=False)
                        if isinstance(value, dict | list)
                        else str(value)
                    )
                    out.append((table.name, column, text.lower()))
    return out


def found(db: Database, needles: tuple[str, ...]) -> set[tuple[str, str, str]]:
    """(needle, table, column) wherever a needle appears."""
    values = every_value(db)
    return {
        (needle, table, column)
        for needle in needles
        for table, column, text in values
        if needle.lower() in text
    }


def rows(db: Database, table: sa.Table, *order: Any) -> list[dict[str, Any]]:
    with db.read() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(table).order_by(*order))]
