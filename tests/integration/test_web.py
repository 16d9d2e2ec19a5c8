"""The admin UI through its HTTP interface (TestClient), on SQLite and PostgreSQL:
logging in and out, sessions, CSRF, each page with data and without, odd input."""

from __future__ import annotations

import hashlib
import re

import sqlalchemy as sa

from shopkeeper.storage import tables as t
from shopkeeper.web.sessions import COOKIE, LoginThrottle
from tests.browser.shop import shop_events
from tests.harness import NOW, Harness, harness
from tests.webui import EMAIL, PASSWORD, add_user, csrf_token, logged_in, login, text

PAGES = ["/", "/customers", "/catalog", "/sources", "/imports", "/customers/1", "/imports/1"]


def test_pages_send_people_to_the_login_form_and_programs_get_json(db_url: str) -> None:
    with harness(db_url) as h:
        c = h.client
        for path in PAGES:
            response = c.get(path, follow_redirects=False)
            assert response.status_code == 303, path
            expected = "/login" if path == "/" else "/login?next=" + path
            assert response.headers["location"] == expected
        assert c.get("/customers?q=ana b", follow_redirects=False).headers["location"] == (
            "/login?next=/customers%3Fq%3Dana%2520b"
        )
        # htmx requests get a full-page redirect through HX-Redirect.
        polled = c.get(
            "/dashboard/live",
            headers={"HX-Request": "true", "HX-Current-URL": "http://testserver/?x=1"},
        )
        assert polled.status_code == 401
        assert polled.headers["HX-Redirect"] == "/login?next=/%3Fx%3D1"
        # A form posted without a session goes to the login form, and does nothing.
        posted = c.post("/sources", data={"name": "x", "kind": "web"}, follow_redirects=False)
        assert (posted.status_code, posted.headers["location"]) == (303, "/login")
        # The JSON APIs keep their own keys and error bodies.
        assert c.get("/api/sources").json()["error"]["code"] == "unauthorized"
        assert c.get("/api/nothing", headers={"accept": "text/html"}).json()["error"] == {
            "code": "not_found",
            "message": "Not Found",
            "field": None,
        }
        # A person who mistypes an address gets a page.
        page = c.get("/nothing-here", headers={"accept": "text/html,*/*"})
        assert page.status_code == 404
        assert "There is no page at this address." in text(page.text)
        assert page.headers["content-type"].startswith("text/html")


def test_login_session_and_logout(db_url: str) -> None:
    with harness(db_url) as h:
        user_id = add_user(h)
        c = h.client
        for email, password in [(EMAIL, "wrong password!"), ("nobody@shop.example", PASSWORD)]:
            refused = login(c, email, password)
            assert refused.status_code == 401
            assert "That email and password do not match an account." in text(refused.text)
            assert COOKIE not in refused.cookies
        assert c.get("/", follow_redirects=False).status_code == 303

        ok = login(c, "  Marta@Shop.Example ", PASSWORD, next_url="/customers?q=ana")
        assert (ok.status_code, ok.headers["location"]) == (303, "/customers?q=ana")
        cookie = next(v for v in ok.headers.get_list("set-cookie") if v.startswith(COOKIE + "="))
        assert "HttpOnly" in cookie
        assert "SameSite=lax" in cookie
        token = ok.cookies[COOKIE]
        with h.services.db.read() as conn:
            rows = conn.execute(sa.select(t.ui_sessions)).all()
            audit = conn.execute(sa.select(t.audit_log.c.actor, t.audit_log.c.action)).all()
            last_login = conn.execute(sa.select(t.users.c.last_login_at)).scalar()
        # Only the token's hash is stored; the session lasts 12 hours from now.
        assert [(r.token_hash, r.user_id, r.expires_at) for r in rows] == [
            (hashlib.sha256(token.encode()).hexdigest(), user_id, NOW + 12 * 3600 * 1000)
        ]
        assert last_login == NOW
        assert ("user marta@shop.example", "user.login") in audit

        dashboard = c.get("/")
        assert dashboard.status_code == 200
        assert "Marta" in text(dashboard.text)
        assert dashboard.headers["cache-control"] == "no-store"
        assert "frame-ancestors 'none'" in dashboard.headers["content-security-policy"]
        # Already logged in: the login form sends you on.
        assert c.get("/login?next=/sources", follow_redirects=False).headers["location"] == (
            "/sources"
        )

        out = c.post("/logout", data={"csrf_token": csrf_token(dashboard.text)})
        assert out.status_code == 200
        assert "You have logged out." in text(out.text)
        with h.services.db.read() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(t.ui_sessions)).scalar() == 0
        assert c.get("/", follow_redirects=False).status_code == 303
        # The old cookie opens nothing any more.
        c.cookies.set(COOKIE, token)
        assert c.get("/", follow_redirects=False).status_code == 303


