"""Privacy requests end to end: export holds exactly the person's data; erase leaves
nothing of them in any table (searched column by column); their identifiers are
suppressed so new events do not bring them back, until a suppression is removed."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from shopkeeper import __version__
from shopkeeper.privacy.export import export_profile
from shopkeeper.storage import tables as t
from shopkeeper.timeutil import ms_to_iso
from tests.harness import NOW, Harness, harness
from tests.privacy_people import (
    ANA_EMAIL,
    ANA_NEEDLES,
    ANA_PHONE,
    ANA_USER,
    BOB_NEEDLES,
    at,
    every_value,
    found,
    page,
    rows,
    setup_people,
    viewed,
)


def counter(h: Harness, name: str) -> float:
    text = h.client.get("/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return float(sample.value)
    raise AssertionError(f"no metric {name}")


def test_export_holds_exactly_the_persons_data(db_url: str) -> None:
    with harness(db_url) as h:
        ids = setup_people(h)
        response = h.client.get(f"/api/profiles/email:{ANA_EMAIL}/export", headers=h.admin)
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert response.headers["content-disposition"] == (
            f'attachment; filename="profile-{ids["ana"]}.json"'
        )
        doc = response.json()
        assert list(doc) == [
            "exported_at",
            "shopkeeper_version",
            "profile_id",
            "profile",
            "identities",
            "consents",
            "merges",
            "absorbed_profile_ids",
            "identifiers_in_unapplied_events",
            "events",
            "consent_history",
            "unapplied_events",
            "messages",
        ]
        assert doc["exported_at"] == ms_to_iso(NOW)
        assert doc["shopkeeper_version"] == __version__
        assert doc["profile_id"] == ids["ana"]
        assert doc["absorbed_profile_ids"] == [ids["ana_absorbed"]]
        assert doc["profile"]["traits"] == {
            "email": ANA_EMAIL,
            "phone": "+47 912 34 567",
            "name": "Ana Lindqvist",
            "email_opt_in": True,
        }
        assert doc["profile"]["display_name"] == "Ana Lindqvist"
        assert doc["profile"]["computed"]["orders_count"] == 1
        assert "_orders" in doc["profile"]["bookkeeping"]
        assert set(doc["profile"]["trait_times"]) == {"email", "phone", "name", "email_opt_in"}
        assert sorted((i["type"], i["value"]) for i in doc["identities"]) == [
            ("anonymous_id", "anon-ana-laptop"),
            ("anonymous_id", "anon-ana-phone"),
            ("email", ANA_EMAIL),
            ("phone", ANA_PHONE),
            ("user_id", ANA_USER),
        ]
        assert doc["identifiers_in_unapplied_events"] == [
            {"type": "anonymous_id", "value": "anon-ana-tablet"}
        ]
        assert [e["message_id"] for e in doc["events"]] == ["m1", "m2", "m3", "m4"]
        assert {e["status"] for e in doc["events"]} == {"applied"}
        assert {e["profile_id"] for e in doc["events"]} == {ids["ana"]}
        identify = doc["events"][2]
        assert identify["payload"]["traits"]["phone"] == "+47 912 34 567"
        assert (identify["type"], identify["source"], identify["timestamp"]) == (
            "identify",
            "web shop",
            at(-200),
        )
        assert [(e["message_id"], e["status"], e["error"]) for e in doc["unapplied_events"]] == [
            ("m5", "pending", None),
            ("m6", "pending", None),
            ("m7", "pending", None),
            ("m8", "parked", "ValueError: boom"),
        ]
        assert doc["consents"] == [
            {
                "channel": "email",
                "purpose": "marketing",
                "granted": True,
                "updated_at": at(-200),
                "source": "web shop",
                "via": "trait:email_opt_in",
                "message_id": "m3",
            }
        ]
        assert doc["consent_history"] == [
            {
                "at": at(-200),
                "channel": "email",
                "purpose": "marketing",
                "granted": True,
                "via": "trait:email_opt_in",
                "source": "web shop",
                "message_id": "m3",
            }
        ]
        assert [(m["status"], m["survivor_id"], m["other_id"]) for m in doc["merges"]] == [
            ("merged", ids["ana"], ids["ana_absorbed"])
        ]
        assert doc["messages"] == []
        # Nothing of Bob's.
        text = response.text.lower()
        assert [needle for needle in BOB_NEEDLES if needle.lower() in text] == []

        # The same document in memory, and by an absorbed profile id.
        with h.services.db.read() as conn:
            assert export_profile(conn, ids["ana_absorbed"], now_ms=NOW) == doc
        by_old_id = h.client.get(
            f"/api/profiles/profile:{ids['ana_absorbed']}/export", headers=h.admin
        )
        assert by_old_id.json() == doc

        with h.services.db.read() as conn:
            entries = conn.execute(
                sa.select(t.audit_log.c.actor, t.audit_log.c.target, t.audit_log.c.details)
                .where(t.audit_log.c.action == "profile.export")
                .order_by(t.audit_log.c.id)
            ).all()
        assert [tuple(e) for e in entries] == [
            ("admin key 1 (tests)", f"profile {ids['ana']}", {}),
            ("admin key 1 (tests)", f"profile {ids['ana']}", {}),
        ]


def test_erase_leaves_nothing_of_the_person_in_any_table(db_url: str) -> None:
    with harness(db_url) as h:
        ids = setup_people(h)
        db = h.services.db
        # The search sees everything of Ana's before the erase (so finding nothing after
        # it means something).
        before = {needle for needle, _table, _column in found(db, ANA_NEEDLES)}
        assert before == set(ANA_NEEDLES)
        bob_view = h.profile("email:bob@example.org")
        bob_events = rows(db, t.events, t.events.c.seq)
        bob_events = [e for e in bob_events if e["message_id"].startswith("b")]
        stats_before = rows(
            db, t.product_stats, t.product_stats.c.product_id, t.product_stats.c.day
        )
        # Two views (Ana's, Bob's) and Ana's order: aggregates, kept by the erase.
        assert [(r["product_id"], r["views"], r["orders"]) for r in stats_before] == [
            ("sofa-1", 2, 1)
        ]

        response = h.client.delete(f"/api/profiles/user_id:{ANA_USER}", headers=h.admin)
        assert response.status_code == 200, response.text
        summary = response.json()
        assert summary == {
            "profile_id": ids["ana"],
            "absorbed_profile_ids": [ids["ana_absorbed"]],
            "profiles_deleted": 2,
            "identities_deleted": 5,
            "identities_suppressed": 6,
            "events_deleted": 8,
            "unapplied_events_deleted": 4,
            "consents_deleted": 1,
            "merges_deleted": 1,
        }

        assert found(db, ANA_NEEDLES) == set()
        # Bob is untouched, and so are the product aggregates.
        assert h.profile("email:bob@example.org") == bob_view
        assert [
            e for e in rows(db, t.events, t.events.c.seq) if e["message_id"].startswith("b")
        ] == (bob_events)
        assert rows(db, t.product_stats, t.product_stats.c.product_id, t.product_stats.c.day) == (
            stats_before
        )
        assert {needle for needle, _t, _c in found(db, BOB_NEEDLES)} == set(BOB_NEEDLES)

        assert h.client.get(f"/api/profiles/email:{ANA_EMAIL}", headers=h.admin).status_code == 404
        again = h.client.delete(f"/api/profiles/user_id:{ANA_USER}", headers=h.admin)
        assert again.status_code == 404
        assert again.json() == {
            "error": {
                "code": "not_found",
                "message": f"No profile holds user_id:{ANA_USER}.",
                "field": "ref",
            }
        }

        with db.read() as conn:
            erase_entries = conn.execute(
                sa.select(t.audit_log.c.actor, t.audit_log.c.target, t.audit_log.c.details).where(
                    t.audit_log.c.action == "profile.erase"
                )
            ).all()
        assert [tuple(e) for e in erase_entries] == [
            ("admin key 1 (tests)", f"profile {ids['ana']}", summary)
        ]

        # Bob's pending event is applied; Ana's were deleted with her.
        assert h.drain() == 1
        assert h.profile("email:bob@example.org")["computed"]["events_count"] == 3


def test_erased_identifiers_are_dropped_and_counted_until_the_suppression_is_removed(
    db_url: str,
) -> None:
    with harness(db_url) as h:
        setup_people(h)
        assert (
            h.client.delete(f"/api/profiles/email:{ANA_EMAIL}", headers=h.admin).status_code == 200
        )
        assert h.drain() == 1  # Bob's pending page

        h.batch(
            [
                viewed("n1", -5, userId=ANA_USER),
                {
                    "type": "identify",
                    "messageId": "n2",
                    "anonymousId": "anon-new-1",
                    "timestamp": at(-4),
                    "traits": {"email": "ANA.LINDQVIST@example.com", "name": "Ana L."},
                },
                page("n3", -3, anonymousId="anon-ana-tablet"),
                viewed("n4", -2, anonymousId="anon-x", context={"traits": {"phone": ANA_PHONE}}),
                {
                    "type": "alias",
                    "messageId": "n5",
                    "userId": "user-new",
                    "previousId": "anon-ana-phone",
                    "timestamp": at(-1),
                },
                page("n6", 0, anonymousId="anon-carol"),
            ]
        )
        assert h.drain() == 6
        db = h.services.db
        # Only Carol's page was applied; the rest left no trace.
        assert [
            e["message_id"] for e in rows(db, t.events, t.events.c.seq) if e["message_id"][0] == "n"
        ] == ["n6"]
        with db.read() as conn:
            identities = conn.execute(
                sa.select(t.identities.c.value).order_by(t.identities.c.value)
            ).scalars()
            assert list(identities) == [
                "anon-bob",
                "anon-carol",
                "bob@example.org",
                "user-bob-4410",
            ]
        assert found(db, (*ANA_NEEDLES, "anon-new-1", "anon-x", "user-new")) == set()

        status = h.client.get("/api/pipeline/status", headers=h.admin).json()
        assert status["suppressed"] == 5
        listing = h.client.get("/api/suppressions", headers=h.admin)
        assert listing.json() == {
            "entries": {"anonymous_id": 3, "email": 1, "phone": 1, "user_id": 1},
            "total": 6,
            "dropped_events": 5,
        }
        assert counter(h, "shopkeeper_events_suppressed_total") == 5

        removed = h.client.post(
            "/api/suppressions/remove",
            json={"type": "Email", "value": "  Ana.Lindqvist@EXAMPLE.com "},
            headers=h.admin,
        )
        assert removed.status_code == 200
        assert removed.json() == {"removed": True, "type": "email"}
        h.batch(
            [
                {
                    "type": "identify",
                    "messageId": "r1",
                    "anonymousId": "anon-new-2",
                    "timestamp": at(1),
                    "traits": {"email": ANA_EMAIL},
                },
                viewed("r2", 2, userId=ANA_USER),  # the user id is still suppressed
            ]
        )
        assert h.drain() == 2
        back = h.profile(f"email:{ANA_EMAIL}")
        assert [(i["type"], i["value"]) for i in back["identities"]] == [
            ("anonymous_id", "anon-new-2"),
            ("email", ANA_EMAIL),
        ]
        assert h.client.get(f"/api/profiles/user_id:{ANA_USER}", headers=h.admin).status_code == 404
        assert h.client.get("/api/suppressions", headers=h.admin).json() == {
            "entries": {"anonymous_id": 3, "phone": 1, "user_id": 1},
            "total": 5,
            "dropped_events": 6,
        }

        again = h.client.post(
            "/api/suppressions/remove", json={"type": "email", "value": ANA_EMAIL}, headers=h.admin
        )
        assert again.status_code == 404
        assert again.json() == {
            "error": {
                "code": "not_found",
                "message": "That email is not suppressed.",
                "field": "value",
            }
        }
        phone = h.client.post(
            "/api/suppressions/remove",
            json={"type": "phone", "value": "+47 912 34 567"},
            headers=h.admin,
        )
        assert phone.json() == {"removed": True, "type": "phone"}

        with db.read() as conn:
            audit_rows = conn.execute(
                sa.select(t.audit_log.c.action, t.audit_log.c.target, t.audit_log.c.details)
                .where(t.audit_log.c.action == "suppression.remove")
                .order_by(t.audit_log.c.id)
            ).all()
        assert [tuple(r) for r in audit_rows] == [
            ("suppression.remove", "suppression email", {}),
            ("suppression.remove", "suppression phone", {}),
        ]
        audit_text = " ".join(
            text for table, _column, text in every_value(db) if table == "audit_log"
        )
        assert [n for n in ANA_NEEDLES if n.lower() in audit_text] == []


def test_privacy_requests_answer_clear_errors(db_url: str) -> None:
    with harness(db_url) as h:

        def error(code: str, message: str, field: str | None) -> dict[str, Any]:
            return {"error": {"code": code, "message": message, "field": field}}

        missing = "email:nobody@example.com"
        for method in ("GET", "DELETE"):
            path = f"/api/profiles/{missing}" + ("/export" if method == "GET" else "")
            response = h.client.request(method, path, headers=h.admin)
            assert (response.status_code, response.json()) == (
                404,
                error("not_found", f"No profile holds {missing}.", "ref"),
            )
            response = h.client.request(method, path.replace(missing, "nocolon"), headers=h.admin)
            assert (response.status_code, response.json()) == (
                400,
                error(
                    "invalid_ref",
                    "A profile is named as type:value, e.g. email:ana@example.com, user_id:42 "
                    "or profile:7.",
                    "ref",
                ),
            )
            response = h.client.request(
                method, path.replace(missing, "profile:abc"), headers=h.admin
            )
            assert (response.status_code, response.json()) == (
                400,
                error("invalid_ref", "profile ids are numbers, e.g. profile:7.", "ref"),
            )
            assert h.client.request(method, path).status_code == 401

        assert h.client.get("/api/suppressions", headers=h.admin).json() == {
            "entries": {},
            "total": 0,
            "dropped_events": 0,
        }
        assert h.client.get("/api/suppressions").status_code == 401
        nothing = h.client.post(
            "/api/suppressions/remove", json={"type": "user_id", "value": "u1"}, headers=h.admin
        )
        assert (nothing.status_code, nothing.json()) == (
            404,
            error("not_found", "That user_id is not suppressed.", "value"),
        )
        bad = h.client.post("/api/suppressions/remove", json={"value": "u1"}, headers=h.admin)
        assert (bad.status_code, bad.json()) == (
            422,
            error("invalid_request", "type: Field required", "type"),
        )
        with h.services.db.read() as conn:
            actions = conn.execute(sa.select(t.audit_log.c.action)).scalars().all()
        assert sorted(actions) == ["admin_key.create", "source.create"]


def test_audit_log_lists_admin_actions_newest_first(db_url: str) -> None:
    with harness(db_url) as h:
        ids = setup_people(h)
        assert h.client.get(f"/api/profiles/email:{ANA_EMAIL}/export", headers=h.admin)
        assert h.client.delete(f"/api/profiles/email:{ANA_EMAIL}", headers=h.admin)
        created = h.client.post("/api/sources", json={"name": "pos"}, headers=h.admin).json()

        assert h.client.get("/api/audit").status_code == 401
        everything = h.client.get("/api/audit", headers=h.admin).json()
        actions = [entry["action"] for entry in everything["entries"]]
        assert actions[:3] == ["source.create", "profile.erase", "profile.export"]
        assert everything["entries"][0]["target"] == f"source {created['id']}"
        assert everything["entries"][1]["target"] == f"profile {ids['ana']}"
        # Erased people stay out of the log: targets and details hold ids only.
        assert not [n for n in ANA_NEEDLES if n.lower() in json.dumps(everything).lower()]

        page_1 = h.client.get("/api/audit?limit=1", headers=h.admin).json()
        assert [e["action"] for e in page_1["entries"]] == ["source.create"]
        page_2 = h.client.get(
            f"/api/audit?limit=1&offset={page_1['next_offset']}", headers=h.admin
        ).json()
        assert [e["action"] for e in page_2["entries"]] == ["profile.erase"]

        family = h.client.get("/api/audit?action=profile.", headers=h.admin).json()
        assert [e["action"] for e in family["entries"]] == ["profile.erase", "profile.export"]
        assert family["next_offset"] is None
        bad = h.client.get("/api/audit?limit=0", headers=h.admin)
        assert bad.status_code in (400, 422)
        assert "limit" in bad.text


def test_erase_leaves_segments_and_drops_scores(db_url: str) -> None:
    with harness(db_url) as h:
        ids = setup_people(h)
        with h.services.db.write() as conn:
            segment_id = conn.execute(
                t.segments.insert()
                .values(key="vip", name="VIP", condition="known", ast={}, realtime=True,
                        refresh_minutes=60, version=1, size=2, created_at=NOW, updated_at=NOW)
                .returning(t.segments.c.id)
            ).scalar_one()  # fmt: skip
            conn.execute(
                t.segment_members.insert(),
                [
                    {"segment_id": segment_id, "profile_id": ids["ana"], "entered_at": NOW},
                    {"segment_id": segment_id, "profile_id": ids["bob"], "entered_at": NOW},
                ],
            )
            conn.execute(
                t.lead_rule_matches.insert(),
                [
                    {"rule_id": 1, "profile_id": pid, "since": NOW}
                    for pid in (ids["ana"], ids["bob"])
                ],
            )
            # The default lead score rules gave Ana a score as her events were applied.
            assert conn.execute(
                sa.select(t.profile_scores.c.lead_score).where(
                    t.profile_scores.c.profile_id == ids["ana"]
                )
            ).scalar_one()
        assert h.client.delete(f"/api/profiles/email:{ANA_EMAIL}", headers=h.admin)
        with h.services.db.read() as conn:
            members = conn.execute(sa.select(t.segment_members.c.profile_id)).scalars().all()
            history = conn.execute(
                sa.select(t.segment_history.c.profile_id, t.segment_history.c.entered)
            ).all()
            scores = conn.execute(sa.select(t.profile_scores.c.profile_id)).scalars().all()
            matches = conn.execute(sa.select(t.lead_rule_matches.c.profile_id)).scalars().all()
        assert matches == [ids["bob"]]
        assert members == [ids["bob"]]
        assert [tuple(row) for row in history] == [(ids["ana"], False)]
        assert ids["ana"] not in scores
