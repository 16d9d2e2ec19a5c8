"""Which indexes the saved segments want (pure): the indexed expression is exactly the one
the compiler writes into the condition, or PostgreSQL would never use the index."""

from __future__ import annotations

from shopkeeper.segments.indexes import IndexState, expression, index_for, plan, wanted
from shopkeeper.segments.lang.parser import parse
from shopkeeper.segments.lang.to_sql import IndexUse, compile_sql

NOW = 1_795_449_600_000


def _with_alias(use: IndexUse) -> str:
    alias = "p." if use.table == "profiles" else "e."
    return expression(use).replace(f"({use.column} ", f"({alias}{use.column} ")


def test_every_expression_reported_is_in_the_sql_as_the_index_holds_it() -> None:
    condition = parse(
        'country in ("NO", "SE") and loyalty_tier = "gold" and total_revenue >= 500 '
        'and last_order_at within 90 days and traits.vip and email > "m" '
        'and did "Product Viewed" at least 2 times within 7 days where category = "Sofas" '
        'and did "Order Completed" where revenue > 100'
    )
    compiled = compile_sql(condition, "postgresql", NOW)
    got = {(u.table, u.column, u.path, u.form) for u in compiled.uses}
    assert got == {
        ("profiles", "computed", ("country",), "node"),
        ("profiles", "traits", ("loyalty_tier",), "node"),
        ("profiles", "computed", ("total_revenue",), "number"),
        ("profiles", "computed", ("last_order_at",), "text"),
        ("profiles", "traits", ("vip",), "node"),
        ("profiles", "traits", ("email",), "text"),
        ("events", "payload", ("properties", "category"), "node"),
        ("events", "payload", ("properties", "revenue"), "number"),
    }
    for use in compiled.uses:
        assert _with_alias(use) in compiled.sql, use


def test_conditions_under_not_keep_two_valued_logic_and_positive_ones_are_bare() -> None:
    positive = compile_sql(parse("total_revenue >= 500"), "postgresql", NOW).sql
    negated = compile_sql(parse("not total_revenue >= 500"), "postgresql", NOW).sql
    assert not positive.startswith("COALESCE")
    assert "COALESCE" in negated


def test_sqlite_reports_nothing_to_index() -> None:
    compiled = compile_sql(parse('country = "NO" and total_revenue > 1'), "sqlite", NOW)
    assert compiled.uses == frozenset()


def test_wanted_ranks_by_how_many_segments_use_an_expression_and_inlines_nested() -> None:
    saved = {
        "a": parse('country = "NO"'),
        "b": parse('country = "SE" and orders_count >= 2'),
        "c": parse('in segment "b" and loyalty_tier = "gold"'),
    }
    ranked = [i.use.path for i in wanted(saved, NOW, limit=10)]
    # country: a, b, c (through b); orders_count: b, c; loyalty_tier: c.
    assert ranked == [("country",), ("orders_count",), ("loyalty_tier",)]
    assert [i.use.path for i in wanted(saved, NOW, limit=2)] == ranked[:2]


def test_a_segment_that_names_a_missing_one_wants_no_index_and_breaks_nothing() -> None:
    saved = {"a": parse('in segment "gone"'), "b": parse("orders_count > 1")}
    assert [i.use.path for i in wanted(saved, NOW, limit=10)] == [("orders_count",)]


def test_plan_builds_missing_rebuilds_invalid_and_drops_unwanted() -> None:
    keep, missing, broken = (
        index_for(IndexUse("profiles", "computed", (name,), "number")) for name in ("a", "b", "c")
    )
    have = {
        keep.name: IndexState(keep.name, True),
        broken.name: IndexState(broken.name, False),
        "sk_seg_old": IndexState("sk_seg_old", True),
    }
    build, drop = plan([keep, missing, broken], have)
    assert [i.name for i in build] == [missing.name, broken.name]
    assert drop == sorted([broken.name, "sk_seg_old"])


def test_index_definitions() -> None:
    profile = index_for(IndexUse("profiles", "traits", ("tier",), "node"))
    assert profile.name.startswith("sk_seg_")
    assert len(profile.name) == len("sk_seg_") + 16
    assert profile.definition == (
        f"CREATE INDEX IF NOT EXISTS {profile.name} ON profiles (((traits #> '{{tier}}')))"
    )
    event = index_for(IndexUse("events", "payload", ("properties", "category"), "text"))
    assert 'COLLATE "C"' in event.definition
    assert "INCLUDE (profile_id) WHERE status = 1 AND type = 'track'" in event.definition
    assert event.describe() == "events.payload.properties.category (text)"
