"""Coupon pools on both databases: generating and importing codes, issuing one code per
person per journey (also under concurrent issuers on PostgreSQL), expiry, redemption
through the real pipeline, and the admin API."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from shopkeeper.messaging import coupon_reports as reports
from shopkeeper.messaging import coupons
from shopkeeper.messaging.coupon_patterns import UNAMBIGUOUS
from shopkeeper.messaging.coupons_api import router
from shopkeeper.storage import tables as t
from shopkeeper.storage.db import Database
from tests.harness import NOW, Harness, harness

DAY = coupons.DAY_MS


def _pool(db: Database, key: str = "cart", **options: object) -> coupons.Pool:
    with db.write() as conn:
        return coupons.create_pool(conn, key, key.title(), now_ms=NOW, **options)  # type: ignore[arg-type]


def _import(db: Database, key: str, codes: list[str]) -> tuple[int, int]:
    with db.write() as conn:
        return coupons.import_codes(conn, key, codes, NOW)


def _issue(db: Database, key: str, profile: int, journey: int | None = 1) -> coupons.IssuedCoupon:
    with db.write() as conn:
        return coupons.issue(
            conn, key, profile_id=profile, journey_id=journey, enrollment_id=None, now_ms=NOW
        )


def _summary(db: Database, key: str, now_ms: int = NOW) -> dict[str, object]:
    with db.read() as conn:
        return reports.pool_summary(conn, key, now_ms)


# -- pools and codes ----------------------------------------------------------------------


def test_pool_settings_are_validated(db: Database) -> None:
    pool = _pool(db, "cart", pattern="cart-{xxxxxx}", discount=" 10% ", valid_days=7)
    assert (pool.pattern, pool.discount, pool.valid_days) == ("CART-{XXXXXX}", "10%", 7)
    refused = [
        ({"key": "Cart"}, "key"),
        ({"key": "x", "name": " "}, "name"),
        ({"key": "x", "pattern": "CART-{XXX}"}, "pattern"),
        ({"key": "x", "valid_days": 0}, "valid_days"),
        ({"key": "x", "expires_at": NOW}, "expires_at"),
    ]
    for options, field in refused:
        key = str(options.pop("key"))
        name = str(options.pop("name", "A pool"))
        with pytest.raises(coupons.CouponError) as caught, db.write() as conn:
            coupons.create_pool(conn, key, name, now_ms=NOW, **options)  # type: ignore[arg-type]
        assert caught.value.field == field
    with pytest.raises(coupons.DuplicatePool), db.write() as conn:
        coupons.create_pool(conn, "cart", "Again", now_ms=NOW)


def test_ten_thousand_generated_codes_are_unique_and_well_formed(db: Database) -> None:
    pool = _pool(db, pattern="CART-{XXXXXX}")
    with db.write() as conn:
        assert coupons.generate_codes(conn, pool.id, 6_000, NOW) == 6_000
    with db.write() as conn:
        assert coupons.generate_codes(conn, pool.id, 4_000, NOW) == 4_000
    with db.read() as conn:
        codes = conn.execute(sa.select(t.coupons.c.code)).scalars().all()
    assert len(codes) == len(set(codes)) == 10_000
    shape = re.compile(rf"CART-[{UNAMBIGUOUS}]{{6}}\Z")
    assert all(shape.match(code) for code in codes)
    assert _summary(db, "cart")["codes"] == {
        "total": 10_000,
        "free": 10_000,
        "issued": 0,
        "redeemed": 0,
        "expired": 0,
    }


def test_generation_refuses_to_make_codes_easy_to_guess(db: Database) -> None:
    digits = _pool(db, "digits", pattern="{999999}")
    imported = _pool(db, "imported")
    with db.write() as conn:
        assert coupons.generate_codes(conn, digits.id, 100, NOW) == 100
    with pytest.raises(coupons.CouponError, match="guessed code"), db.write() as conn:
        coupons.generate_codes(conn, digits.id, 1, NOW)
    with pytest.raises(coupons.CouponError, match="no pattern"), db.write() as conn:
        coupons.generate_codes(conn, imported.id, 1, NOW)
    with pytest.raises(coupons.UnknownPool), db.write() as conn:
        coupons.generate_codes(conn, 999, 1, NOW)


def test_import_skips_duplicates_ignoring_case_and_refuses_bad_codes(db: Database) -> None:
    _pool(db, "shop")
    _pool(db, "other")
    assert _import(db, "shop", ["Summer-1", "summer-1", " Fall-2 ", "Summer-1", "W3"]) == (3, 2)
    assert _import(db, "shop", ["fall-2", "sUMMER-1", "spring-4"]) == (1, 2)
    # Codes are unique across pools too: a checkout code must name one coupon.
    assert _import(db, "other", ["w3", "X5"]) == (1, 1)
    with db.read() as conn:
        stored = set(conn.execute(sa.select(t.coupons.c.code)).scalars())
    # Stored in one case: as given, or upper-cased when the code mixes cases.
    assert stored == {"SUMMER-1", "FALL-2", "W3", "spring-4", "X5"}
    for bad, index in ((["ok-1", ""], 1), (["two words"], 0), (["x" * 101], 0), (["é1"], 0)):
        with pytest.raises(coupons.CouponError) as caught:
            _import(db, "shop", bad)
        assert caught.value.field == f"codes[{index}]"
    assert _summary(db, "shop")["codes"]["total"] == 4  # type: ignore[index]
    with pytest.raises(coupons.UnknownPool):
        _import(db, "nope", ["A"])


# -- issuing ------------------------------------------------------------------------------


def test_issue_is_one_code_per_profile_per_journey(db: Database) -> None:
    _pool(db, "shop", discount="10%")
    _import(db, "shop", ["FIRST", "SECOND", "THIRD"])
    first = _issue(db, "shop", profile=7, journey=1)
    assert first == coupons.IssuedCoupon("FIRST", None, "10%", "shop")
    assert _issue(db, "shop", profile=7, journey=1) == first
    assert _issue(db, "shop", profile=7, journey=2).code == "SECOND"
    assert _issue(db, "shop", profile=8, journey=1).code == "THIRD"
    with pytest.raises(coupons.PoolEmpty):
        _issue(db, "shop", profile=9, journey=1)
    # Those who hold one still get theirs.
    assert _issue(db, "shop", profile=7, journey=2).code == "SECOND"
    with pytest.raises(coupons.UnknownPool):
        _issue(db, "nope", profile=7)
    with db.read() as conn:
        row = conn.execute(sa.select(t.coupons).where(t.coupons.c.code == "FIRST")).one()
    assert (row.profile_id, row.journey_id, row.issued_at) == (7, 1, NOW)


def test_issue_after_a_crash_hands_out_the_same_code(db: Database) -> None:
    _pool(db, "shop")
    _import(db, "shop", ["A1", "B2"])
    seen: list[str] = []

    def crash() -> None:
        with db.write() as conn:
            issued = coupons.issue(
                conn, "shop", profile_id=1, journey_id=5, enrollment_id=3, now_ms=NOW
            )
            seen.append(issued.code)
            raise RuntimeError("the worker died before committing")

    with pytest.raises(RuntimeError):
        crash()
    assert seen == ["A1"]
    assert _summary(db, "shop")["codes"]["free"] == 2  # type: ignore[index]
    assert _issue(db, "shop", profile=1, journey=5).code == "A1"
    assert _issue(db, "shop", profile=1, journey=5).code == "A1"
    assert _summary(db, "shop")["codes"]["issued"] == 1  # type: ignore[index]


def test_pattern_pools_use_free_codes_first_then_make_new_ones(db: Database) -> None:
    pool = _pool(db, "cart", pattern="CART-{XXXXXX}")
    with db.write() as conn:
        coupons.generate_codes(conn, pool.id, 2, NOW)
        made = conn.execute(sa.select(t.coupons.c.code).order_by(t.coupons.c.id)).scalars().all()
    assert [_issue(db, "cart", profile=p).code for p in (1, 2)] == made
    fresh = _issue(db, "cart", profile=3)
    assert fresh.code not in made
    assert re.fullmatch(rf"CART-[{UNAMBIGUOUS}]{{6}}", fresh.code)
    assert _issue(db, "cart", profile=3) == fresh
    assert _summary(db, "cart")["codes"]["total"] == 3  # type: ignore[index]


def test_expiry_is_the_earlier_of_valid_days_and_the_pool_end(db: Database) -> None:
    _pool(db, "week", pattern="W-{XXXXXX}", valid_days=7)
    _pool(db, "ends", pattern="E-{XXXXXX}", valid_days=7, expires_at=NOW + 3 * DAY)
    _pool(db, "later", pattern="L-{XXXXXX}", valid_days=2, expires_at=NOW + 3 * DAY)
    _pool(db, "open", pattern="O-{XXXXXX}")
    assert _issue(db, "week", profile=1).expires_at == NOW + 7 * DAY
    assert _issue(db, "ends", profile=1).expires_at == NOW + 3 * DAY
    assert _issue(db, "later", profile=1).expires_at == NOW + 2 * DAY
    assert _issue(db, "open", profile=1).expires_at is None
    with db.write() as conn:
        first = coupons.issue(
            conn, "ends", profile_id=2, journey_id=1, enrollment_id=None, now_ms=NOW + DAY
        )
    assert first.expires_at == NOW + 3 * DAY
    with pytest.raises(coupons.PoolExpired), db.write() as conn:
        coupons.issue(
            conn, "ends", profile_id=3, journey_id=1, enrollment_id=None, now_ms=NOW + 3 * DAY
        )
    # Expired codes not redeemed are counted as such once their time has passed.
    codes = _summary(db, "week", now_ms=NOW + 8 * DAY)["codes"]
    assert codes["expired"] == 1  # type: ignore[index]
    assert _summary(db, "week", now_ms=NOW + 6 * DAY)["codes"]["expired"] == 0  # type: ignore[index]


def test_concurrent_issuers_never_share_a_code(db: Database) -> None:
    _pool(db, "shop")
    _import(db, "shop", [f"CODE-{n:03d}" for n in range(120)])

    def issue_many(worker: int) -> list[str]:
        return [_issue(db, "shop", profile=worker * 1000 + n).code for n in range(25)]

    with ThreadPoolExecutor(4) as pool:
        handed = [code for codes in pool.map(issue_many, range(4)) for code in codes]
    assert len(handed) == len(set(handed)) == 100
    assert _summary(db, "shop")["codes"]["issued"] == 100  # type: ignore[index]


@pytest.fixture
def pg(db: Database) -> Database:
    if db.is_sqlite:
        pytest.skip("SQLite has one writer at a time; the race is PostgreSQL's")
    return db


def test_postgres_issuer_skips_a_code_another_transaction_holds(pg: Database) -> None:
    _pool(pg, "shop")
    _import(pg, "shop", ["A1", "B2", "C3"])
    both_issued = threading.Barrier(2, timeout=10)

    def issuer(profile: int) -> str:
        with pg.write() as conn:
            code = coupons.issue(
                conn, "shop", profile_id=profile, journey_id=1, enrollment_id=None, now_ms=NOW
            ).code
            # Neither commits until both hold a code: a waiting issuer would time out here.
            both_issued.wait()
        return code

    with ThreadPoolExecutor(2) as pool:
        codes = list(pool.map(issuer, (1, 2)))
    assert sorted(codes) == ["A1", "B2"]


def test_postgres_two_issues_for_the_same_person_give_one_code(pg: Database) -> None:
    _pool(pg, "shop", pattern="S-{XXXXXX}")
    _import(pg, "shop", ["A1", "B2"])
    first_holds = threading.Event()

    def first() -> str:
        with pg.write() as conn:
            code = coupons.issue(
                conn, "shop", profile_id=5, journey_id=1, enrollment_id=None, now_ms=NOW
            ).code
            first_holds.set()
            threading.Event().wait(0.3)  # the second issuer runs into our unique key
        return code

    def second() -> str:
        assert first_holds.wait(10)
        with pg.write() as conn:
            code = coupons.issue(
                conn, "shop", profile_id=5, journey_id=1, enrollment_id=None, now_ms=NOW
            ).code
            # The transaction is still usable after the refused claim.
            conn.execute(sa.text("SELECT 1"))
        return code

    with ThreadPoolExecutor(2) as pool:
        a, b = pool.submit(first), pool.submit(second)
        assert a.result() == b.result() == "A1"
    codes = _summary(pg, "shop")["codes"]
    assert codes == {"total": 2, "free": 1, "issued": 1, "redeemed": 0, "expired": 0}


# -- redemption ---------------------------------------------------------------------------


def test_redeem_ignores_case_and_counts_once(db: Database) -> None:
    _pool(db, "shop")
    _import(db, "shop", ["Summer-Ab", "OTHER-1", "welcome10"])
    _issue(db, "shop", profile=1)

    def redeem(code: str, profile: int, order: str, revenue: float | None) -> bool:
        with db.write() as conn:
            return coupons.redeem(
                conn, code, profile_id=profile, order_id=order, revenue=revenue, at_ms=NOW + 1
            )

    assert redeem(" sUMMER-aB ", 1, "o-1", 50.0)
    assert not redeem("summer-ab", 1, "o-2", 70.0)
    assert not redeem("NOT-OURS", 1, "o-3", 10.0)
    assert not redeem("", 1, "o-4", 10.0)
    # A code issued to nobody, or used by someone else, is still recorded.
    assert redeem("Welcome10", 2, "o-5", float("nan"))
    with db.read() as conn:
        rows = {
            row.code: row
            for row in conn.execute(sa.select(t.coupons).order_by(t.coupons.c.id)).all()
        }
    assert (rows["SUMMER-AB"].order_id, rows["SUMMER-AB"].revenue) == ("o-1", 50.0)
    assert rows["SUMMER-AB"].redeemed_at == NOW + 1
    assert (rows["welcome10"].profile_id, rows["welcome10"].revenue) == (None, None)
    # A redeemed code is never handed out.
    assert _issue(db, "shop", profile=3).code == "OTHER-1"
    with pytest.raises(coupons.PoolEmpty):
        _issue(db, "shop", profile=4)
    summary = _summary(db, "shop")
    assert summary["codes"] == {"total": 3, "free": 0, "issued": 2, "redeemed": 2, "expired": 0}
    assert summary["revenue"] == 50.0
    assert summary["redemption_rate"] == 0.5


# -- the pipeline and the API -------------------------------------------------------------


@pytest.fixture
def h(db_url: str) -> Iterator[Harness]:
    with harness(db_url) as ready:
        # Wired by bootstrap; added here only if it is not (yet).
        app = ready.client.app
        if not any(getattr(r, "path", "") == "/api/coupons/pools" for r in app.routes):  # type: ignore[attr-defined]
            app.include_router(router)  # type: ignore[attr-defined]
        hooks = ready.processor.hooks
        if not any(isinstance(hook, coupons.CouponRedemptionHook) for hook in hooks):
            hooks.append(coupons.CouponRedemptionHook())
        yield ready


def _order(user: str, order: str, coupon: object, **extra: object) -> dict[str, object]:
    properties = {"order_id": order, "coupon": coupon, "currency": "USD", **extra}
    return {"userId": user, "event": "Order Completed", "properties": properties}


def test_order_completed_with_a_coupon_redeems_it_through_the_pipeline(h: Harness) -> None:
    db = h.services.db
    response = h.client.post(
        "/api/coupons/pools",
        json={"key": "cart", "name": "Cart", "pattern": "CART-{XXXXXX}", "discount": "10%"},
        headers=h.admin,
    )
    assert response.status_code == 201, response.text
    h.send("identify", {"userId": "u1", "traits": {"email": "ana@example.com"}})
    h.send("identify", {"userId": "u2", "traits": {"email": "bo@example.com"}})
    h.drain()
    ana = h.profile("email:ana@example.com")["profile_id"]
    code = _issue(db, "cart", profile=ana, journey=3).code

    h.send("track", _order("u1", "o-1", code.lower(), revenue=80, total=99.5))
    h.send("track", _order("u1", "o-2", code, revenue=20))  # the same code again: ignored
    h.send("track", _order("u2", "o-3", "SOMEONE-ELSES"))
    h.send("track", _order("u2", "o-4", 12345))
    assert h.drain() == 4

    pool = h.client.get("/api/coupons/pools/cart", headers=h.admin).json()
    assert pool["codes"]["redeemed"] == 1
    assert pool["revenue"] == 80.0
    mine = h.client.get(
        "/api/coupons", params={"profile": "email:ana@example.com"}, headers=h.admin
    )
    assert mine.status_code == 200, mine.text
    [held] = mine.json()["coupons"]
    assert (held["code"], held["status"], held["order_id"]) == (code, "redeemed", "o-1")
    assert (held["pool"], held["discount"], held["journey_id"]) == ("cart", "10%", 3)
    none = h.client.get("/api/coupons", params={"profile": "email:bo@example.com"}, headers=h.admin)
    assert none.json()["coupons"] == []

    # `total` stands in for a missing `revenue`; a code shared with a friend still counts.
    bo = _issue(db, "cart", profile=ana, journey=4).code
    h.send("track", _order("u2", "o-5", bo, total="42.50"))
    h.drain()
    assert h.client.get("/api/coupons/pools/cart", headers=h.admin).json()["revenue"] == 122.5


def test_api_adds_lists_and_reports_codes(h: Harness) -> None:
    for body in (
        {"key": "shop", "name": "Imported", "valid_days": 30},
        {"key": "gen", "name": "Generated", "pattern": "G-{XXXXXX}"},
    ):
        assert h.client.post("/api/coupons/pools", json=body, headers=h.admin).status_code == 201
    added = h.client.post(
        "/api/coupons/pools/shop/codes", json={"codes": ["A1", "a1", "B2", "C3"]}, headers=h.admin
    ).json()
    assert (added["added"], added["duplicates"], added["pool"]["codes"]["free"]) == (3, 1, 3)
    made = h.client.post("/api/coupons/pools/gen/codes", json={"generate": 5}, headers=h.admin)
    assert made.status_code == 200
    assert made.json()["added"] == 5
    _issue(h.services.db, "shop", profile=1)

    pools = h.client.get("/api/coupons/pools", headers=h.admin).json()["pools"]
    assert [(p["key"], p["codes"]["total"]) for p in pools] == [("gen", 5), ("shop", 3)]
    free = h.client.get(
        "/api/coupons/pools/shop/codes", params={"status": "free", "limit": 1}, headers=h.admin
    ).json()
    assert [c["code"] for c in free["codes"]] == ["B2"]
    issued = h.client.get(
        "/api/coupons/pools/shop/codes", params={"status": "issued"}, headers=h.admin
    ).json()["codes"]
    assert [(c["code"], c["profile_id"]) for c in issued] == [("A1", 1)]
    assert issued[0]["expires_at"] == "2026-12-23T12:00:00.000Z"

    with h.services.db.read() as conn:
        actions = conn.execute(
            sa.select(t.audit_log.c.action)
            .where(t.audit_log.c.action.startswith("coupon"))
            .order_by(t.audit_log.c.id)
        )
        assert list(actions.scalars()) == [
            "coupon_pool.create",
            "coupon_pool.create",
            "coupon_pool.import",
            "coupon_pool.generate",
        ]


def _error(response: object, status: int, code: str, field: str | None) -> str:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    error = response.json()["error"]  # type: ignore[attr-defined]
    assert (error["code"], error["field"]) == (code, field)
    return str(error["message"])


def test_api_errors_have_one_shape(h: Harness) -> None:
    post = h.client.post
    get = h.client.get
    pool = {"key": "cart", "name": "Cart", "pattern": "CART-{XXXXXX}"}
    assert post("/api/coupons/pools", json=pool, headers=h.admin).status_code == 201
    message = _error(post("/api/coupons/pools", json=pool, headers=h.admin), 409, "conflict", "key")
    assert "already exists" in message
    short = {**pool, "key": "short", "pattern": "C-{XXX}"}
    message = _error(
        post("/api/coupons/pools", json=short, headers=h.admin), 422, "invalid_request", "pattern"
    )
    assert "at least 6" in message
    when = {**pool, "key": "when", "expires_at": "next week"}
    _error(
        post("/api/coupons/pools", json=when, headers=h.admin), 422, "invalid_request", "expires_at"
    )
    _error(
        post("/api/coupons/pools", json={"key": "x"}, headers=h.admin),
        422,
        "invalid_request",
        "name",
    )
    _error(get("/api/coupons/pools/nope", headers=h.admin), 404, "not_found", "key")
    _error(get("/api/coupons/pools/nope/codes", headers=h.admin), 404, "not_found", "key")
    codes = "/api/coupons/pools/cart/codes"
    _error(
        post("/api/coupons/pools/nope/codes", json={"generate": 1}, headers=h.admin),
        404,
        "not_found",
        "key",
    )
    _error(post(codes, json={}, headers=h.admin), 422, "invalid_request", None)
    _error(
        post(codes, json={"generate": 1, "codes": ["A"]}, headers=h.admin),
        422,
        "invalid_request",
        None,
    )
    _error(post(codes, json={"generate": 0}, headers=h.admin), 422, "invalid_request", "generate")
    _error(
        post(codes, json={"generate": 100_001}, headers=h.admin), 422, "invalid_request", "generate"
    )
    _error(
        post(codes, json={"codes": ["OK", 7]}, headers=h.admin), 422, "invalid_request", "codes[1]"
    )
    _error(get(codes, params={"status": "lost"}, headers=h.admin), 422, "invalid_request", "status")
    _error(
        get("/api/coupons", params={"profile": "nobody"}, headers=h.admin),
        400,
        "invalid_ref",
        "ref",
    )
    _error(
        get("/api/coupons", params={"profile": "email:no@example.com"}, headers=h.admin),
        404,
        "not_found",
        "ref",
    )
    _error(get("/api/coupons", headers=h.admin), 422, "invalid_request", "profile")
    _error(get("/api/coupons/pools"), 401, "unauthorized", None)
    with h.services.db.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.coupons)).scalar() == 0