def test_sessions_expire_after_12_idle_hours_and_slide_while_used(db_url: str) -> None:
    with harness(db_url) as h:
        logged_in(h)
        clock = h.clock
        clock.advance(11 * 3600 * 1000)  # type: ignore[attr-defined]
        assert h.client.get("/", follow_redirects=False).status_code == 200
        clock.advance(11 * 3600 * 1000)  # type: ignore[attr-defined]
        # 22 hours after logging in, 11 after the last page: still in.
        assert h.client.get("/", follow_redirects=False).status_code == 200
        clock.advance(12 * 3600 * 1000 + 1)  # type: ignore[attr-defined]
        assert h.client.get("/", follow_redirects=False).status_code == 303


def test_login_only_returns_to_this_site(db_url: str) -> None:
    with harness(db_url) as h:
        add_user(h)
        for next_url, goes_to in [
            ("/customers/3", "/customers/3"),
            ("//evil.example/x", "/"),
            ("https://evil.example/", "/"),
            ("/\\evil.example", "/"),
            ("", "/"),
        ]:
            h.client.cookies.clear()
            response = login(h.client, next_url=next_url)
            assert (response.status_code, response.headers["location"]) == (303, goes_to)


def test_login_form_needs_its_cookie_and_failures_are_throttled(db_url: str) -> None:
    with harness(db_url) as h:
        add_user(h)
        c = h.client
        # A login posted from elsewhere (no login cookie) is refused before any check.
        c.get("/login")
        c.cookies.clear()
        forged = c.post(
            "/login",
            data={"email": EMAIL, "password": PASSWORD, "login_token": "x"},
            follow_redirects=False,
        )
        assert forged.status_code == 403
        assert "must accept cookies" in text(forged.text)

        h.client.app.state.ui.throttle = LoginThrottle(per_email=2)  # type: ignore[attr-defined]
        assert login(c, EMAIL, "wrong password 1").status_code == 401
        assert login(c, EMAIL, "wrong password 2").status_code == 401
        blocked = login(c, EMAIL, PASSWORD)
        assert blocked.status_code == 429
        assert "Too many failed attempts" in text(blocked.text)
        h.clock.advance(15 * 60 * 1000)  # type: ignore[attr-defined]
        assert login(c, EMAIL, PASSWORD).status_code == 303


def test_every_post_needs_the_session_csrf_token(db_url: str) -> None:
    with harness(db_url) as h:
        token = logged_in(h)
        c = h.client
        for headers, data in [
            ({}, {"name": "shop a", "kind": "web"}),
            ({"X-CSRF-Token": "wrong"}, {"name": "shop a", "kind": "web"}),
            ({}, {"name": "shop a", "kind": "web", "csrf_token": token[:-1]}),
        ]:
            refused = c.post("/sources", data=data, headers=headers, follow_redirects=False)
            assert refused.status_code == 403
            assert "sent from another site" in text(refused.text)
        assert c.post("/logout", follow_redirects=False).status_code == 403
        with h.services.db.read() as conn:
            names = conn.execute(sa.select(t.sources.c.name)).scalars().all()
        assert names == ["web shop"]
        # The form field (plain forms) and the header (htmx) both work.
        form = c.post("/sources", data={"name": "shop a", "kind": "web", "csrf_token": token})
        header = c.post(
            "/sources", data={"name": "shop b", "kind": "app"}, headers={"X-CSRF-Token": token}
        )
        assert (form.status_code, header.status_code) == (200, 200)
        with h.services.db.read() as conn:
            names = conn.execute(sa.select(t.sources.c.name).order_by(t.sources.c.id)).all()
        assert [n for (n,) in names] == ["web shop", "shop a", "shop b"]


EMPTY_STATES = {
    "/": ["No orders in the last 30 days", "Nothing is stuck", "Up to date"],
    "/customers": ["No customers yet"],
    "/customers?q=zz": ["No customer matches “zz”"],
    "/catalog": ["No products yet"],
    "/catalog?q=x": ["No product matches these filters"],
    "/imports": ["No imports yet"],
    "/sources": ["web shop"],
}


