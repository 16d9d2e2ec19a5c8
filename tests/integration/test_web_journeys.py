"""Journeys and messaging in the admin UI, on SQLite and PostgreSQL: the journey list and
playbooks, a journey's page (graph with counts, results against the holdout, switching
on, pausing, archiving), the YAML editor with its check as you type, the outbox and a
message, the template editor with its live preview, and the messaging settings with a
test send to a real SMTP server and a local SMS provider. Every change is audited with
the user's name; no mistake a person can make gives a 500."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

import sqlalchemy as sa

from shopkeeper.clock import FixedClock
from shopkeeper.journeys.playbooks import cart
from shopkeeper.messaging import template_store
from shopkeeper.storage import tables as t
from tests.browser.shop import shop_events
from tests.harness import NOW, Harness, harness
from tests.integration.channel_servers import provider_server, smtp_server
from tests.webui import logged_in, text

ACTOR = "user marta@shop.example"
HOUR = 3_600_000


def _actions(h: Harness) -> list[str]:
    with h.services.db.read() as conn:
        rows = conn.execute(
            sa.select(t.audit_log.c.actor, t.audit_log.c.action).order_by(t.audit_log.c.id)
        ).all()
    return [r.action for r in rows if r.actor == ACTOR and r.action != "user.login"]


def _enable(h: Harness, token: str) -> Any:
    return h.client.post("/journeys/playbooks/abandoned_cart/enable", data={"csrf_token": token})


def _status(h: Harness, token: str, status: str, key: str = "abandoned_cart") -> Any:
    return h.client.post(f"/journeys/{key}/status", data={"csrf_token": token, "status": status})


def _check(h: Harness, token: str, definition: str) -> str:
    response = h.client.post(
        "/journeys/validate", data={"definition": definition}, headers={"X-CSRF-Token": token}
    )
    assert response.status_code == 200, response.text
    return response.text


def test_journey_list_playbooks_and_status_changes(db_url: str) -> None:
    with harness(db_url) as h:
        c = h.client
        refused = c.get("/journeys", follow_redirects=False)
        assert (refused.status_code, refused.headers["location"]) == (303, "/login?next=/journeys")
        token = logged_in(h)
        empty = c.get("/journeys")
        assert empty.status_code == 200
        assert 'href="/journeys" class="active"' in empty.text  # in the nav
        assert "No journeys yet" in text(empty.text)
        for key in ("abandoned_cart", "welcome"):
            assert f'action="/journeys/playbooks/{key}/enable"' in empty.text
        assert "Templates: cart_reminder, cart_reminder_2, cart_reminder_3" in text(empty.text)

        enabled = _enable(h, token)
        assert str(enabled.url).endswith("/journeys/abandoned_cart?notice=enabled")
        page = text(enabled.text)
        assert "Playbook enabled as a draft" in page
        assert re.search(r'data-testid="journey-status">Draft<', enabled.text)
        # The graph: a box per step, the entry and the end, branches labelled.
        assert enabled.text.count('<g class="step ') == 10
        for step in ("wait_1h", "cart_still_full", "first_reminder", "discount", "last_reminder"):
            assert f'data-testid="step-{step}"' in enabled.text
        assert 'data-testid="journey-entry"' in enabled.text
        assert 'data-testid="journey-end"' in enabled.text
        assert enabled.text.count(">then · 0</text>") == 3
        assert enabled.text.count(">else · 0</text>") == 3
        assert "send “cart_reminder” by the best channel" in unescape(enabled.text)
        assert 'data-testid="journey-uplift"' not in enabled.text  # no holdout figures yet

        again = _enable(h, token)
        assert again.status_code == 409
        assert 'A journey "abandoned_cart" exists already.' in text(again.text)
        assert c.post(
            "/journeys/playbooks/nope/enable", data={"csrf_token": token}
        ).status_code == (404)
        assert c.post("/journeys/playbooks/welcome/enable", data={}).status_code == 403

        listed = c.get("/journeys")
        row = listed.text.split('data-testid="journey-abandoned_cart">')[1].split("</tr>")[0]
        assert text(row).startswith("Abandoned cart Playbook abandoned_cart · version 1 Draft")
        card = listed.text.split('data-testid="playbook-abandoned_cart"')[1].split("</details>")[0]
        assert 'href="/journeys/abandoned_cart">Enabled</a>' in card

        # Switching on, a status that does not exist, pausing, archiving.
        bad = _status(h, token, "running")
        assert bad.status_code == 400
        assert "status is one of draft, active, paused, archived." in text(bad.text)
        on = _status(h, token, "active")
        assert str(on.url).endswith("?notice=active")
        assert re.search(r'data-testid="journey-status">Active<', on.text)
        assert "Journey switched on" in text(on.text)
        h.send("identify", {"userId": "u-1", "traits": {"email": "kari@example.no"}})
        added = {"cart_id": "c-1", "product_id": "p-1", "price": 9}
        h.send("track", {"userId": "u-1", "event": "Product Added", "properties": added})
        h.drain()
        paused = _status(h, token, "paused")
        assert re.search(r'data-testid="journey-status">Paused<', paused.text)
        assert "Resume" in text(paused.text)
        archived = _status(h, token, "archived")
        assert "everyone still in it was stopped" in text(archived.text)
        with h.services.db.read() as conn:
            statuses = conn.execute(sa.select(t.enrollments.c.status)).scalars().all()
        assert statuses == ["stopped"]  # archiving stopped the enrollment, as the API does
        assert "1 stopped" in text(archived.text)
        assert ">Edit<" not in archived.text
        stays = _status(h, token, "active")
        assert stays.status_code == 409
        assert "An archived journey stays archived" in text(stays.text)

        for path in ("/journeys/nope", "/journeys/nope/edit"):
            missing = c.get(path)
            assert missing.status_code == 404, path
            assert "There is no journey “nope”." in text(missing.text)
        assert _status(h, token, "active", key="nope").status_code == 404
        assert _actions(h) == [
            "playbook.enable",
            "journey.create",
            "playbook.enable",  # the second enable: the templates existed, the journey too
            "journey.status",
            "journey.status",
            "journey.status",
        ]


def _seed_results(h: Harness, journey_key: str) -> None:
    """Ten people messaged (4 bought, 300.00 in all) and ten held out (1 bought, 50.00)."""
    with h.services.db.write() as conn:
        jid = conn.execute(
            sa.select(t.journeys.c.id).where(t.journeys.c.key == journey_key)
        ).scalar_one()
        for i in range(20):
            held = i >= 10
            converted = (not held and i < 4) or i == 10
            conn.execute(
                t.enrollments.insert().values(
                    journey_id=jid, version=1, profile_id=1000 + i, entry_key=f"seed-{i}",
                    status="completed", step=None, wake_at=None, state={}, holdout=held,
                    entered_at=NOW - 2 * HOUR, updated_at=NOW, ended_at=NOW,
                    converted_at=NOW - HOUR if converted else None,
                    revenue=(50.0 if held else 75.0) if converted else None,
                )
            )  # fmt: skip


def test_a_running_journey_shows_counts_messages_and_uplift(db_url: str) -> None:
    clock = FixedClock(NOW)
    with harness(db_url, clock=clock) as h:
        token = logged_in(h)
        c = h.client
        _enable(h, token)
        definition = cart.ABANDONED_CART.replace("holdout: 0.1", "holdout: 0")
        saved = c.post(
            "/journeys/abandoned_cart/edit", data={"csrf_token": token, "definition": definition}
        )
        assert "Saved as version 2." in text(saved.text)
        assert re.search(r'data-testid="journey-version">version 2<', saved.text)
        _status(h, token, "active")
        h.send("identify", {"userId": "u-1", "traits": {"email": "kari@example.no",
                                                       "firstName": "Kari",
                                                       "consent": {"email": True}}})  # fmt: skip
        h.send("track", {"userId": "u-1", "event": "Product Added",
                         "properties": {"cart_id": "c-1", "product_id": "p-1", "price": 9,
                                        "quantity": 1}})  # fmt: skip
        h.drain()
        clock.advance(HOUR)
        assert h.services.journeys is not None
        assert h.services.deliverer is not None
        h.services.journeys.fire_due(clock.now_ms())
        h.services.deliverer.drain(clock.now_ms())
        h.drain()

        page = c.get("/journeys/abandoned_cart")
        assert re.search(r'data-testid="journey-entered">1<', page.text)
        assert re.search(r'data-testid="counts-wait_1h">1 reached<', page.text)
        assert re.search(r'data-testid="counts-first_reminder">1 reached<', page.text)
        assert re.search(r'data-testid="counts-wait_1d">1 reached · 1 here now<', page.text)
        assert re.search(r'data-testid="counts-discount">not reached yet<', page.text)
        assert page.text.count(">then · 1</text>") == 1
        assert "1 sent" in text(page.text.split('data-testid="journey-messages"')[1][:200])
        enrolled = text(
            page.text.split('data-testid="journey-enrollments"')[1].split("</table>")[0]
        )
        assert "Kari" in enrolled
        assert "wait_1d" in enrolled
        listed = c.get("/journeys").text
        row = text(listed.split('data-testid="journey-abandoned_cart">')[1].split("</tr>")[0])
        assert row.endswith('Active does "Product Added" (once per cart_id) 1 1 1 0 $0.00')

        # The outbox and the message, with the email's HTML in a sandboxed frame.
        outbox = c.get("/messages")
        assert outbox.status_code == 200
        assert 'href="/messages" class="active"' in outbox.text
        table = outbox.text.split('data-testid="outbox"')[1].split("</table>")[0]
        assert "kari@example.no" in table
        assert 'href="/journeys/abandoned_cart">abandoned_cart<' in table
        [message_id] = re.findall(r'href="/messages/(\d+)"', table)
        assert "kari@example.no" in c.get("/messages?channel=email&status=sent").text
        assert 'data-testid="outbox-empty"' in c.get("/messages?channel=sms").text
        bad = c.get("/messages?channel=fax&status=lost")
        assert bad.status_code == 400
        assert "There is no channel “fax”" in text(bad.text)
        assert "There is no status “lost”" in text(bad.text)
        assert c.get("/messages?page=junk").status_code == 200

        shown = c.get(f"/messages/{message_id}")
        assert shown.status_code == 200
        assert "style-src 'self' 'unsafe-inline'" in shown.headers["content-security-policy"]
        assert "unsafe-inline" not in outbox.headers["content-security-policy"]
        frame = re.search(r'<iframe class="email-preview" sandbox="" srcdoc="([^"]*)"', shown.text)
        assert frame is not None
        srcdoc = unescape(frame.group(1))
        assert srcdoc.startswith('<base target="_blank">')
        assert "Hi Kari" in srcdoc
        assert "/t/o/" not in srcdoc  # looking at it records no open
        assert "/t/c/" in srcdoc  # the links are the tracked ones that were sent
        headers = text(shown.text.split('data-testid="message-headers"')[1].split("</table>")[0])
        assert "To kari@example.no" in headers
        assert "Template cart_reminder" in headers
        assert "Hi Kari" in text(shown.text.split('data-testid="message-text"')[1][:300])
        for path in ("/messages/999999", "/messages/abc", "/messages/" + "9" * 30):
            assert c.get(path).status_code == 404, path

        # Results against the holdout: 40% of those messaged bought, 10% of the holdout.
        c.post("/journeys/playbooks/welcome/enable", data={"csrf_token": token})
        _seed_results(h, "welcome")
        results = c.get("/journeys/welcome")
        assert re.search(r'data-testid="journey-uplift">\+30.0 pp<', results.text)
        page_text = text(results.text)
        # 0.3 ± 1.96 * sqrt(0.4 * 0.6 / 10 + 0.1 * 0.9 / 10) = 0.3 ± 0.356
        assert "40.0% of those messaged converted, 10.0% of the holdout (+300%)" in page_text
        assert "95% interval -5.6 pp to +65.6 pp" in page_text
        assert re.search(r'data-testid="journey-conversions">5<', results.text)
        assert "$350.00 revenue" in page_text


def test_the_editor_checks_as_you_type_and_saves_versions(db_url: str) -> None:
    with harness(db_url) as h:
        token = logged_in(h)
        h.batch(shop_events(h.clock.now_ms()))
        h.drain()
        c = h.client
        new = c.get("/journeys/new")
        assert new.status_code == 200
        assert 'hx-post="/journeys/validate"' in new.text
        assert "name: Welcome series" in new.text

        # The check: YAML mistakes with their line, definition mistakes at their path.
        broken = text(_check(h, token, "name: x\nsteps: [\n"))
        assert "The definition is not valid YAML at line 3" in broken
        at_path = _check(h, token, "name: x\nentry: {event: A}\nsteps:\n  - id: a\n    type: nap\n")
        assert "Line 5 (steps[0].type):" in text(at_path)
        assert '"nap" is not a step type' in unescape(at_path)
        assert "<pre>    type: nap</pre>" in at_path
        missing = text(_check(h, token, "name: x\nentry: {segment: vips}\nsteps:\n"
                                        "  - {id: a, type: exit}\n"))  # fmt: skip
        assert 'Line 2 (entry): There is no segment "vips".' in missing
        assert "Write a definition" in text(_check(h, token, "  \n"))
        assert "at most 200,000 characters" in text(_check(h, token, "#" * 200_001))

        # Who would enter now: people who did the event in the last 24 hours...
        viewed = _check(h, token, "name: Browse\nentry: {event: Product Viewed}\nsteps:\n"
                                  "  - {id: w, type: wait, duration: 1h}\n"
                                  "  - {id: s, type: send, template: t1}\n")  # fmt: skip
        assert "Browse reads well: 2 steps." in text(viewed)
        assert re.search(r'data-testid="who-count">4<', viewed)  # Ana and 3 visitors
        assert viewed.count('<g class="step ') == 2
        assert "counts-w" in viewed
        assert "reached" not in viewed
        searched = _check(h, token, "name: S\nentry: {event: Products Searched}\nsteps:\n"
                                    "  - {id: a, type: exit}\n")  # fmt: skip
        assert re.search(r'data-testid="who-count">1<', searched)
        # ...or a segment's members now.
        c.post("/segments", data={"csrf_token": token, "key": "buyers", "name": "Buyers",
                                  "condition": "orders_count >= 1", "realtime": "on",
                                  "refresh_minutes": "60"})  # fmt: skip
        members = _check(h, token, "name: B\nentry: {broadcast: buyers}\nsteps:\n"
                                   "  - {id: a, type: send, template: t}\n")  # fmt: skip
        assert re.search(r'data-testid="who-count">2<', members)
        assert "a broadcast sends to all of them" in text(members)
        assert "Ana Lima" in members
        assert "Ben Okafor" in members
        api = text(
            _check(h, token, "name: A\nentry: {api: true}\nsteps:\n  - {id: a, type: exit}\n")
        )
        assert "People enter on: API call." in api
        assert c.post("/journeys/validate", data={"definition": "name: x"}).status_code == 403

        # Saving: mistakes next to the field, the typed text kept; then versions.
        browse = "name: Browse\nentry: {event: Product Viewed}\nsteps:\n"
        browse += "  - {id: w, type: wait, duration: 1h}\n"
        form = {"csrf_token": token, "key": "browse", "definition": browse}
        for fields, status, message in [
            ({"key": "new"}, 400, "“new” is taken by the page address."),
            ({"key": "Bad Key"}, 400, "A journey key is 1 to 100 lower-case letters"),
            ({"definition": "name: B\nentry: {event: X}\nsteps:\n  - {id: w, type: wait}\n"},
             400, "Line 4 (steps[0].duration): null is not a duration"),
            ({"definition": "x" * 200_001}, 400, "A definition is at most 200,000 characters."),
        ]:  # fmt: skip
            refused = c.post("/journeys", data={**form, **fields})
            assert refused.status_code == status, fields
            assert message in text(refused.text), fields
        kept = c.post("/journeys", data={**form, "definition": "name: <b>\nsteps: 3\n"})
        assert "name: &lt;b&gt;\nsteps: 3\n</textarea>" in kept.text
        created = c.post("/journeys", data=form)
        assert str(created.url).endswith("/journeys/browse?notice=created")
        assert re.search(r'data-testid="journey-version">version 1<', created.text)
        duplicate = c.post("/journeys", data=form)
        assert duplicate.status_code == 409
        assert 'A journey "browse" exists already.' in text(duplicate.text)

        edit = c.get("/journeys/browse/edit")
        assert "entry: {event: Product Viewed}" in edit.text
        assert "Save as version 2" in text(edit.text)
        update = {"csrf_token": token, "definition": form["definition"].replace("1h", "2h")}
        saved = c.post("/journeys/browse/edit", data=update)
        assert str(saved.url).endswith("/journeys/browse?notice=saved")
        assert "Saved as version 2." in text(saved.text)
        assert "wait 2 h" in text(saved.text)
        wrong = c.post("/journeys/browse/edit", data={**update, "definition": "name: x\n"})
        assert wrong.status_code == 400
        assert "entry: entry says who enters" in text(wrong.text)
        assert c.post("/journeys/nope/edit", data=update).status_code == 404
        assert _actions(h) == ["segment.create", "journey.create", "journey.update"]


def _preview(h: Harness, token: str, channel: str = "email", **fields: str) -> str:
    form = {"profile": "email:ana.lima@example.com", "render_locale": "", **fields}
    response = h.client.post(
        f"/templates/cart_reminder/{channel}/preview", data=form, headers={"X-CSRF-Token": token}
    )
    assert response.status_code == 200, response.text
    return response.text


def test_the_template_editor_with_its_live_preview(db_url: str) -> None:
    with harness(db_url) as h:
        token = logged_in(h)
        h.batch(shop_events(h.clock.now_ms()))
        h.drain()
        c = h.client
        assert "No templates yet" in text(c.get("/templates").text)
        _enable(h, token)
        listed = c.get("/templates")
        assert 'href="/templates/cart_reminder/email?locale=nb">nb<' in listed.text
        assert 'href="/templates/cart_reminder/sms">cart_reminder<' in listed.text

        editor = c.get("/templates/cart_reminder/email")
        assert editor.status_code == 200
        assert "style-src 'self' 'unsafe-inline'" in editor.headers["content-security-policy"]
        for part in ("subject", "html", "text"):
            assert f'name="part_{part}"' in editor.text
        assert 'hx-post="/templates/cart_reminder/email/preview"' in editor.text
        nb = c.get("/templates/cart_reminder/email?locale=nb_no")  # tidied to nb-NO: new
        assert "nb-NO (new)" in text(nb.text)
        assert "Du har glemt noe" not in nb.text  # starts from the default variant
        assert (
            'value="Du har glemt noe i handlekurven"'
            in c.get("/templates/cart_reminder/email?locale=nb").text
        )
        assert c.get("/templates/cart_reminder/email?locale=%21%21").status_code == 400
        for path in ("/templates/nope/email", "/templates/cart_reminder/fax"):
            assert c.get(path).status_code == 404, path

        # The preview renders for a real customer as the API does.
        parts = {"part_subject": "Hi {{ profile.first_name }}",
                 "part_html": "<p style='color:red'>{{ cart_count }} items</p>",
                 "part_text": "{{ 1234.5 | money('NOK') }}"}  # fmt: skip
        shown = _preview(h, token, **parts, render_locale="nb")
        api = c.post(
            "/api/templates/email/preview",
            json={"profile": "email:ana.lima@example.com", "locale": "nb",
                  "parts": {k.removeprefix("part_"): v for k, v in parts.items()}},
            headers=h.admin,
        ).json()["rendered"]  # fmt: skip
        assert re.search(r'data-testid="preview-subject">Hi Ana<', shown)
        assert f'data-testid="preview-text">{api["text"]}</pre>' in unescape(shown)
        frame = re.search(r'sandbox="" srcdoc="([^"]*)"', shown)
        assert frame is not None
        assert api["html"] in unescape(frame.group(1))
        error = _preview(h, token, part_subject="x", part_text="a\nb\n{% if %}")
        assert re.search(r"<strong>text, line 3:</strong> syntax error", error)
        assert "No customer is known by “email:nobody@example.com”" in text(
            _preview(h, token, profile="email:nobody@example.com", part_subject="x")
        )
        assert "Type a customer" in text(_preview(h, token, profile=""))
        assert "is not a locale" in text(_preview(h, token, render_locale="!!"))
        assert c.post("/templates/cart_reminder/email/preview", data=parts).status_code == 403

        # Saving one language's variant; mistakes next to their part.
        form = {"csrf_token": token, "locale": "nb", **parts}
        saved = c.post("/templates/cart_reminder/email", data=form)
        assert str(saved.url).endswith("/templates/cart_reminder/email?notice=saved&locale=nb")
        assert "Saved." in text(saved.text)
        with h.services.db.read() as conn:
            variants = template_store.get_variants(conn, "cart_reminder", "email")
        assert variants["nb"]["subject"] == "Hi {{ profile.first_name }}"
        for fields, message in [
            ({"part_subject": ""}, "a email template needs subject"),
            ({"part_html": "{% for %}", "part_text": ""}, "html, line 1: syntax error"),
            ({"locale": "!!"}, "is not a locale"),
        ]:
            refused = c.post("/templates/cart_reminder/email", data={**form, **fields})
            assert refused.status_code == 400, fields
            assert message in text(refused.text), fields
        assert (
            'data-testid="part-error"'
            in c.post("/templates/cart_reminder/email", data={**form, "part_subject": ""}).text
        )

        # A new template: key and channel checked, then an empty editor.
        fresh = c.get("/templates/new?key=welcome_sms&channel=sms", follow_redirects=False)
        assert fresh.headers["location"] == "/templates/welcome_sms/sms?new=1"
        page = c.get(fresh.headers["location"])
        assert page.status_code == 200
        assert 'name="part_body"' in page.text
        assert c.get("/templates/new?key=Bad Key&channel=sms").status_code == 400
        assert c.get("/templates/new?key=ok&channel=fax").status_code == 400
        body = {"csrf_token": token, "locale": "", "part_body": "Hi {{ profile.first_name }}"}
        c.post("/templates/welcome_sms/sms", data=body)
        assert c.get("/templates/welcome_sms/sms").status_code == 200
        assert _actions(h) == [
            "playbook.enable",
            "journey.create",
            "template.save",
            "template.save",
        ]


def test_messaging_settings_and_a_test_send(db_url: str) -> None:
    with (
        smtp_server(login=("shop", "s3cret-pass")) as smtp,
        provider_server() as provider,
        harness(
            db_url,
            channel_email="smtp", smtp_host=smtp.host, smtp_port=smtp.port,
            smtp_username="shop", smtp_password="s3cret-pass",
            email_from="Nordic Home <shop@nordic.example>", shop_name="Nordic Home",
            channel_sms="twilio", sms_base_url=provider.url, sms_account_sid="AC123",
            sms_auth_token="tok-s3cret", sms_from="+15550001111",
            channel_mobile_push="fcm", fcm_base_url="https://user:hunter2@fcm.example",
            fcm_project_id="nordic", fcm_access_token="fcm-s3cret", quiet_hours_start=22,
        ) as h,
    ):  # fmt: skip
        token = logged_in(h)
        c = h.client
        page = c.get("/settings/messaging")
        assert page.status_code == 200
        for secret in ("s3cret", "hunter2"):
            assert secret not in page.text
        email = text(page.text.split('data-testid="channel-email"')[1].split("</tr></table>")[0])
        assert f"SMTP server {smtp.host}:{smtp.port}" in email
        assert "Password set" in email
        assert "User name shop" in email
        assert "API https://fcm.example" in text(page.text)
        assert 'data-testid="channel-whatsapp"' in page.text
        assert "captured for the outbox" in text(
            page.text.split('data-testid="channel-whatsapp"')[1].split("</tr>")[0]
        )
        caps = page.text.split('data-testid="caps"')[1].split("</table>")[0]
        assert 'name="cap_per_channel_day" min="0" max="1000" value="2"' in caps
        assert 'name="cap_per_channel_week" min="0" max="1000" value="5"' in caps
        assert re.search(r'name="quiet_hours_start".*?<option value="22" selected>', caps, re.S)
        assert re.search(r'name="quiet_hours_end".*?<option value="8" selected>', caps, re.S)

        def send(channel: str, address: str) -> Any:
            data = {"csrf_token": token, "channel": channel, "address": address}
            return c.post("/settings/messaging/test", data=data)

        sent = send("email", " Kari@Example.no ")
        assert sent.status_code == 200
        assert "Sent to kari@example.no: the provider took it" in text(sent.text)
        [mail] = smtp.recorder.received
        assert mail.rcpt_tos == ["kari@example.no"]
        assert mail.message["Subject"] == "Test message from Nordic Home"

        provider.reply(201, {"sid": "SM1"})
        took = send("sms", "+47 912 34 567")
        result = text(took.text.split('data-testid="test-result"')[1][:400])
        assert "Sent to +4791234567: the provider took it (id SM1 )." in result, result
        assert provider.requests[0].form()["To"] == "+4791234567"
        provider.reply(400, {"code": 21211, "message": "Invalid 'To' Phone Number"})
        refused = send("sms", "+4791234567")
        assert refused.status_code == 200
        assert "Not sent to +4791234567: The SMS provider cannot deliver" in text(refused.text)
        assert "Handed to the outbox" in text(send("whatsapp", "+4791234567").text)

        for channel, address, message in [
            ("email", "not-an-address", "is not an email address"),
            ("sms", "12", "is not a phone number"),
            ("web_push", "https://push.example/x", "Web push needs a subscription"),
            ("mobile_push", "", "Paste the device's push token."),
            ("fax", "x", "Choose a channel"),
        ]:
            bad = send(channel, address)
            assert bad.status_code == 400, channel
            assert message in text(bad.text), channel
        assert c.post("/settings/messaging/test", data={"channel": "email"}).status_code == 403
        assert len(smtp.recorder.received) == 1
        assert _actions(h) == ["message.test_send"] * 4


def test_caps_and_quiet_hours_are_changed_on_the_settings_page(db_url: str) -> None:
    with harness(db_url) as h:
        token = logged_in(h)
        c = h.client
        form = {
            "csrf_token": token, "cap_per_channel_day": "1", "cap_per_channel_week": "4",
            "cap_all_day": "2", "cap_all_week": "0", "quiet_hours_start": "23",
            "quiet_hours_end": "7", "quiet_hours_action": "skip",
        }  # fmt: skip
        saved = c.post("/settings/messaging/rules", data=form)
        assert saved.status_code == 200
        assert "Rules saved." in text(saved.text)
        assert 'name="cap_all_week" min="0" max="1000" value="0"' in saved.text
        got = c.get("/api/messaging/rules", headers=h.admin).json()
        assert (got["cap_per_channel_day"], got["cap_all_day"], got["cap_all_week"]) == (1, 2, 0)
        assert (got["quiet_hours_start"], got["quiet_hours_end"]) == (23, 7)
        assert got["quiet_hours_action"] == "skip"
        assert got["saved"] is True
        assert got["defaults"]["cap_per_channel_day"] == h.services.settings.cap_per_channel_day

        # A mistake is said next to the form, keeps what was typed, and changes nothing.
        bad = c.post("/settings/messaging/rules", data={**form, "cap_all_day": "lots"})
        assert bad.status_code == 400
        assert "Not saved: all day: Give a whole number from 0 to 1000." in text(bad.text)
        assert 'value="lots"' in bad.text
        assert c.get("/api/messaging/rules", headers=h.admin).json()["cap_all_day"] == 2
        assert (
            c.post(
                "/settings/messaging/rules", data={**form, "quiet_hours_action": "x"}
            ).status_code
            == 400
        )
        assert (
            c.post("/settings/messaging/rules", data={**form, "csrf_token": "x"}).status_code == 403
        )

        reset = c.post("/settings/messaging/rules", data={"csrf_token": token, "reset": "1"})
        assert "Back to the server's settings." in text(reset.text)
        assert c.get("/api/messaging/rules", headers=h.admin).json()["saved"] is False
        assert _actions(h) == ["messaging.rules", "messaging.rules_reset"]
