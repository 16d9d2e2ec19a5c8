"""The segments in the admin UI, on SQLite and PostgreSQL: the list, the built-in
catalogue, the builder (its live preview endpoint, its errors next to the fields), a
segment's page with members, history, explain, export and audience syncs, the RFM grid
on the dashboard and a customer's segments. Every change is audited with the user's name,
and no mistake a person can make gives a 500."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

import sqlalchemy as sa

from shopkeeper.segments.lang.parser import parse
from shopkeeper.storage import tables as t
from tests.browser.shop import shop_events
from tests.harness import Harness, harness
from tests.webui import logged_in, text

ACTOR = "user marta@shop.example"


def _audit(h: Harness) -> list[tuple[str, str | None]]:
    with h.services.db.read() as conn:
        rows = conn.execute(
            sa.select(t.audit_log.c.actor, t.audit_log.c.action, t.audit_log.c.target).order_by(
                t.audit_log.c.id
            )
        ).all()
    return [(r.action, r.target) for r in rows if r.actor == ACTOR and r.action != "user.login"]


def _shop(h: Harness) -> str:
    """Ana (2 orders, 1,330.00), Ben (1 order, 40.00) and three anonymous visitors."""
    token = logged_in(h)
    h.batch(shop_events(h.clock.now_ms()))
    h.drain()
    return token


def _profile_id(h: Harness, ref: str) -> int:
    return int(h.profile(ref)["profile_id"])


def _create(h: Harness, token: str, **fields: Any) -> Any:
    form = {
        "csrf_token": token,
        "key": "buyers",
        "name": "Buyers",
        "description": "",
        "condition": "orders_count >= 1",
        "realtime": "on",
        "refresh_minutes": "60",
        **fields,
    }
    return h.client.post("/segments", data=form)


def test_segments_list_builder_and_segment_page(db_url: str) -> None:
    with harness(db_url) as h:
        token = _shop(h)
        c = h.client
        empty = c.get("/segments")
        assert empty.status_code == 200
        page = text(empty.text)
        assert "No segments yet" in page
        assert "Ready-made segments" in page
        assert 'href="/segments" class="active"' in empty.text  # in the nav
        # The catalogue, grouped, each with its description and an Enable button.
        for group in ("Buyers", "Abandoners", "RFM"):
            assert f"<h3>{group}</h3>" in empty.text
        assert "Customers with two or more orders" in page
        assert 'action="/segments/builtins/repeat-customers/enable"' in empty.text

        builder = c.get("/segments/new")
        assert builder.status_code == 200
        # The examples offered under the editor are conditions the language reads.
        examples = [unescape(e) for e in re.findall(r'data-example="([^"]*)"', builder.text)]
        assert len(examples) == 7
        for example in examples:
            parse(example)
        assert 'textarea id="condition" name="condition" class="code"' in builder.text
        assert "segments.js" in builder.text

        created = _create(h, token, description="Everyone who ordered")
        assert created.status_code == 200
        assert str(created.url).endswith("/segments/buyers?notice=created")
        body = text(created.text)
        assert "Segment saved." in body
        assert re.search(r'data-testid="segment-size">2<', created.text)
        assert "orders_count >= 1" in body
        assert "Everyone who ordered" in body
        ana, ben = _profile_id(h, "user_id:cust-ana"), _profile_id(h, "user_id:cust-ben")
        # Members, newest first, each a link to the customer's page; the history too.
        members = created.text.split('data-testid="segment-members"')[1]
        assert f'href="/customers/{ana}">Ana Lima<' in members
        assert f'href="/customers/{ben}">Ben Okafor<' in members
        history = created.text.split('data-testid="segment-history"')[1].split("</table>")[0]
        assert text(history).count("Entered") == 2
        assert "Size over time" in body
        assert '<svg class="bars"' in created.text

        listed = c.get("/segments")
        row = text(listed.text.split('data-testid="segments"')[1].split("</table>")[0])
        assert row.endswith("Buyers Everyone who ordered buyers 2 → 0 Real-time just now")

        enabled = c.post("/segments/builtins/repeat-customers/enable", data={"csrf_token": token})
        assert str(enabled.url).endswith("/segments/repeat-customers?notice=enabled")
        assert re.search(r'data-testid="segment-size">1<', enabled.text)  # Ana only
        catalogue = c.get("/segments").text
        card = catalogue.split('data-testid="builtin-repeat-customers"')[1].split("</details>")[0]
        assert 'href="/segments/repeat-customers">Enabled</a>' in card
        again = c.post("/segments/builtins/repeat-customers/enable", data={"csrf_token": token})
        assert again.status_code == 409
        assert 'There is already a segment "repeat-customers".' in text(again.text)
        assert c.post("/segments/builtins/nope/enable", data={"csrf_token": token}).status_code == (
            404
        )

        assert _audit(h) == [
            ("segment.create", "segment buyers"),
            ("segment.create", "segment repeat-customers"),
        ]


def test_the_builder_shows_every_mistake_next_to_its_field(db_url: str) -> None:
    with harness(db_url) as h:
        token = logged_in(h)
        bad = _create(
            h,
            token,
            key="Bad Key",
            name="",
            condition="orders_count >= 1\nand lats_seen_at within 1 day",
            refresh_minutes="0",
        )
        assert bad.status_code == 400
        page = text(bad.text)
        assert "The segment was not saved" in page
        assert "A key is 1-100 lower-case letters" in page
        assert "Give the segment a name." in page
        assert "refresh_minutes is a whole number from 1 to 10080" in page
        # The condition's mistake at its line, with the line quoted and a caret under it.
        error = bad.text.split('data-testid="condition-error"')[1].split("</div>")[0]
        assert "Line 2, column 5:" in text(error)
        assert "lats_seen_at" in text(error)
        assert (
            '<pre class="excerpt">and lats_seen_at within 1 day\n<span class="caret">    ^</span>'
            in (error)
        )
        # What was typed is kept, escaped.
        assert "orders_count &gt;= 1\nand lats_seen_at within 1 day</textarea>" in bad.text

        for fields, message in [
            ({"condition": ""}, "Write a condition, for example: orders_count >= 1"),
            ({"condition": 'in segment "nope"'}, 'There is no segment "nope".'),
            ({"key": "new"}, "“new” is taken by the page address"),
            ({"refresh_minutes": "soon"}, "refresh_minutes is a whole number"),
            ({"condition": "x" * 20_001}, "A condition is at most 20,000 characters."),
        ]:
            refused = _create(h, token, **fields)
            assert refused.status_code == 400, fields
            assert message in text(refused.text), fields

        assert _create(h, token).status_code == 200
        duplicate = _create(h, token, name="Other")
        assert duplicate.status_code == 400
        assert 'There is already a segment "buyers".' in text(duplicate.text)
        # Without the session's token nothing is saved.
        forged = h.client.post(
            "/segments", data={"key": "forged", "name": "F", "condition": "known"}
        )
        assert forged.status_code == 403
        assert h.client.get("/segments/forged").status_code == 404
        assert h.client.get("/segments/nothing").status_code == 404
        assert [a for a, _ in _audit(h)] == ["segment.create"]


def test_the_preview_endpoint_counts_or_points_at_the_mistake(db_url: str) -> None:
    with harness(db_url) as h:
        token = _shop(h)
        c = h.client
        headers = {"X-CSRF-Token": token}
        found = c.post("/segments/preview", data={"condition": "known"}, headers=headers)
        assert found.status_code == 200
        assert found.headers["content-type"] == "application/json"
        body = found.json()
        assert body["count"] == 2
        assert {p["display_name"] for p in body["sample"]} == {"Ana Lima", "Ben Okafor"}
        assert (
            c.post("/segments/preview", data={"condition": "not known"}, headers=headers).json()[
                "count"
            ]
            == 3
        )

        bad = c.post(
            "/segments/preview",
            data={"condition": "known and\r\n  orders_count >="},
            headers=headers,
        )
        assert bad.status_code == 200  # a mistake is no failure while typing
        assert bad.json()["error"] == {
            "message": bad.json()["error"]["message"],
            "line": 2,
            "column": 18,
            "excerpt": "  orders_count >=",
            "caret": "                 ^",
        }
        # A condition leading back to the segment being edited is refused.
        _create(h, token, key="a", condition="known")
        cycle = c.post(
            "/segments/preview",
            data={"condition": 'in segment "a"', "key": "a"},
            headers=headers,
        )
        assert "cannot contain itself" in cycle.json()["error"]["message"]
        # A condition the database cannot run is answered with a message, not a 500.
        huge = c.post(
            "/segments/preview",
            data={"condition": "last_seen_at within 999999999999 days"},
            headers=headers,
        )
        assert huge.status_code == 200
        assert huge.json()["error"]["message"]
        # Previewing saves nothing; without the token or the session it is refused.
        assert c.post("/segments/preview", data={"condition": "known"}).status_code == 403
        c.cookies.clear()
        refused = c.post(
            "/segments/preview", data={"condition": "known"}, headers=headers,
            follow_redirects=False,
        )  # fmt: skip
        assert (refused.status_code, refused.headers["location"]) == (303, "/login")


def test_edit_refresh_and_delete(db_url: str) -> None:
    with harness(db_url) as h:
        token = _shop(h)
        c = h.client
        _create(h, token)
        edit = c.get("/segments/buyers/edit")
        assert edit.status_code == 200
        assert "orders_count &gt;= 1</textarea>" in edit.text
        assert 'data-segment-key="buyers"' in edit.text
        form = {
            "csrf_token": token,
            "name": "Big buyers",
            "description": "Spent 100 or more",
            "condition": "total_revenue >= 100",
            "refresh_minutes": "30",
        }
        saved = c.post("/segments/buyers/edit", data=form)
        assert str(saved.url).endswith("/segments/buyers?notice=updated")
        page = text(saved.text)
        assert "Big buyers" in page
        assert "Scheduled everyone is checked every 30 minutes" in page
        assert re.search(r'data-testid="segment-size">1<', saved.text)
        bad = c.post("/segments/buyers/edit", data={**form, "condition": "total_revenue >"})
        assert bad.status_code == 400
        assert "Line 1, column 16:" in text(bad.text)
        assert c.get("/segments/buyers").text.count("total_revenue &gt;= 100") == 1

        refreshed = c.post("/segments/buyers/refresh", data={"csrf_token": token})
        assert "Refreshed: everyone was checked" in text(refreshed.text)

        _create(h, token, key="vip-buyers", name="VIP", condition='in segment "buyers"')
        refused = c.post("/segments/buyers/delete", data={"csrf_token": token})
        assert refused.status_code == 409
        assert 'Segment "buyers" is used by "vip-buyers"' in text(refused.text)
        assert c.post("/segments/vip-buyers/delete", data={"csrf_token": token}).status_code == 200
        gone = c.post("/segments/buyers/delete", data={"csrf_token": token})
        assert str(gone.url).endswith("/segments?notice=deleted")
        assert "Segment deleted." in text(gone.text)
        assert c.get("/segments/buyers").status_code == 404
        assert c.post("/segments/buyers/delete", data={"csrf_token": token}).status_code == 404

        assert _audit(h) == [
            ("segment.create", "segment buyers"),
            ("segment.update", "segment buyers"),
            ("segment.refresh", "segment buyers"),
            ("segment.create", "segment vip-buyers"),
            ("segment.delete", "segment vip-buyers"),
            ("segment.delete", "segment buyers"),
        ]


def test_explain_export_and_audience_syncs(db_url: str) -> None:
    with harness(db_url, webhook_allow_private=True) as h:
        token = _shop(h)
        c = h.client
        _create(
            h, token, key="big", name="Big", condition="orders_count >= 1 and total_revenue >= 100"
        )

        ben = c.post(
            "/segments/big/explain", data={"csrf_token": token, "profile": "ben@example.com"}
        )
        assert ben.status_code == 200
        result = text(ben.text.split('data-testid="explain-result"')[1].split("</section>")[0])
        assert "Ben Okafor does not meet the condition" in result
        assert "Kept out by: total_revenue >= 100 — total_revenue is 40" in result
        # htmx gets the result alone; a customer ID works as well as an email.
        ana = c.post(
            "/segments/big/explain",
            data={"profile": "cust-ana"},
            headers={"HX-Request": "true", "X-CSRF-Token": token},
        )
        assert "<html" not in ana.text
        assert "Ana Lima meets the condition" in text(ana.text)
        nobody = c.post("/segments/big/explain", data={"csrf_token": token, "profile": "zed@x.io"})
        assert "No customer is known by “zed@x.io”." in text(nobody.text)

        export = c.get("/segments/big/export.csv?fields=email,first_name,orders_count")
        assert export.status_code == 200
        assert export.headers["content-disposition"] == 'attachment; filename="segment-big.csv"'
        assert export.text.splitlines() == [
            "email,first_name,orders_count",
            "ana.lima@example.com,Ana,2",
        ]
        hashed = c.get("/segments/big/export.csv?hashed=google")
        assert hashed.headers["content-disposition"].endswith('segment-big-google.csv"')
        wrong = c.get("/segments/big/export.csv?fields=emial")
        assert wrong.status_code == 400
        assert "Did you mean email?" in text(wrong.text)

        sync = {
            "csrf_token": token,
            "name": "CRM",
            "url": "http://127.0.0.1:9/hook",
            "fields": "email,first_name",
            "interval_minutes": "30",
            "authorization": "Bearer s3cret",
        }
        bad = c.post("/segments/big/audiences", data={**sync, "url": "ftp://x", "fields": "nope"})
        assert bad.status_code == 400
        assert "The URL must start with https://" in text(bad.text)
        assert 'There is no field "nope".' in text(bad.text)
        assert 'value="ftp://x"' in bad.text  # what was typed is kept
        assert "s3cret" not in bad.text  # but never the secret
        added = c.post("/segments/big/audiences", data=sync)
        assert str(added.url).endswith("/segments/big?notice=audience_added#audiences")
        table = text(added.text.split('data-testid="audience-syncs"')[1].split("</table>")[0])
        assert "CRM webhook · email, first_name http://127.0.0.1:9/hook 30 min not yet" in table
        assert "s3cret" not in added.text
        refused = c.post("/segments/big/delete", data={"csrf_token": token})
        assert refused.status_code == 409
        assert 'synced to the audience "CRM"' in text(refused.text)
        sync_id = re.search(r'action="/segments/big/audiences/(\d+)/delete"', added.text)
        assert sync_id
        removed = c.post(
            f"/segments/big/audiences/{sync_id.group(1)}/delete", data={"csrf_token": token}
        )
        assert "This segment is not synced anywhere." in text(removed.text)

        actions = [a for a, _ in _audit(h)]
        assert actions == [
            "segment.create",
            "segment.export",
            "segment.export",
            "audience.create",
            "audience.delete",
        ]


def test_dashboard_rfm_grid_and_customer_segments(db_url: str) -> None:
    with harness(db_url) as h:
        token = _shop(h)
        c = h.client
        before = c.get("/")
        assert "No RFM scores yet" in text(before.text)
        recomputed = c.post("/dashboard/rfm/recompute", data={"csrf_token": token})
        assert str(recomputed.url).endswith("/?notice=rfm#rfm")
        page = recomputed.text
        assert "RFM scores recomputed for every customer." in text(page)
        grid = page.split('data-testid="rfm-grid"')[1].split("</table>")[0]
        # Two customers spread to scores 2 and 4: Ana (last order 3 hours ago, 2 orders)
        # R4 F4, Loyal Customers; Ben (2 days ago, 1 order) R2 F2, Hibernating.
        rows = re.findall(r"<th scope=\"row\">R (\d)</th>", grid)
        assert rows == ["5", "4", "3", "2", "1"]
        cells = re.findall(r'<td class="([\w -]+)"[^>]*data-testid="rfm-r(\d)-f(\d)">\s*'
                           r"<strong>([\d,]+)</strong><span>([^<]+)</span>", grid)  # fmt: skip
        assert len(cells) == 25
        shown = {(r, f): (css, n, money) for css, r, f, n, money in cells}
        assert shown[("4", "4")] == ("rfm-loyal-customers", "1", "$1,330.00")
        assert shown[("2", "2")] == ("rfm-hibernating", "1", "$40.00")
        assert shown[("5", "5")] == ("rfm-champions empty-cell", "0", "$0.00")
        legend = text(page.split('data-testid="rfm-legend"')[1].split("</section>")[0])
        assert "Champions R 5 · F 4-5 · 0" in legend
        assert "Loyal Customers R 3-4 · F 4-5 · 1 · $1,330.00" in legend

        _create(h, token)
        ana = _profile_id(h, "user_id:cust-ana")
        customer = c.get(f"/customers/{ana}")
        section = customer.text.split('id="segments"')[1].split("</section>")[0]
        assert '<a href="/segments/buyers">Buyers</a>' in section
        words = text(section)
        assert "Stage Repeat customer" in words
        assert "RFM Loyal Customers recency 4, frequency 4, monetary 4 (of 5)" in words
        anonymous = c.get("/customers?show=anonymous").text
        anon_id = re.search(r'href="/customers/(\d+)">Anonymous visitor', anonymous)
        assert anon_id
        other = text(c.get(f"/customers/{anon_id.group(1)}").text)
        assert "Not in any segment." in other
        assert "no scores: given to customers who ordered" in other
        assert [a for a, _ in _audit(h)] == ["scores.rfm_recompute", "segment.create"]