def test_pages_without_data_say_what_to_do(db_url: str) -> None:
    with harness(db_url) as h:
        logged_in(h)
        for path, phrases in EMPTY_STATES.items():
            response = h.client.get(path)
            assert response.status_code == 200, path
            for phrase in phrases:
                assert phrase in text(response.text), (path, phrase)
        dashboard = text(h.client.get("/").text)
        assert "Customers 0 Known 0 Anonymous 0" in dashboard
        assert "Revenue, last 30 days $0.00 0 orders Average —" in dashboard
        assert "Conversion rate —" in dashboard


def _shop(h: Harness) -> None:
    h.batch(shop_events(NOW))
    assert h.drain() == 17


def test_dashboard_numbers_from_events(db_url: str) -> None:
    with harness(db_url) as h:
        logged_in(h)  # which opened the dashboard, with no data yet
        _shop(h)
        # The 30-day figures may be 20 seconds old.
        assert "Customers 0 Known 0" in text(h.client.get("/").text)
        h.clock.advance(20_000)  # type: ignore[attr-defined]
        page = text(h.client.get("/").text)
        assert "Customers 5 Known 2 Anonymous 3" in page
        assert "Revenue, last 30 days $1,370.00 3 orders Average $456.67" in page
        assert "Conversion rate 40.0% 2 of the 5 people active in the last 30 days" in page
        # All 17 events arrived 20 seconds ago, in the minute in progress.
        assert "Events per minute 0 in the last full minute · 17 in the last hour" in page
        assert '<svg class="bars"' in h.client.get("/").text
        h.clock.advance(40_000)  # type: ignore[attr-defined]
        live = h.client.get("/dashboard/live", headers={"HX-Request": "true"})
        assert text(live.text).startswith("Events per minute 17 in the last full minute")
        assert 'hx-trigger="every 5s"' in live.text


def test_customers_list_search_and_profile_with_visits(db_url: str) -> None:
    with harness(db_url) as h:
        logged_in(h)
        _shop(h)
        c = h.client
        everyone = text(c.get("/customers").text)
        assert everyone.count("Anonymous visitor") == 3
        assert "Ana Lima Known 58 minutes ago 2 $1,330.00" in everyone
        assert "Ben Okafor Known 1 day ago 1 $40.00" in everyone
        known = text(c.get("/customers?show=known").text)
        assert "Anonymous visitor" not in known
        found = c.get("/customers?q=ana.lima@", headers={"HX-Request": "true"})
        assert "<html" not in found.text  # htmx gets the results only
        ana = re.search(r'href="/customers/(\d+)">Ana Lima<', found.text)
        assert ana, found.text
        assert re.search(r'href="/customers/\d+">Ana Lima<', c.get("/customers?q=lima").text)

        page = c.get(f"/customers/{ana.group(1)}")
        assert page.status_code == 200
        body = text(page.text)
        for phrase in [
            "Ana Lima Known",
            "Orders 2 Total spent $1,330.00 Average order $665.00 Last order 23 Nov 2026",
            "Bergen lamp lamp-2 2 \u00d7 $89.00",
            "Cart value $178.00 · 2 items",
            "Email ana.lima@example.com",
            "Customer ID cust-ana",
            "First name Ana",
            "Favourite category Home > Living > Sofas",
        ]:
            assert phrase in body, phrase
        visits = re.findall(r'data-testid="visit"', page.text)
        assert len(visits) == 3
        timeline = body[body.index("What they did") :]
        assert timeline.startswith(
            "What they did Newest first, grouped into visits: a pause of more than 30 minutes "
            "starts a new visit. "
            "Visit on 23 Nov 2026, 11:00 UTC · 3 events over 2 min · desktop · from web shop "
            "11:02 Added Bergen lamp to the cart Name Bergen lamp Product ID lamp-2 "
            "Category Home > Lighting Price $89.00 Quantity 2 "
            "11:01 Viewed Bergen lamp "
        )
        assert "09:09 Placed order A-100 · $1,250.00 Order ID A-100 Revenue $1,250.00" in body
        order = [
            line
            for line in re.findall(r"<summary>([^<]+)</summary>", page.text)
            if not line.startswith("<strong>")
        ]
        assert order == [
            "Added Bergen lamp to the cart",
            "Viewed Bergen lamp",
            "Searched for “lamp”",
            "Placed order A-100 · $1,250.00",
            "Added Oslo sofa to the cart",
            "Viewed Oslo sofa",
            "Identified as cust-ana (email, first name, last name)",
            "Placed order A-050 · $80.00",
        ]
        assert "Visit on 23 Nov 2026, 09:00 UTC · 5 events over 9 min" in body
        assert "Visit on 13 Nov 2026, 12:00 UTC · 1 event" in body


