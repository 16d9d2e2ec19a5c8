"""CSV export of a segment's members: chosen fields, quoting, the platforms' hashed
forms (the published test vectors, end to end through the pipeline's own identifier
normalisation), errors, the audit log, and streaming a segment larger than a page."""

from __future__ import annotations

import csv
import io

import sqlalchemy as sa

from shopkeeper.segments.audiences.export import open_csv_stream
from shopkeeper.segments.audiences.fields import parse_fields
from shopkeeper.segments.audiences.members import RecordBuilder
from shopkeeper.storage import tables as t
from tests.audience_fixtures import (
    add_member_without_history,
    create_segment,
    enter,
    insert_profiles,
    person,
)
from tests.harness import harness


def rows_of(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def test_export_with_chosen_fields_and_quoting(db_url: str) -> None:
    with harness(db_url) as h:
        db = h.services.db
        ana = person(
            h,
            "u-ana",
            email="Ana@Example.com",
            firstName='Ana "Annie"',
            lastName="Lindqvist, Jr.",
            note="first line\nsecond line",
            plan={"tier": "gold", "since": 2021},
            address={"country": "NO"},
        )
        bjorn = person(h, "u-bjorn", email="bjorn@example.org", name="Bjørn Ødegård")
        carl = person(h, "u-carl", email="carl@example.net")
        person(h, "u-dave", email="dave@example.net")  # not a member
        vip = create_segment(db, "vip")
        enter(db, vip, ana, bjorn)
        add_member_without_history(db, vip, carl)

        response = h.client.get(
            "/api/segments/vip/export.csv",
            params={
                "fields": "profile_id,email,first_name,last_name,traits.note,traits.plan,"
                "orders_count,user_id"
            },
            headers=h.admin,
        )
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "text/csv; charset=utf-8"
        assert response.headers["content-disposition"] == 'attachment; filename="segment-vip.csv"'
        assert response.content.startswith(b"profile_id,")  # no byte-order mark
        assert b"\r\n" in response.content
        assert rows_of(response.content.decode("utf-8")) == [
            [
                "profile_id",
                "email",
                "first_name",
                "last_name",
                "traits.note",
                "traits.plan",
                "orders_count",
                "user_id",
            ],
            [
                str(ana),
                "ana@example.com",
                'Ana "Annie"',
                "Lindqvist, Jr.",
                "first line\nsecond line",
                '{"tier":"gold","since":2021}',
                "0",
                "u-ana",
            ],
            [str(bjorn), "bjorn@example.org", "Bjørn", "Ødegård", "", "", "0", "u-bjorn"],
            [str(carl), "carl@example.net", "", "", "", "", "0", "u-carl"],
        ]
        # The quoting is the standard one (RFC 4180), not merely what csv reads back.
        assert b'"Ana ""Annie"""' in response.content
        assert b'"Lindqvist, Jr."' in response.content
        assert "Bjørn".encode() in response.content

        with db.read() as conn:
            entry = conn.execute(
                sa.select(t.audit_log).where(t.audit_log.c.action == "segment.export")
            ).one()
        assert entry.target == f"segment {vip}"
        assert entry.details["members"] == 3
        assert "ana@example.com" not in str(entry.details)


def test_export_defaults_and_errors(db_url: str) -> None:
    with harness(db_url) as h:
        ana = person(h, "u-ana", email="ana@example.com", phone="+47 912 34 567", firstName="Ana")
        vip = create_segment(h.services.db, "vip")
        enter(h.services.db, vip, ana)

        default = h.client.get("/api/segments/vip/export.csv", headers=h.admin)
        assert rows_of(default.text) == [
            ["profile_id", "email", "phone", "first_name", "last_name", "country"],
            [str(ana), "ana@example.com", "+4791234567", "Ana", "", ""],
        ]

        missing = h.client.get("/api/segments/nope/export.csv", headers=h.admin)
        assert missing.status_code == 404
        assert missing.json()["error"]["field"] == "key"

        typo = h.client.get("/api/segments/vip/export.csv?fields=email,frist_name", headers=h.admin)
        assert typo.status_code == 422
        assert typo.json()["error"] == {
            "code": "unknown_field",
            "message": typo.json()["error"]["message"],
            "field": "fields",
        }
        assert "Did you mean first_name?" in typo.json()["error"]["message"]

        trait = h.client.get(
            "/api/segments/vip/export.csv?hashed=meta&fields=email,traits.plan", headers=h.admin
        )
        assert trait.status_code == 422
        assert 'cannot match on "traits.plan"' in trait.json()["error"]["message"]

        platform = h.client.get("/api/segments/vip/export.csv?hashed=tiktok", headers=h.admin)
        assert platform.status_code == 422

        assert h.client.get("/api/segments/vip/export.csv").status_code == 401


def test_hashed_exports_carry_the_published_vectors(db_url: str) -> None:
    """The identifiers go through the pipeline's own normalisation (identity rows), then
    the platform's: the published digests must come out at the end."""
    with harness(db_url) as h:
        db = h.services.db
        # Google's example member 4 (Data Manager API, "Send audience members").
        cloudy = person(
            h, "u-cloudy", email="cloudySanFrancisco@GMAIL.com", phone="+1-800-555-0110"
        )
        # Meta's examples (customer information parameters).
        john = person(
            h,
            "u-john",
            email="John_Smith@gmail.com",
            phone="+1 (650) 555-1212",
            firstName="Mary",
            address={"country": "US"},
        )
        vip = create_segment(db, "vip")
        enter(db, vip, cloudy, john)

        google = h.client.get("/api/segments/vip/export.csv?hashed=google", headers=h.admin)
        assert google.status_code == 200
        assert google.headers["content-disposition"] == (
            'attachment; filename="segment-vip-google.csv"'
        )
        rows = rows_of(google.text)
        assert rows[0] == ["Email", "Phone", "First Name", "Last Name", "Country", "Zip"]
        assert rows[1][:2] == [
            "223ebda6f6889b1494551ba902d9d381daf2f642bae055888e96343d53e9f9c4",
            "525c2390a4e2a9766fa8ddc341dd10414603baebefa401f5a5e29f55e176525d",
        ]
        assert rows[2][4] == "US"  # not hashed for Google

        meta = h.client.get(
            "/api/segments/vip/export.csv?hashed=meta&fields=email,phone,first_name,country",
            headers=h.admin,
        )
        rows = rows_of(meta.text)
        assert rows[0] == ["email", "phone", "fn", "country"]
        assert rows[2] == [
            "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f",
            "e323ec626319ca94ee8bff2e4c87cf613be6ea19919ed1364124e16807ab3176",
            "6915771be1c5aa0c886870b6951b03d7eafc121fea0e80a5ea83beb7c449f4ec",
            "79adb2a2fce5c6ba215fe5f27f532d4e7edbac4b6a5e09e1ef3a08084a904621",
        ]


def test_a_segment_larger_than_a_page_streams_in_chunks(db_url: str) -> None:
    with harness(db_url) as h:
        db = h.services.db
        ids = insert_profiles(
            db,
            [
                {"traits": {"email": f"p{i}@example.com", "name": f"Person Number {i} " + "x" * 40}}
                for i in range(2500)
            ],
        )
        vip = create_segment(db, "big")
        add_member_without_history(db, vip, *ids)
        builder = RecordBuilder(fields=parse_fields("profile_id,email,name"))
        chunks = list(open_csv_stream(db, vip, builder, page=300))
        assert len(chunks) > 2  # written as it is read, not at the end
        assert max(len(chunk) for chunk in chunks) < 80 * 1024
        rows = rows_of(b"".join(chunks).decode())
        assert len(rows) == 2501
        assert [int(row[0]) for row in rows[1:]] == sorted(ids)
        assert rows[-1][1] == "p2499@example.com"

        via_api = h.client.get(
            "/api/segments/big/export.csv?fields=profile_id,email,name", headers=h.admin
        )
        assert via_api.content == b"".join(chunks)
