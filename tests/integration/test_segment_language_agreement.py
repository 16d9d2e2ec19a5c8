"""The segment language's two backends agree: for random profiles, events, catalog rows
and conditions, the SQL compiled for the population (SQLite and PostgreSQL) selects
exactly the profiles the Python predicate accepts."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shopkeeper.segments.lang import ast
from shopkeeper.segments.lang.evaluate import EventFact, ProfileFacts, compile_predicate
from shopkeeper.segments.lang.fields import event_field, profile_field
from shopkeeper.segments.lang.parser import parse
from shopkeeper.segments.lang.to_sql import compile_sql
from shopkeeper.storage.db import Database
from shopkeeper.timeutil import ms_to_iso, parse_iso_ms
from tests.segment_facts import clear, insert_products, insert_profiles, member_ids

NOW = parse_iso_ms("2026-11-23T08:00:00Z")
HOUR = 3_600_000
DAY = 24 * HOUR

TEXTS = ["", "a", "ab", "B", "b", "é", "Ö", "z", "NO", "nb-NO", "mobile",
         ms_to_iso(NOW - 2 * DAY), ms_to_iso(NOW - 100 * DAY), "1990-11-25", "2000-02-29",
         "1985-11-23x"]  # fmt: skip
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from([0.5, 2.5, -1.5, 100.0]),
    st.sampled_from(TEXTS),
)
values = st.one_of(
    scalars,
    st.lists(scalars, max_size=3),
    st.dictionaries(st.sampled_from(["k", "kind"]), scalars, max_size=2),
    st.sampled_from([{}, [], ""]),
)

PROFILE_KEYS = ["x", "y", "birthday", "email"]
COMPUTED_KEYS = ["orders_count", "last_order_at", "country", "device_types", "cart",
                 "cart_items_count", "sessions_count", "checkout_started_at", "last_source",
                 "product_views_count"]  # fmt: skip
PRODUCTS: dict[str, dict[str, Any]] = {
    "p1": {"category": "Home > Sofas", "price": 10.0, "brand": "Nord"},
    "p2": {"category": "Lamps", "price": None},
    "7": {"category": "Sofas", "price": 2.5},
}

events = st.builds(
    EventFact,
    name=st.sampled_from(["A", "B"]),
    timestamp=st.integers(0, 400).map(lambda h: NOW - h * 12 * HOUR),
    properties=st.fixed_dictionaries(
        {},
        optional={
            "category": values,
            "revenue": st.one_of(st.integers(-2, 50), st.sampled_from(["5", None])),
            "product_id": st.sampled_from(["p1", "p2", 7, 7.5, None, True, "nope"]),
        },
    ),
    context=st.fixed_dictionaries({}, optional={"locale": values}),
)


@st.composite
def people(draw: st.DrawFn) -> list[ProfileFacts]:
    count = draw(st.integers(1, 6))
    out = []
    for n in range(count):
        out.append(
            ProfileFacts(
                profile_id=n + 1,
                known=draw(st.booleans()),
                traits=draw(st.dictionaries(st.sampled_from(PROFILE_KEYS), values, max_size=3)),
                computed=draw(st.dictionaries(st.sampled_from(COMPUTED_KEYS), values, max_size=5)),
                consents=draw(
                    st.dictionaries(
                        st.tuples(st.sampled_from(["email", "sms", "*"]), st.just("marketing")),
                        st.booleans(),
                        max_size=2,
                    )
                ),
                scores=draw(
                    st.fixed_dictionaries(
                        {},
                        optional={
                            "rfm_segment": st.sampled_from(["Champions", "At Risk"]),
                            "lead_score": st.sampled_from([0.0, 10.5, 60.0]),
                            "rfm_recency": st.integers(1, 5),
                        },
                    )
                ),
                events=draw(st.lists(events, max_size=5)),
                products=PRODUCTS,
            )
        )
    return out


PROFILE_FIELDS = ["traits.x", "traits.y", "traits.x.k", "birthday", "email", "orders_count",
                  "last_order_at", "country", "device_types", "cart", "source",
                  "consent.email", "consent.sms", "rfm_segment", "lead_score", "rfm_recency",
                  "known", "funnel_stage"]  # fmt: skip
EVENT_FIELDS = ["category", "revenue", "product.category", "product.price", "product.brand",
                "context.locale", "product_id"]  # fmt: skip
literals = st.one_of(
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from([0.5, 2.5, 100.0]),
    st.sampled_from([*TEXTS, "Home", "Sofas", "At Risk", "visitor", "engaged", "customer"]),
)
# Amounts that land exactly on the times above (2 and 100 days, 48 hours...), so that
# the bounds of windows are tested, not only their insides.
durations = st.one_of(
    st.builds(ast.Duration, st.sampled_from([0, 1, 2, 3, 7, 30, 100, 365]), st.just("days")),
    st.builds(ast.Duration, st.sampled_from([1, 12, 48, 2400]), st.just("hours")),
    st.builds(ast.Duration, st.integers(0, 60), st.sampled_from(["days", "weeks"])),
)


def atoms(fields: st.SearchStrategy[ast.Field]) -> st.SearchStrategy[ast.Condition]:
    return st.one_of(
        st.builds(
            ast.Compare, fields, st.sampled_from(["=", "!=", ">", ">=", "<", "<="]), literals
        ),
        st.builds(ast.OneOf, fields, st.lists(literals, min_size=1, max_size=3).map(tuple)),
        st.builds(ast.Text, fields, st.sampled_from(["starts with", "contains"]), literals),
        st.builds(ast.Presence, fields, st.sampled_from(["set", "empty"])),
        st.builds(ast.Truthy, fields),
        st.builds(ast.TimeWindow, fields, st.booleans(), durations),
        st.builds(ast.Anniversary, fields, st.integers(0, 10)),
    )


profile_fields = st.sampled_from(PROFILE_FIELDS).map(lambda n: profile_field(n)[0])
event_fields = st.sampled_from(EVENT_FIELDS).map(lambda n: event_field(n)[0])


def combine(inner: st.SearchStrategy[ast.Condition]) -> st.SearchStrategy[ast.Condition]:
    return st.one_of(
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: ast.And(tuple(xs))),
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: ast.Or(tuple(xs))),
        inner.map(ast.Not),
    )


wheres = st.one_of(st.none(), st.recursive(atoms(event_fields), combine, max_leaves=3))
did = st.builds(
    ast.Did,
    st.sampled_from(["A", "B"]),
    st.sampled_from([">=", "<=", "=", ">", "<"]),
    st.integers(0, 3),
    st.one_of(st.none(), durations),
    wheres,
    st.just(False),
)
first_did = st.builds(
    ast.Did, st.sampled_from(["A", "B"]), window=durations, where=wheres, first=st.just(True)
)
aggregate = st.builds(
    ast.Aggregate,
    st.sampled_from(["total", "average", "minimum", "maximum"]),
    st.sampled_from(["revenue", "product.price"]).map(lambda n: event_field(n)[0]),
    st.sampled_from(["A", "B"]),
    st.one_of(st.none(), durations),
    wheres,
    st.sampled_from(["=", "!=", ">", ">=", "<", "<="]),
    st.sampled_from([0.0, 5.0, 12.0, 2.5]),
)
leaves = st.one_of(atoms(profile_fields), did, first_did, aggregate, st.just(ast.InSegment("s1")))
conditions = st.one_of(leaves, st.recursive(leaves, combine, max_leaves=6))
SEGMENTS = {"s1": parse('orders_count >= 1 or did "A" within 30 days')}


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(population=people(), tests=st.lists(conditions, min_size=1, max_size=4))
def test_sql_and_python_select_the_same_profiles(
    db_url: str, population: list[ProfileFacts], tests: list[ast.Condition]
) -> None:
    db = _database(db_url)
    dialect = db.engine.dialect.name
    with db.engine.begin() as conn:
        clear(conn)
        insert_products(conn, PRODUCTS)
        insert_profiles(conn, population)
        for condition in tests:
            compiled = compile_sql(condition, dialect, NOW, SEGMENTS)  # type: ignore[arg-type]
            predicate = compile_predicate(condition, SEGMENTS)
            expected = {f.profile_id for f in population if predicate(f, NOW)}
            assert member_ids(conn, compiled.sql, compiled.params) == expected, condition


_DATABASES: dict[str, Database] = {}


def _database(url: str) -> Database:
    # One engine per database for all examples (the fixture gives a fresh database per
    # test; the examples of one test share it and clear it).
    if url not in _DATABASES:
        _DATABASES[url] = Database(url)
    return _DATABASES[url]


def every_atom() -> list[ast.Condition]:
    """Each kind of test on each field with each literal: the combinations the random
    conditions reach only by luck (an empty object on a bound, a window's exact edge)."""
    lits: list[ast.Value] = [True, False, 0, 1, 2.5, -1.5, 100.0, *TEXTS, "Home", "Sofas",
                             "At Risk", "visitor", "engaged", "customer"]  # fmt: skip
    windows = [ast.Duration(n, "days") for n in (0, 1, 2, 3, 100, 365)] + [
        ast.Duration(48, "hours")
    ]

    def on(fld: ast.Field) -> list[ast.Condition]:
        out: list[ast.Condition] = [ast.Presence(fld, "set"), ast.Presence(fld, "empty"),
                                    ast.Truthy(fld)]  # fmt: skip
        for lit in lits:
            out += [ast.Compare(fld, op, lit) for op in ("=", "!=", ">", ">=", "<", "<=")]
            out += [ast.Text(fld, "starts with", lit), ast.Text(fld, "contains", lit)]
        out.append(ast.OneOf(fld, ("a", 1, True)))
        out += [ast.TimeWindow(fld, within, w) for w in windows for within in (True, False)]
        out += [ast.Anniversary(fld, days) for days in (0, 2, 7)]
        return out

    atoms_: list[ast.Condition] = []
    for name in PROFILE_FIELDS:
        atoms_ += on(profile_field(name)[0])
    for name in EVENT_FIELDS:
        atoms_ += [ast.Did("A", where=where) for where in on(event_field(name)[0])]
    for func in ("total", "average", "minimum", "maximum"):
        for prop in ("revenue", "product.price"):
            for window in (None, ast.Duration(2, "days")):
                atoms_ += [
                    ast.Aggregate(func, event_field(prop)[0], "A", window, None, op, v)  # type: ignore[arg-type]
                    for op in ("=", ">", "<=")
                    for v in (0.0, 5.0, 10.0)
                ]
    for op in (">=", "<=", "=", ">", "<"):
        for times in (0, 1, 2):
            for window in (None, *windows):
                atoms_.append(ast.Did("B", op, times, window))  # type: ignore[arg-type]
    atoms_ += [ast.Did("A", window=w, first=True) for w in windows]
    return atoms_


ATOMS = every_atom()


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(population=people())
def test_every_atom_agrees_on_random_profiles(db_url: str, population: list[ProfileFacts]) -> None:
    db = _database(db_url)
    dialect = db.engine.dialect.name
    with db.engine.begin() as conn:
        clear(conn)
        insert_products(conn, PRODUCTS)
        insert_profiles(conn, population)
        for start in range(0, len(ATOMS), 400):
            chunk = ATOMS[start : start + 400]
            columns, params = [], {}
            for n, condition in enumerate(chunk):
                compiled = compile_sql(condition, dialect, NOW, SEGMENTS)  # type: ignore[arg-type]
                sql = compiled.sql
                for name in sorted(compiled.params, key=len, reverse=True):
                    sql = sql.replace(f":{name}", f":c{n}_{name}")
                params.update({f"c{n}_{k}": v for k, v in compiled.params.items()})
                columns.append(f"CASE WHEN {sql} THEN 1 ELSE 0 END")
            query = (
                f"SELECT p.id, {', '.join(columns)} FROM profiles p "
                "WHERE p.merged_into IS NULL ORDER BY p.id"
            )
            rows = {int(row[0]): row[1:] for row in conn.execute(sa.text(query), params)}
            for n, condition in enumerate(chunk):
                predicate = compile_predicate(condition, SEGMENTS)
                for person in population:
                    got = bool(rows[person.profile_id][n])
                    assert got == predicate(person, NOW), (condition, person)
