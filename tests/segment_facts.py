"""Writing ProfileFacts into a database as the pipeline would hold them, and reading
them back: shared by the language's agreement test and the membership tests."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shopkeeper.segments.lang.evaluate import ProfileFacts
from shopkeeper.storage import tables as t


def clear(conn: Connection) -> None:
    for table in (t.events, t.consents, t.profile_scores, t.products, t.profiles):
        conn.execute(table.delete())


def insert_products(conn: Connection, products: dict[str, dict[str, Any]]) -> None:
    rows = [
        {
            "id": pid,
            "name": row.get("name", pid),
            "category": row.get("category"),
            "brand": row.get("brand"),
            "price": row.get("price"),
            "attributes": {},
            "locales": {},
            "created_at": 0,
            "updated_at": 0,
        }
        for pid, row in products.items()
    ]
    if rows:
        conn.execute(t.products.insert(), rows)


def insert_profiles(conn: Connection, people: Sequence[ProfileFacts]) -> None:
    profiles, consents, scores, events = [], [], [], []
    for person in people:
        pid = person.profile_id
        profiles.append(
            {
                "id": pid,
                "created_at": 0,
                "updated_at": 0,
                "merged_into": None,
                "is_known": person.known,
                "display_name": None,
                "traits": dict(person.traits),
                "trait_times": {},
                "computed": dict(person.computed),
            }
        )
        for (channel, purpose), granted in person.consents.items():
            consents.append(
                {
                    "profile_id": pid,
                    "channel": channel,
                    "purpose": purpose,
                    "granted": granted,
                    "updated_at": 0,
                    "source": None,
                    "via": "test",
                    "message_id": None,
                }
            )
        if person.scores:
            scores.append({**_NO_SCORES, **person.scores, "profile_id": pid})
        for n, event in enumerate(person.events):
            payload = {
                "type": "track",
                "event": event.name,
                "properties": dict(event.properties),
                "context": dict(event.context),
            }
            events.append(
                {
                    "source_id": 1,
                    "message_id": f"m{pid}-{n}",
                    "type": "track",
                    "event": event.name,
                    "user_id": None,
                    "anonymous_id": "a",
                    "partition": 0,
                    "timestamp": event.timestamp,
                    "received_at": event.timestamp,
                    "status": t.APPLIED,
                    "profile_id": pid,
                    "processed_at": None,
                    "error": None,
                    "payload": json.loads(json.dumps(payload)),
                }
            )
    for table, rows in ((t.profiles, profiles), (t.consents, consents),
                        (t.profile_scores, scores), (t.events, events)):  # fmt: skip
        if rows:
            conn.execute(table.insert(), rows)


_NO_SCORES = {
    "rfm_recency": None,
    "rfm_frequency": None,
    "rfm_monetary": None,
    "rfm_segment": None,
    "rfm_at": None,
    "lead_score": None,
    "lead_score_at": None,
}


def member_ids(conn: Connection, sql: str, params: dict[str, Any]) -> set[int]:
    query = f"SELECT p.id FROM profiles p WHERE p.merged_into IS NULL AND ({sql})"
    return {int(row[0]) for row in conn.execute(sa.text(query), params)}
