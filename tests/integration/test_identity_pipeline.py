"""Identity resolution and the single customer view, end to end through the API."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import sqlalchemy as sa

from shopkeeper.storage import tables as t
from shopkeeper.timeutil import ms_to_iso
from tests.harness import NOW, harness

MIN = 60_000


def at(minutes: float) -> str:
    return ms_to_iso(NOW + int(minutes * MIN))


def page(anon: str, minutes: float, **extra: Any) -> dict[str, Any]:
    return {"type": "page", "anonymousId": anon, "name": "Home", "timestamp": at(minutes), **extra}


def viewed(anon: str, product: str, minutes: float) -> dict[str, Any]:
    return {
        "type": "track",
        "anonymousId": anon,
        "event": "Product Viewed",
        "properties": {"product_id": product, "name": product, "category": "Sofas", "price": 500},
        "timestamp": at(minutes),
    }


def test_two_devices_then_login_on_both_make_one_profile_counted_once(db_url: str) -> None:
    with harness(db_url) as h:
        # Phone, anonymous: a visit with two pages and a product view.
        h.batch([page("phone", 0), page("phone", 1), viewed("phone", "sofa-1", 2)])
        # Laptop, anonymous, the next day: one page, one product view, a cart.
        h.batch(
            [
                page("laptop", 1440),
                viewed("laptop", "sofa-1", 1441),
                {
                    "type": "track",
                    "anonymousId": "laptop",
                    "event": "Product Added",
                    "properties": {"product_id": "sofa-1", "price": 500, "quantity": 1},
                    "timestamp": at(1442),
                },
            ]
        )
        h.drain()
        phone_profile = h.profile("anonymous_id:phone")["profile_id"]
        laptop_profile = h.profile("anonymous_id:laptop")["profile_id"]
        assert phone_profile != laptop_profile

        # Logs in on the laptop, then on the phone.
        h.batch(
            [
                {
                    "type": "identify",
                    "anonymousId": "laptop",
                    "userId": "ana-1",
                    "traits": {"email": "Ana@Example.com", "firstName": "Ana", "lastName": "Berg"},
                    "timestamp": at(1443),
                },
            ]
        )
        h.drain()
        h.batch(
            [
                {
                    "type": "identify",
                    "anonymousId": "phone",
                    "userId": "ana-1",
                    "timestamp": at(1500),
                },
            ]
        )
        h.drain()

        view = h.profile("email:ana@example.com")
        assert view == h.profile("anonymous_id:phone") == h.profile("user_id:ana-1")
        # The phone's profile is the oldest: it survives; the laptop's resolves to it.
        assert view["profile_id"] == phone_profile
        assert h.profile(f"profile:{laptop_profile}")["profile_id"] == phone_profile
        assert view["absorbed_profile_ids"] == [laptop_profile]
        identities = {(i["type"], i["value"]) for i in view["identities"]}
        assert identities == {
            ("anonymous_id", "phone"),
            ("anonymous_id", "laptop"),
            ("user_id", "ana-1"),
            ("email", "ana@example.com"),
        }
        computed = view["computed"]
        assert computed["events_count"] == 8
        assert computed["page_views_count"] == 3
        assert computed["product_views_count"] == 2
        assert computed["viewed_products"]["sofa-1"]["count"] == 2
        # phone day 1, laptop day 2 (an identify alone is not a visit)
        assert computed["sessions_count"] == 2
        assert computed["first_seen_at"] == at(0)
        assert computed["last_seen_at"] == at(1500)
        assert [item["product_id"] for item in computed["cart"]] == ["sofa-1"]
        assert view["traits"]["name"] == "Ana Berg"
        assert view["display_name"] == "Ana Berg"
        assert view["is_known"] is True
        (merge,) = [m for m in view["merges"] if m["status"] == "merged"]
        assert merge["survivor_id"] == phone_profile
        assert merge["other_id"] == laptop_profile
        assert merge["identifiers"] == [
            {"type": "anonymous_id", "value": "phone"},
            {"type": "user_id", "value": "ana-1"},
        ]
        assert merge["reason"] == (
            f"identify carried anonymous_id:phone (profile {phone_profile}) and "
            f"user_id:ana-1 (profile {laptop_profile})"
        )

        events = h.client.get(
            "/api/profiles/user_id:ana-1/events?limit=100", headers=h.admin
        ).json()
        assert len(events["events"]) == 8
        assert events["events"][0]["timestamp"] == at(1500)  # newest first
        assert events["next_before"] is None


def test_shared_device_never_merges_two_user_ids_and_records_it_once(db_url: str) -> None:
    with harness(db_url) as h:
        h.batch(
            [
                {
                    "type": "identify",
                    "userId": "ana",
                    "anonymousId": "family-pc",
                    "timestamp": at(0),
                },
                page("family-pc", 1),
            ]
        )
        h.drain()
        h.batch(
            [
                {
                    "type": "identify",
                    "userId": "bob",
                    "anonymousId": "family-pc",
                    "timestamp": at(10),
                },
                {"type": "page", "userId": "bob", "anonymousId": "family-pc", "timestamp": at(11)},
                {"type": "page", "userId": "bob", "anonymousId": "family-pc", "timestamp": at(12)},
            ]
        )
        h.drain()
        ana = h.profile("user_id:ana")
        bob = h.profile("user_id:bob")
        assert ana["profile_id"] != bob["profile_id"]
        assert h.profile("anonymous_id:family-pc")["profile_id"] == ana["profile_id"]
        assert bob["computed"]["events_count"] == 3
        assert ana["computed"]["events_count"] == 2
        refused = [m for m in bob["merges"] if m["status"] == "refused"]
        assert len(refused) == 1
        assert refused[0]["reason"] == "different user ids (bob / ana)"
        assert refused[0]["other_id"] == ana["profile_id"]
        assert refused[0]["identifiers"] == [{"type": "anonymous_id", "value": "family-pc"}]
        # visible from both sides
        assert [m["status"] for m in ana["merges"]] == ["refused"]


def test_junk_identifiers_never_link_people(db_url: str) -> None:
    with harness(db_url) as h:
        h.batch(
            [
                {
                    "type": "identify",
                    "anonymousId": "visitor-1",
                    "userId": "undefined",
                    "traits": {"email": "null", "phone": "0"},
                },
                {
                    "type": "identify",
                    "anonymousId": "visitor-2",
                    "userId": "undefined",
                    "traits": {"email": "null"},
                    "context": {"device": {"id": "00000000-0000-0000-0000-000000000000"}},
                },
                {
                    "type": "track",
                    "anonymousId": "visitor-3",
                    "event": "E",
                    "context": {"externalIds": [{"id": "[object Object]", "type": "crm_id"}]},
                },
                {
                    "type": "track",
                    "anonymousId": "visitor-4",
                    "event": "E",
                    "context": {"externalIds": [{"id": "[object Object]", "type": "crm_id"}]},
                },
            ]
        )
        h.drain()
        ids = {h.profile(f"anonymous_id:visitor-{n}")["profile_id"] for n in range(1, 5)}
        assert len(ids) == 4
        with h.services.db.read() as conn:
            types = set(conn.execute(sa.select(t.identities.c.type)).scalars())
        assert types == {"anonymous_id"}


def test_alias_links_previous_anonymous_id(db_url: str) -> None:
    with harness(db_url) as h:
        h.batch([page("old-anon", 0)])
        h.drain()
        h.batch([{"type": "alias", "previousId": "old-anon", "userId": "u-9", "timestamp": at(5)}])
        h.batch([{"type": "track", "userId": "u-9", "event": "Signed Up", "timestamp": at(6)}])
        h.drain()
        view = h.profile("user_id:u-9")
        assert view["profile_id"] == h.profile("anonymous_id:old-anon")["profile_id"]
        assert view["computed"]["events_count"] == 3


def test_traits_newest_value_wins_per_trait_across_a_merge(db_url: str) -> None:
    with harness(db_url) as h:
        h.batch(
            [
                {
                    "type": "identify",
                    "anonymousId": "a",
                    "traits": {"email": "x@y.com", "city": "Oslo", "plan": "free"},
                    "timestamp": at(0),
                },
                {
                    "type": "identify",
                    "userId": "u",
                    "traits": {"city": "Bergen"},
                    "timestamp": at(10),
                },
                {
                    "type": "identify",
                    "anonymousId": "a",
                    "traits": {"plan": "pro"},
                    "timestamp": at(20),
                },
            ]
        )
        h.drain()
        h.batch([{"type": "identify", "anonymousId": "a", "userId": "u", "timestamp": at(30)}])
        h.drain()
        view = h.profile("user_id:u")
        assert view["traits"]["city"] == "Bergen"  # newer, from the user id's profile
        assert view["traits"]["plan"] == "pro"  # newer, from the anonymous profile
        assert view["traits"]["email"] == "x@y.com"


def test_consents_come_from_traits_context_and_events_newest_wins(db_url: str) -> None:
    with harness(db_url) as h:
        h.batch(
            [
                {
                    "type": "identify",
                    "userId": "c1",
                    "traits": {"email": "c1@x.com", "sms_opt_in": True},
                    "context": {"consent": {"categoryPreferences": {"Advertising": False}}},
                    "timestamp": at(0),
                },
                {
                    "type": "track",
                    "userId": "c1",
                    "event": "Subscribed",
                    "properties": {"channel": "email"},
                    "timestamp": at(5),
                },
                {
                    "type": "track",
                    "userId": "c1",
                    "event": "Unsubscribed",
                    "properties": {"channel": "sms"},
                    "timestamp": at(10),
                },
                # An older statement arriving late does not undo the newer one.
                {
                    "type": "identify",
                    "userId": "c1",
                    "traits": {"sms_opt_in": True},
                    "timestamp": at(7),
                },
            ]
        )
        h.drain()
        consents = {
            (c["channel"], c["purpose"]): (c["granted"], c["via"], c["updated_at"])
            for c in h.profile("user_id:c1")["consents"]
        }
        assert consents[("email", "marketing")] == (True, "event:Subscribed", at(5))
        assert consents[("sms", "marketing")] == (False, "event:Unsubscribed", at(10))
        assert consents[("*", "advertising")] == (False, "context.consent", at(0))
        for consent in h.profile("user_id:c1")["consents"]:
            assert consent["source"] == "web shop"


def test_events_remember_their_source(db_url: str) -> None:
    with harness(db_url) as h:
        h.send("track", {"userId": "s1", "event": "E"})
        h.drain()
        view = h.profile("user_id:s1")
        assert view["computed"]["first_source"] == {"name": "web shop", "kind": "web"}
        events = h.client.get("/api/profiles/user_id:s1/events", headers=h.admin).json()
        assert events["events"][0]["source"] == "web shop"


def test_profile_api_errors(db_url: str) -> None:
    with harness(db_url) as h:
        missing = h.client.get("/api/profiles/email:nobody@x.com", headers=h.admin)
        assert missing.status_code == 404
        assert missing.json() == {
            "error": {
                "code": "not_found",
                "message": "No profile holds email:nobody@x.com.",
                "field": "ref",
            }
        }
        bad = h.client.get("/api/profiles/nocolon", headers=h.admin)
        assert bad.status_code == 400
        assert bad.json()["error"]["code"] == "invalid_ref"
        bad_id = h.client.get("/api/profiles/profile:abc", headers=h.admin)
        assert bad_id.status_code == 400
        limit = h.client.get("/api/profiles/profile:1/events?limit=0", headers=h.admin)
        assert limit.status_code == 422
        assert limit.json()["error"]["field"] == "limit"


def test_search_by_email_prefix_name_and_id(db_url: str) -> None:
    with harness(db_url) as h:
        h.batch(
            [
                {
                    "type": "identify",
                    "userId": "u1",
                    "traits": {"email": "kari@nordmann.no", "name": "Kari Nordmann"},
                },
                {
                    "type": "identify",
                    "userId": "u2",
                    "traits": {"email": "ola@nordmann.no", "name": "Ola Nordmann"},
                },
            ]
        )
        h.drain()

        def hits(query: str) -> set[str]:
            body = h.client.get(f"/api/profiles?query={query}", headers=h.admin).json()
            return {r["display_name"] for r in body["results"]}

        assert hits("kari@") == {"Kari Nordmann"}
        assert hits("nordmann") == {"Kari Nordmann", "Ola Nordmann"}
        assert hits("u2") == {"Ola Nordmann"}
        assert hits("nobody") == set()


def test_phone_identifies_in_e164(db_url: str) -> None:
    with harness(db_url) as h:
        h.batch(
            [
                {
                    "type": "identify",
                    "anonymousId": "a",
                    "traits": {"phone": "912 34 567"},
                    "context": {"locale": "nb-NO"},
                },
                {
                    "type": "identify",
                    "anonymousId": "b",
                    "traits": {"phone": "+47 91 23 45 67"},
                },
            ]
        )
        h.drain()
        view = h.profile("phone:+4791234567")
        assert {("anonymous_id", "a"), ("anonymous_id", "b")} <= {
            (i["type"], i["value"]) for i in view["identities"]
        }


def test_a_batch_creating_many_profiles_with_merges_between_keeps_them_apart(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """New profiles reserve ids in blocks; merges flush in the middle of a batch. Every
    visitor must still get a profile of their own."""
    with harness(db_url, pipeline_batch_size=2000) as h:
        messages: list[dict[str, Any]] = []
        for n in range(700):
            messages.append(page(f"v{n}", n / 100))
            if n % 47 == 46:
                # visitor n logs in as the user who was visitor n - 1: a merge mid-batch
                messages.append({"type": "identify", "anonymousId": f"v{n - 1}", "userId": f"u{n}"})
                messages.append({"type": "identify", "anonymousId": f"v{n}", "userId": f"u{n}"})
        for start in range(0, len(messages), 500):
            h.batch(messages[start : start + 500])
        with caplog.at_level(logging.INFO, logger="shopkeeper.pipeline"):
            assert h.drain() == len(messages)
        # in one transaction: no conflict with itself, no event-by-event fallback
        assert "batch conflict" not in caplog.text
        assert "isolating" not in caplog.text
        with h.services.db.read() as conn:
            live = conn.execute(
                sa.select(sa.func.count()).where(t.profiles.c.merged_into.is_(None))
            ).scalar_one()
            owners = dict(
                conn.execute(
                    sa.select(t.identities.c.value, t.identities.c.profile_id).where(
                        t.identities.c.type == "anonymous_id"
                    )
                ).all()
            )
        assert live == 700 - 14
        assert len(set(owners.values())) == 700 - 14
        for n in range(46, 700, 47):
            assert owners[f"v{n - 1}"] == owners[f"v{n}"]
            assert h.profile(f"user_id:u{n}")["computed"]["page_views_count"] == 2
