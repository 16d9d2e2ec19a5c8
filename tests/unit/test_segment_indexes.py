"""Which indexes the saved segments want (pure): the indexed expression is exactly the one
the compiler writes into the condition, or PostgreSQL would never use the index."""

from __future__ import annotations

from shopkeeper.segments.indexes import (
    IndexState,
    consent_filters,
    event_filters,
    expression,
    index_for,
    plan,
    profile_filter,
    static_conjuncts,
    wanted,
)
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
    ranked = [i.use.path if i.use else i.filter for i in wanted(saved, NOW, limit=10)]
    # country: a, b, c (through b); orders_count: b, c; then a filter for each segment,
    # each used by one, before loyalty_tier (c alone).
    assert ranked[:2] == [("country",), ("orders_count",)]
    assert set(ranked[2:5]) == {
        'profiles where country = "NO"',
        'profiles where country = "SE" and orders_count >= 2',
        'profiles where country = "SE" and orders_count >= 2 and loyalty_tier = "gold"',
    }
    assert ranked[5:] == [("loyalty_tier",)]
    assert [i.name for i in wanted(saved, NOW, limit=2)] == [
        i.name for i in wanted(saved, NOW, limit=10)[:2]
    ]


def test_a_segment_that_names_a_missing_one_wants_no_index_and_breaks_nothing() -> None:
    saved = {"a": parse('in segment "gone"'), "b": parse("orders_count > 1")}
    assert [i.use.path if i.use else i.filter for i in wanted(saved, NOW, limit=10)] == [
        "profiles where orders_count > 1",
        ("orders_count",),
    ]


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


def test_a_filter_holds_the_static_conjuncts_of_the_top_level_and() -> None:
    saved = {"gold": parse('loyalty_tier = "gold" and consent.email')}
    node = parse(
        'country in ("NO", "SE") and total_revenue >= 500.5 and email is set '
        'and locale starts with "nb" and traits.vip and known '
        "and last_order_at within 90 days and birthday is anniversary within 7 days "
        'and consent.sms and lead_score >= 10 and tags contains "red" '
        'and (country = "DK" or orders_count > 3) and not orders_count > 9 '
        'and did "Order Completed" and in segment "gold"'
    )
    kept = static_conjuncts(node, saved)
    # Windows and anniversaries move with the clock; consents and scores live in other
    # tables; `or` and `not` are not conjuncts; a named segment's own conjuncts count.
    assert [n.field.name for n in kept] == [  # type: ignore[attr-defined]
        "country", "total_revenue", "email", "locale", "traits.vip", "known", "tags",
        "loyalty_tier",
    ]  # fmt: skip
    index = profile_filter(node, saved, NOW)
    assert index is not None
    assert index.use is None
    # `contains` looks into lists with a subquery, which a predicate cannot hold.
    assert "{tags}" not in index.definition
    assert index.definition.startswith(
        f"CREATE INDEX IF NOT EXISTS {index.name} ON profiles (id) WHERE merged_into IS NULL AND "
    )
    assert "CAST('500.5' AS DOUBLE PRECISION)" in index.definition
    assert "p." not in index.definition.replace("p.id", "")
    assert ":p" not in index.definition
    assert index.filter == (
        'profiles where country in ("NO", "SE") and total_revenue >= 500.5 and email is set '
        'and locale starts with "nb" and traits.vip and known and loyalty_tier = "gold"'
    )


def test_each_atom_of_a_filter_is_written_as_the_condition_writes_it() -> None:
    node = parse('country in ("NO", "SE") and total_revenue >= 500 and name = "O\'Hara"')
    compiled = compile_sql(node, "postgresql", NOW)
    index = profile_filter(node, {}, NOW)
    assert index is not None
    sql = compiled.sql.replace("p.computed", "computed").replace("p.traits", "traits")
    for name, value in sorted(compiled.params.items(), key=lambda kv: -len(kv[0])):
        literal = (
            f"CAST('{value!r}' AS DOUBLE PRECISION)"
            if isinstance(value, float)
            else "'" + value.replace("'", "''") + "'"
        )
        sql = sql.replace(f":{name}", literal)
    # The same atoms in the same form: PostgreSQL matches them one by one.
    predicate = index.definition.split("WHERE merged_into IS NULL AND ", 1)[1]
    assert f"({predicate})" == sql


def test_no_filter_without_static_conjuncts() -> None:
    for text in ("last_order_at within 3 days", 'did "Order Completed"', "consent.email",
                 'country = "NO" or country = "SE"', 'not country = "NO"'):  # fmt: skip
        assert profile_filter(parse(text), {}, NOW) is None, text


def test_event_filters_follow_how_each_did_is_tested() -> None:
    node = parse(
        'did "Product Viewed" at least 3 times within 7 days where category = "Sofas" '
        'and not did "Product Added" where (price > 10 or brand = "Nordic") '
        'and did "Order Completed" where product.category = "Sofas" '
        'and did "Order Completed" within 14 days '
        'and did "Signed Up" at least 2 times within 30 days '
        'and did "Page Viewed" at least 5 times '
        'and did "Order Completed" for the first time within 30 days'
    )
    found = event_filters(node, {}, NOW)
    # A count in a window: the matching events by time. A test one profile at a time
    # (`EXISTS`), a first time, or a filtered count over all time: by person. A product
    # field is looked up in the catalog (a subquery): none. An unfiltered count over all
    # time keeps the index of every event.
    assert [i.filter for i in found] == [
        'events did "Product Viewed" where (category = "Sofas"), by time',
        'events did "Product Added" where (price > 10 or brand = "Nordic"), by person',
        'events did "Order Completed", by person',
        'events did "Signed Up", by time',
        'events did "Order Completed", by person',
    ]
    by_time, by_person = found[0].definition, found[1].definition
    assert by_time == (
        f'CREATE INDEX IF NOT EXISTS {found[0].name} ON events ("timestamp") '
        "INCLUDE (profile_id) WHERE status = 1 AND type = 'track' AND "
        "event = 'Product Viewed' AND ((payload #> '{properties,category}') = "
        "CAST('\"Sofas\"' AS JSONB))"
    )
    assert by_person.startswith(
        f'CREATE INDEX IF NOT EXISTS {found[1].name} ON events (profile_id, "timestamp") '
        "WHERE status = 1 AND type = 'track' AND event = 'Product Added' AND "
    )
    # The plain `did` and the first time share one index.
    assert found[2].name == found[4].name
    # The same filter written twice is one index.
    twice = parse('did "A" where category = "S" and did "A" within 2 days where category = "S"')
    assert len({i.name for i in event_filters(twice, {}, NOW)}) == 1


def test_consent_filters_hold_the_three_sets_a_consent_test_reads() -> None:
    saved = {"reachable": parse("consent.email or consent.sms")}
    found = consent_filters(parse('in segment "reachable" and not consent.email'), saved)
    names = {i.name: i for i in found}
    # email and sms: granted, recorded; every channel granted, shared.
    assert len(names) == 5
    assert {i.filter for i in names.values()} == {
        "consents granted email (marketing)",
        "consents recorded email (marketing)",
        "consents granted sms (marketing)",
        "consents recorded sms (marketing)",
        "consents granted for every channel (marketing)",
    }
    granted = next(i for i in found if i.filter == "consents granted email (marketing)")
    assert granted.definition == (
        f"CREATE INDEX IF NOT EXISTS {granted.name} ON consents (profile_id) "
        "WHERE channel = 'email' AND purpose = 'marketing' AND granted"
    )
    assert consent_filters(parse('country = "NO"'), {}) == []
