"""The abandoned-cart journey end to end, on SQLite and PostgreSQL: the real API, the
real pipeline and a real SMTP server (aiosmtpd). An anonymous visitor adds to the cart,
identifies, and leaves; the (injected) clock moves an hour; exactly one email arrives,
with the right products, in their language, with a working unsubscribe link; they buy;
no further reminder."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from typing import Any

import sqlalchemy as sa

from shopkeeper.clock import FixedClock
from shopkeeper.journeys.playbooks import cart
from shopkeeper.storage import tables as t
from tests.harness import NOW, Harness, harness
from tests.integration.channel_servers import SmtpServer, smtp_server

HOUR = 3_600_000


@contextmanager
def shop(db_url: str, **settings: Any) -> Iterator[tuple[Harness, SmtpServer, FixedClock]]:
    clock = FixedClock(NOW)
    with (
        smtp_server() as smtp,
        harness(
            db_url,
            clock=clock,
            channel_email="smtp",
            smtp_host=smtp.host,
            smtp_port=smtp.port,
            email_from="Nordic Home <shop@nordic.example>",
            shop_name="Nordic Home",
            shop_url="https://shop.nordic.example",
            public_url="https://sk.nordic.example",
            **settings,
        ) as h,
    ):
        yield h, smtp, clock


def put_products(h: Harness) -> None:
    for pid, name, price in (("sofa-1", "Oslo sofa", 1299.5), ("lamp-2", "Bergen lamp", 89.0)):
        body = {"name": name, "price": price, "currency": "NOK", "stock_quantity": 4,
                "image_url": f"https://cdn.nordic.example/{pid}.jpg",
                "url": f"https://shop.nordic.example/p/{pid}"}  # fmt: skip
        response = h.client.put(f"/api/products/{pid}", json=body, headers=h.admin)
        assert response.status_code in (200, 201), response.text


def enable_cart_journey(h: Harness, holdout: float = 0.0) -> None:
    response = h.client.post("/api/playbooks/abandoned_cart", json={}, headers=h.admin)
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "draft"
    # A new version without the holdout: enrollments in flight would keep version 1.
    text = cart.ABANDONED_CART.replace("holdout: 0.1", f"holdout: {holdout}")
    response = h.client.put(
        "/api/journeys/abandoned_cart", json={"definition": text}, headers=h.admin
    )
    assert response.status_code == 200, response.text
    assert response.json()["version"] == 2
    response = h.client.post(
        "/api/journeys/abandoned_cart/status", json={"status": "active"}, headers=h.admin
    )
    assert response.status_code == 200, response.text


def visitor_fills_cart_and_identifies(h: Harness, consent: bool = True) -> None:
    context = {"locale": "nb-NO", "timezone": "Europe/Oslo"}
    for pid, price in (("sofa-1", 1299.5), ("lamp-2", 89.0)):
        h.send("track", {"anonymousId": "anon-1", "event": "Product Added", "context": context,
                         "properties": {"cart_id": "cart-1", "product_id": pid, "price": price,
                                        "quantity": 1, "currency": "NOK"}})  # fmt: skip
    h.send("identify", {"anonymousId": "anon-1", "userId": "u-1", "context": context,
                        "traits": {"email": "kari@example.no", "firstName": "Kari",
                                   "consent": {"email": consent}}})  # fmt: skip
    h.drain()


def tick(h: Harness, clock: FixedClock, ms: int) -> None:
    """Time passes: the scheduler fires due timers and delivery runs."""
    clock.advance(ms)
    runtime, deliverer = h.services.journeys, h.services.deliverer
    assert runtime is not None
    assert deliverer is not None
    runtime.fire_due(clock.now_ms())
    deliverer.drain(clock.now_ms())
    h.drain()  # the timeline events delivery wrote


def messages_of(h: Harness) -> list[dict[str, Any]]:
    response = h.client.get("/api/messages", params={"profile": "user_id:u-1"}, headers=h.admin)
    assert response.status_code == 200, response.text
    return response.json()["messages"]  # type: ignore[no-any-return]


def test_one_reminder_an_hour_later_and_none_after_the_purchase(db_url: str) -> None:
    with shop(db_url) as (h, smtp, clock):
        put_products(h)
        enable_cart_journey(h)
        visitor_fills_cart_and_identifies(h)
        tick(h, clock, 59 * 60_000)
        assert smtp.recorder.received == []

        tick(h, clock, 60_000)
        assert len(smtp.recorder.received) == 1
        mail = smtp.recorder.received[0]
        assert mail.rcpt_tos == ["kari@example.no"]
        message: EmailMessage = mail.message
        assert message["Subject"] == "Du har glemt noe i handlekurven"
        text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
        assert "Hei Kari" in text
        assert "Oslo sofa" in text
        assert "Bergen lamp" in text
        assert "1\xa0299,50" in text  # Norwegian number formatting
        assert "https://cdn.nordic.example/sofa-1.jpg" in html
        assert "https://sk.nordic.example/t/o/" in html  # the open pixel
        unsubscribe = message["List-Unsubscribe"].strip("<>")
        assert unsubscribe.startswith("https://sk.nordic.example/u/")
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

        sent = messages_of(h)
        assert [(m["channel"], m["status"], m["step"]) for m in sent] == [
            ("email", "sent", "first_reminder")
        ]
        assert sent[0]["locale"] == "nb"

        # They buy: the journey stops, and the purchase is its conversion.
        h.send("track", {"userId": "u-1", "event": "Order Completed",
                         "properties": {"order_id": "o-1", "cart_id": "cart-1",
                                        "revenue": 1388.5, "currency": "NOK"}})  # fmt: skip
        h.drain()
        tick(h, clock, 3 * 24 * HOUR)
        assert len(smtp.recorder.received) == 1
        journey = h.client.get("/api/journeys/abandoned_cart", headers=h.admin).json()
        assert journey["entered"] == 1
        assert journey["exited"] == 1
        assert journey["conversions"] == 1
        assert journey["revenue"] == 1388.5
        assert journey["messages"] == {"sent": 1}
        assert journey["step_counts"]["first_reminder"] == {"done": 1}
        # The purchase is credited to the reminder that came before it.
        assert journey["step_conversions"] == {
            "first_reminder": {"conversions": 1, "revenue": 1388.5}
        }

        # One-click unsubscribe (RFC 8058) withdraws email consent.
        path = unsubscribe.removeprefix("https://sk.nordic.example")
        response = h.client.post(path, content="List-Unsubscribe=One-Click")
        assert response.status_code == 200
        h.drain()
        consent = h.profile("user_id:u-1")
        with h.services.db.read() as conn:
            granted = conn.execute(
                sa.select(t.consents.c.granted).where(t.consents.c.channel == "email")
            ).scalar_one()
        assert granted is False, consent


def test_no_consent_means_no_email_and_the_reason_is_recorded(db_url: str) -> None:
    with shop(db_url) as (h, smtp, clock):
        put_products(h)
        enable_cart_journey(h)
        visitor_fills_cart_and_identifies(h, consent=False)
        tick(h, clock, HOUR)
        assert smtp.recorder.received == []
        [message] = messages_of(h)
        assert message["status"] == "skipped"
        assert "no consent for email" in message["reason"]


def test_quiet_hours_defer_to_the_morning_in_their_time_zone(db_url: str) -> None:
    # 20:30 UTC is 21:30 in Oslo: inside the default quiet hours (21 to 8).
    with shop(db_url) as (h, smtp, clock):
        put_products(h)
        enable_cart_journey(h)
        clock.advance(int(7.5 * HOUR))
        visitor_fills_cart_and_identifies(h)
        tick(h, clock, HOUR)
        assert smtp.recorder.received == []
        [message] = messages_of(h)
        assert message["status"] == "queued"
        # 08:00 in Oslo on the 24th is 07:00 UTC.
        from shopkeeper.timeutil import parse_iso_ms

        assert message["send_at"] == parse_iso_ms("2026-11-24T07:00:00Z")
        tick(h, clock, message["send_at"] - clock.now_ms())
        assert len(smtp.recorder.received) == 1


def test_the_holdout_is_measured_and_sent_nothing(db_url: str) -> None:
    with shop(db_url) as (h, smtp, clock):
        put_products(h)
        enable_cart_journey(h, holdout=0.5)
        for i in range(20):
            traits = {"email": f"h{i}@example.no", "consent": {"email": True}}
            h.send("identify", {"userId": f"h-{i}", "traits": traits})
            h.send("track", {"userId": f"h-{i}", "event": "Product Added",
                             "properties": {"cart_id": f"c-{i}", "product_id": "lamp-2",
                                            "price": 89, "quantity": 1}})  # fmt: skip
        h.drain()
        tick(h, clock, HOUR)
        with h.services.db.read() as conn:
            held = conn.execute(
                sa.select(sa.func.count()).where(t.enrollments.c.holdout.is_(True))
            ).scalar_one()
        assert 0 < held < 20
        assert len(smtp.recorder.received) == 20 - held
        journey = h.client.get("/api/journeys/abandoned_cart", headers=h.admin).json()
        assert journey["holdout"]["entered"] == held
        assert journey["step_counts"]["first_reminder"].get("held_out") == held
