"""The built-in segments counted in the database: on SQLite and PostgreSQL, the SQL of
every built-in selects exactly the profiles its Python predicate accepts, over a varied
population (the documented examples of tests/unit/test_builtin_segments.py, each a
profile of its own, plus a few ordinary customers), and every built-in has members."""

from __future__ import annotations

import dataclasses

from shopkeeper.segments.builtins import BUILTINS
from shopkeeper.segments.lang.evaluate import ProfileFacts, compile_predicate
from shopkeeper.segments.lang.parser import parse
from shopkeeper.segments.lang.to_sql import compile_sql
from shopkeeper.storage.db import Database
from tests.segment_facts import insert_products, insert_profiles, member_ids
from tests.unit.test_builtin_segments import EXAMPLES, NOW, ago, at, customer, event, who

PRODUCTS = {
    "p1": {"name": "Sofa", "category": "Sofas", "price": 25.0},
    "p2": {"name": "Lamp", "category": "Lamps", "price": 40.0},
}


def everyday_people() -> list[ProfileFacts]:
    """Customers who are a bit of everything at once."""
    return [
        customer(
            orders_count=4,
            total_revenue=1800.0,
            first_order_at=at(300),
            last_order_at=at(hours=5),
            last_seen_at=at(hours=5),
            first_seen_at=at(320),
            source_kinds=["app", "web"],
            consents={("*", "marketing"): True},
            scores={"rfm_segment": "Champions", "lead_score": 12.0},
            events=[
                event("Order Completed", ago(hours=5), revenue=450, currency="EUR"),
                event("Product Viewed", ago(hours=6), product_id="p2"),
            ],
        ),
        who(
            first_seen_at=at(hours=1),
            last_seen_at=at(hours=1),
            wishlist=[{"product_id": "p1"}],
            events=[
                event("Product Viewed", ago(hours=1), product_id=p) for p in ("p1", "p1", "p2")
            ],
        ),
        who(known=True, traits={"email": "x@example.no", "phone": "+4790000000"}),
    ]


def population() -> tuple[list[ProfileFacts], dict[int, tuple[str, bool, str]]]:
    """The profiles (ids from 1), and for the documented examples among them: the
    built-in each is an example of, whether it is in, and why."""
    people: list[ProfileFacts] = []
    documented: dict[int, tuple[str, bool, str]] = {}
    for key, examples in EXAMPLES.items():
        for expected, why, facts in examples:
            people.append(facts)
            documented[len(people)] = (key, expected, why)
    people += everyday_people()
    return [dataclasses.replace(f, profile_id=n) for n, f in enumerate(people, 1)], documented


def test_sql_agrees_with_python_for_every_builtin(db_url: str) -> None:
    people, _ = population()
    db = Database(db_url)
    dialect = db.engine.dialect.name
    assert dialect in ("sqlite", "postgresql")
    try:
        with db.engine.begin() as conn:
            insert_products(conn, PRODUCTS)
            insert_profiles(conn, people)
        with db.engine.connect() as conn:
            for builtin in BUILTINS:
                condition = parse(builtin.condition)
                compiled = compile_sql(condition, dialect, NOW)  # type: ignore[arg-type]
                predicate = compile_predicate(condition)
                expected = {p.profile_id for p in people if predicate(p, NOW)}
                got = member_ids(conn, compiled.sql, compiled.params)
                assert got == expected, builtin.key
                assert got, f"{builtin.key} has no member in the population"
    finally:
        db.dispose()


def test_sql_decides_each_documented_example(db_url: str) -> None:
    people, documented = population()
    db = Database(db_url)
    dialect = db.engine.dialect.name
    try:
        with db.engine.begin() as conn:
            insert_products(conn, PRODUCTS)
            insert_profiles(conn, people)
        with db.engine.connect() as conn:
            members = {}
            for builtin in BUILTINS:
                compiled = compile_sql(parse(builtin.condition), dialect, NOW)  # type: ignore[arg-type]
                members[builtin.key] = member_ids(conn, compiled.sql, compiled.params)
        for pid, (key, expected, why) in documented.items():
            assert (pid in members[key]) is expected, (key, why)
    finally:
        db.dispose()