def test_timeline_pages_and_absorbed_profiles_redirect(db_url: str) -> None:
    with harness(db_url) as h:
        logged_in(h)
        messages = [
            {"type": "page", "anonymousId": "x1", "name": f"Page {n}", "messageId": f"p{n}",
             "timestamp": f"2026-11-2{n // 60}T{n % 60 // 6:02d}:{n % 6 * 5:02d}:00Z"}
            for n in range(130)
        ]  # fmt: skip
        messages.append({"type": "track", "userId": "u9", "event": "Signed Up", "messageId": "s"})
        h.batch(messages)
        h.drain()
        h.batch([{"type": "identify", "userId": "u9", "anonymousId": "x1", "messageId": "i"}])
        h.drain()
        with h.services.db.read() as conn:
            rows = conn.execute(
                sa.select(t.profiles.c.id, t.profiles.c.merged_into).order_by(t.profiles.c.id)
            ).all()
        (survivor, _), (absorbed, merged_into) = rows
        assert merged_into == survivor
        moved = h.client.get(f"/customers/{absorbed}", follow_redirects=False)
        assert (moved.status_code, moved.headers["location"]) == (303, f"/customers/{survivor}")
        page = h.client.get(f"/customers/{survivor}")
        assert f"Combined with visitor no. {absorbed}" in text(page.text)
        assert page.text.count('class="event"') == 100
        older = re.search(r'hx-get="(/customers/\d+/events\?before=\d+)"', page.text)
        assert older
        rest = h.client.get(older.group(1), headers={"HX-Request": "true"})
        assert rest.text.count('class="event"') == 32
        assert "Show older events" not in rest.text


ODD = [
    ("/customers/abc", 404, "There is no customer with this number."),
    ("/customers/999999", 404, "They may have been erased."),
    ("/customers/-1", 404, "There is no customer with this number."),
    ("/customers/99999999999999999999999", 404, "There is no customer with this number."),
    ("/customers/1/events?before=zz", 404, "There is no customer"),
    ("/customers?page=-4&show=who", 200, "No customers yet"),
    ("/customers?page=abc", 200, "No customers yet"),
    ("/customers?q=%25_%5C%27%22%3Cscript%3E", 200, "No customer matches"),
    ("/customers?q=" + "a" * 5000, 200, "No customer matches"),
    ("/customers?q=" + "9" * 25, 200, "No customer matches"),
    ("/catalog?page=x&stock=nope&category=%3E%3E", 200, "No product"),
    ("/catalog/no-such-product", 404, "Neither the catalog nor any event knows"),
    ("/catalog/" + "x" * 300, 404, "There is no product with this ID."),
    ("/imports/abc", 404, "There is no import with this number."),
    ("/imports/77", 404, "There is no import with this number."),
    ("/imports/77/progress", 404, "There is no import with this number."),
    ("/sources?source=abc&notice=<b>", 200, "Connect your shop: web shop"),
    ("/static/../../etc/passwd", 404, ""),
    ("/static/nothing.js", 404, "There is no such file."),
]


def test_odd_input_gets_a_page_never_a_server_error(db_url: str) -> None:
    with harness(db_url) as h:
        token = logged_in(h)
        for path, status, phrase in ODD:
            response = h.client.get(path, headers={"accept": "text/html"})
            assert response.status_code == status, (path, response.text[:300])
            assert phrase in text(response.text), path
        for path in [
            "/dashboard/parked/abc/retry",
            "/dashboard/parked/99999999999999999999/retry",
            "/sources/keys/x/revoke",
            "/sources/keys/99999999999999999999/revoke",
        ]:
            response = h.client.post(path, data={"csrf_token": token})
            assert response.status_code == 404, path
        bad_form = h.client.post(
            "/sources",
            content=b"--x\r\nbroken",
            headers={"content-type": "multipart/form-data; boundary=x", "X-CSRF-Token": token},
        )
        assert bad_form.status_code == 400
        assert "source name is 1 to 200" in text(bad_form.text)
