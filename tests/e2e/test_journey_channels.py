"""Journeys on the other channels, end to end on SQLite and PostgreSQL: the real API and
pipeline, a real SMTP server (aiosmtpd) and a local HTTP server speaking the FCM and
Twilio shapes, with the clock moved by hand. Mobile push and SMS reminders, channel
preference and fallback, frequency caps, provider retries, webhook steps, and entry on
a segment or through the API."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from shopkeeper.clock import FixedClock
from shopkeeper.storage import tables as t
from tests.e2e.test_journey_abandoned_cart import enable_cart_journey, put_products
from tests.harness import NOW, Harness, harness
from tests.integration.channel_servers import (
    ProviderServer,
    SmtpServer,
    provider_server,
    smtp_server,
)

HOUR = 3_600_000
DAY = 24 * HOUR
TOKEN = "fcm-access-token-1"
PHONE = "+4791234567"


@dataclass
class Shop:
    h: Harness
    smtp: SmtpServer
    provider: ProviderServer
    clock: FixedClock

    def settle(self, ms: int = 0) -> None:
        """Time passes: timers fire, segment changes enter journeys, delivery runs and
        the pipeline applies what delivery wrote, until nothing is left to do."""
        self.clock.advance(ms)
        runtime, deliverer = self.h.services.journeys, self.h.services.deliverer
        assert runtime is not None
        assert deliverer is not None
        now = self.clock.now_ms()
        while True:
            work = runtime.fire_due(now) + runtime.follow_segments(now)
            work += deliverer.drain(now) + self.h.drain()
            if not work:
                return

    def messages(self, ref: str) -> list[dict[str, Any]]:
        response = self.h.client.get("/api/messages", params={"profile": ref}, headers=self.h.admin)
        assert response.status_code == 200, response.text
        return response.json()["messages"]  # type: ignore[no-any-return]

    def journey(self, key: str, definition: dict[str, Any]) -> None:
        response = self.h.client.post(
            "/api/journeys",
            json={"key": key, "definition": definition, "status": "active"},
            headers=self.h.admin,
        )
        assert response.status_code == 201, response.text

    def template(self, key: str, channel: str, parts: dict[str, str]) -> None:
        response = self.h.client.put(
            f"/api/templates/{key}/{channel}", json={"parts": parts}, headers=self.h.admin
        )
        assert response.status_code == 200, response.text

    def push_subscription(self, ref: str, token: str) -> None:
        body = {"profile": ref, "kind": "mobile", "address": token}
        response = self.h.client.post("/api/push-subscriptions", json=body, headers=self.h.admin)
        assert response.status_code == 201, response.text


@contextmanager
def shop(db_url: str, **settings: Any) -> Iterator[Shop]:
    clock = FixedClock(NOW)
    with (
        smtp_server() as smtp,
        provider_server() as provider,
        harness(
            db_url,
            clock=clock,
            channel_email="smtp",
            smtp_host=smtp.host,
            smtp_port=smtp.port,
            email_from="Nordic Home <shop@nordic.example>",
            channel_mobile_push="fcm",
            fcm_base_url=provider.url,
            fcm_project_id="nordic-app",
            fcm_access_token=TOKEN,
            channel_sms="twilio",
            sms_base_url=provider.url,
            sms_account_sid="AC123",
            sms_auth_token="sms-secret",
            sms_from="+4740000000",
            shop_name="Nordic Home",
            shop_url="https://shop.nordic.example",
            public_url="https://sk.nordic.example",
            **settings,
        ) as h,
    ):
        yield Shop(h, smtp, provider, clock)


def person(s: Shop, user: str, traits: dict[str, Any]) -> None:
    s.h.send("identify", {"userId": user, "traits": traits})
    s.h.drain()


def leave_cart(s: Shop, user: str, cart: str = "cart-1") -> None:
    s.h.send("track", {"userId": user, "event": "Product Added",
                       "properties": {"cart_id": cart, "product_id": "lamp-2", "price": 89.0,
                                      "quantity": 1, "currency": "NOK"}})  # fmt: skip
    s.h.drain()


def buy(s: Shop, user: str, cart: str = "cart-1") -> None:
    s.h.send("track", {"userId": user, "event": "Order Completed",
                       "properties": {"order_id": f"o-{cart}", "cart_id": cart,
                                      "revenue": 89.0, "currency": "NOK"}})  # fmt: skip
    s.h.drain()


def cart_shop(s: Shop) -> None:
    put_products(s.h)
    enable_cart_journey(s.h)


# -- mobile push and SMS ---------------------------------------------------------------------


def test_mobile_push_reminder_an_hour_later_and_none_after_the_purchase(db_url: str) -> None:
    with shop(db_url) as s:
        cart_shop(s)
        person(s, "u-1", {"firstName": "Kari", "consent": {"push": True}})
        s.push_subscription("user_id:u-1", "device-token-1")
        leave_cart(s, "u-1")
        s.provider.reply(200, {"name": "projects/nordic-app/messages/0:1"})
        s.settle(59 * 60_000)
        assert s.provider.requests == []

        s.settle(60_000)
        [request] = s.provider.requests
        assert request.path == "/v1/projects/nordic-app/messages:send"
        assert request.headers["authorization"] == f"Bearer {TOKEN}"
        sent = request.json()["message"]
        assert sent["token"] == "device-token-1"
        assert sent["notification"]["title"] == "Still thinking it over?"
        assert sent["notification"]["body"] == "1 item(s) are waiting in your cart."
        assert sent["data"]["url"].startswith("https://shop.nordic.example/cart?")
        assert "utm_medium=mobile_push" in sent["data"]["url"]
        [message] = s.messages("user_id:u-1")
        assert (message["channel"], message["status"]) == ("mobile_push", "sent")
        assert message["step"] == "first_reminder"
        assert s.smtp.recorder.received == []

        buy(s, "u-1")
        s.settle(3 * DAY)
        assert len(s.provider.requests) == 1
        assert len(s.messages("user_id:u-1")) == 1


def test_sms_reminder_then_stop_reply_fails_and_suppresses_the_number(db_url: str) -> None:
    with shop(db_url) as s:
        cart_shop(s)
        person(s, "u-2", {"phone": PHONE, "consent": {"sms": True}})
        leave_cart(s, "u-2")
        s.provider.reply(201, {"sid": "SM0001", "status": "queued"})
        s.settle(HOUR)
        [request] = s.provider.requests
        assert request.path == "/2010-04-01/Accounts/AC123/Messages.json"
        form = request.form()
        assert (form["To"], form["From"]) == (PHONE, "+4740000000")
        assert "https://shop.nordic.example/cart?" in form["Body"]
        assert form["Body"].startswith("Nordic Home: your cart is waiting")
        [first] = s.messages("user_id:u-2")
        assert (first["channel"], first["status"], first["recipient"]) == ("sms", "sent", PHONE)

        # The second reminder: the person had replied STOP, so Twilio refuses (21610).
        s.provider.reply(
            400, {"code": 21610, "message": "Attempt to send to unsubscribed recipient"}
        )
        s.settle(23 * HOUR)
        assert len(s.provider.requests) == 2
        second = s.messages("user_id:u-2")[0]
        assert (second["step"], second["status"]) == ("second_reminder", "failed")
        assert "21610" in second["reason"]
        with s.h.services.db.read() as conn:
            suppressed = (
                conn.execute(
                    sa.select(t.message_suppressions.c.address).where(
                        t.message_suppressions.c.channel == "sms"
                    )
                )
                .scalars()
                .all()
            )
        assert suppressed == [PHONE]

        # The last reminder is not even tried.
        s.settle(2 * DAY)
        assert len(s.provider.requests) == 2
        last = s.messages("user_id:u-2")[0]
        assert (last["step"], last["status"]) == ("last_reminder", "skipped")
        assert last["reason"].startswith("suppressed")


# -- channel choice ---------------------------------------------------------------------------


def test_preference_wins_and_a_withdrawn_channel_falls_back_to_email(db_url: str) -> None:
    with shop(db_url) as s:
        cart_shop(s)
        both = {"push": True, "email": True}
        people = {
            "pref": {"email": "pref@example.no", "preferred_channel": "email", "consent": both},
            "nopush": {"email": "nopush@example.no", "consent": {"push": False, "email": True}},
            # Without a preference, push comes first: what the other two show is real.
            "plain": {"email": "plain@example.no", "consent": both},
        }
        for user, traits in people.items():
            person(s, user, traits)
            s.push_subscription(f"user_id:{user}", f"token-{user}")
            leave_cart(s, user, cart=f"cart-{user}")
        s.provider.reply(200, {"name": "projects/nordic-app/messages/0:2"})
        s.settle(HOUR)

        mailed = sorted(rcpt for mail in s.smtp.recorder.received for rcpt in mail.rcpt_tos)
        assert mailed == ["nopush@example.no", "pref@example.no"]
        assert [r.json()["message"]["token"] for r in s.provider.requests] == ["token-plain"]
        channels = {user: s.messages(f"user_id:{user}")[0]["channel"] for user in people}
        assert channels == {"pref": "email", "nopush": "email", "plain": "mobile_push"}


# -- frequency caps ---------------------------------------------------------------------------


def email_journey(key: str, event: str, **send: Any) -> dict[str, Any]:
    return {
        "name": key,
        "entry": {"event": event},
        "steps": [{"id": "hello", "type": "send", "channel": "email", "template": key, **send}],
    }


def test_the_daily_cap_skips_the_second_marketing_email_not_transactional_ones(
    db_url: str,
) -> None:
    with shop(db_url, cap_per_channel_day=1) as s:
        for key in ("welcome_a", "welcome_b", "receipt"):
            s.template(key, "email", {"subject": key, "text": f"{key} for {{{{ profile.email }}}}"})
        s.journey("welcome_a", email_journey("welcome_a", "Signed Up"))
        s.journey("welcome_b", email_journey("welcome_b", "Signed Up"))
        s.journey("receipt", email_journey("receipt", "Order Completed", transactional=True))
        person(s, "u-3", {"email": "ola@example.no", "consent": {"email": True}})
        s.h.send("track", {"userId": "u-3", "event": "Signed Up"})
        s.h.drain()
        s.settle()
        by_template = {m["template"]: m for m in s.messages("user_id:u-3")}
        assert {k: m["status"] for k, m in by_template.items()} == {
            "welcome_a": "sent",
            "welcome_b": "skipped",
        }
        assert by_template["welcome_b"]["reason"] == (
            "frequency cap: 1 email messages today (limit 1)"
        )

        # The cap is reached, yet receipts go out: transactional messages are exempt.
        for cart in ("c1", "c2"):
            buy(s, "u-3", cart=cart)
            s.settle(60_000)
        subjects = [mail.message["Subject"] for mail in s.smtp.recorder.received]
        assert subjects == ["welcome_a", "receipt", "receipt"]

        # A day after the first welcome the cap has room again, for one.
        s.settle(DAY)
        s.h.send("track", {"userId": "u-3", "event": "Signed Up"})
        s.h.drain()
        s.settle()
        statuses = sorted((m["template"], m["status"]) for m in s.messages("user_id:u-3"))
        assert statuses == [
            ("receipt", "sent"), ("receipt", "sent"),
            ("welcome_a", "sent"), ("welcome_a", "sent"),
            ("welcome_b", "skipped"), ("welcome_b", "skipped"),
        ]  # fmt: skip
        assert len(s.smtp.recorder.received) == 4


# -- provider failures ------------------------------------------------------------------------


def sms_journey(s: Shop) -> None:
    s.template("code", "sms", {"body": "Your code: {{ variables.entry.code }}"})
    s.journey("sms_code", {
        "name": "SMS code",
        "entry": {"event": "Code Requested"},
        "steps": [{"id": "text", "type": "send", "channel": "sms", "template": "code"}],
    })  # fmt: skip
    person(s, "u-4", {"phone": PHONE, "consent": {"sms": True}})
    s.h.send("track", {"userId": "u-4", "event": "Code Requested", "properties": {"code": "123"}})
    s.h.drain()


def test_a_provider_hiccup_is_retried_with_backoff_and_delivered_once(db_url: str) -> None:
    with shop(db_url) as s:
        sms_journey(s)
        s.provider.reply(503, {"code": 20503, "message": "Service unavailable"})
        s.provider.reply(201, {"sid": "SM0042"})
        s.settle()
        [message] = s.messages("user_id:u-4")
        assert message["status"] == "queued"
        assert message["reason"].startswith("retrying: ")
        assert message["send_at"] == s.clock.now_ms() + 30_000
        assert len(s.provider.requests) == 1

        s.settle(29_000)
        assert len(s.provider.requests) == 1
        s.settle(1_000)
        [message] = s.messages("user_id:u-4")
        assert (message["status"], message["attempts"]) == ("sent", 2)
        first, second = s.provider.requests
        assert second.form()["Body"] == "Your code: 123"
        # The same idempotency token both times: Twilio would drop a duplicate.
        token = "i-twilio-idempotency-token"
        assert first.headers[token] == second.headers[token]
        detail = s.h.client.get(f"/api/messages/{message['id']}", headers=s.h.admin).json()
        assert [e["kind"] for e in detail["events"]] == ["sent"]


def test_five_failures_fail_the_message_with_the_reason(db_url: str) -> None:
    with shop(db_url) as s:
        sms_journey(s)
        for _ in range(5):
            s.provider.reply(503, {"code": 20503, "message": "Service unavailable"})
        s.settle()
        for delay in (30, 60, 120, 240):
            [message] = s.messages("user_id:u-4")
            assert message["status"] == "queued"
            assert message["send_at"] == s.clock.now_ms() + delay * 1000
            s.settle(delay * 1000)
        [message] = s.messages("user_id:u-4")
        assert (message["status"], message["attempts"]) == ("failed", 5)
        assert message["reason"] == (
            "The SMS provider answered HTTP 503: Service unavailable (error 20503)"
        )
        s.settle(DAY)
        assert len(s.provider.requests) == 5


# -- webhook, segment and API entries ---------------------------------------------------------


def test_a_webhook_step_posts_the_payload_once(db_url: str) -> None:
    with shop(db_url, webhook_allow_private=True) as s:
        s.journey("crm_sync", {
            "name": "Tell the CRM",
            "entry": {"event": "Signed Up"},
            "steps": [{"id": "notify", "type": "webhook", "url": f"{s.provider.url}/hooks/crm"}],
        })  # fmt: skip
        person(s, "u-5", {"email": "hook@example.no"})
        s.provider.reply(204)
        s.h.send("track", {"userId": "u-5", "event": "Signed Up", "properties": {"plan": "pro"}})
        s.h.drain()
        s.settle()
        s.settle(HOUR)
        [request] = s.provider.requests
        assert (request.method, request.path) == ("POST", "/hooks/crm")
        payload = request.json()
        assert payload["journey"] == "crm_sync"
        assert payload["step"] == "notify"
        assert payload["variables"]["entry"] == {"plan": "pro"}
        profile_id = s.h.profile("user_id:u-5")["profile_id"]
        assert payload["profile_id"] == profile_id
        assert request.headers["idempotency-key"].startswith("journey:")
        [message] = s.messages("user_id:u-5")
        assert (message["channel"], message["status"]) == ("webhook", "sent")


def test_entering_a_segment_enters_the_journey_once(db_url: str) -> None:
    with shop(db_url) as s:
        body = {"key": "repeat_buyers", "name": "Repeat buyers", "condition": "orders_count >= 2"}
        response = s.h.client.post("/api/segments", json=body, headers=s.h.admin)
        assert response.status_code == 201, response.text
        s.template("thanks", "email", {"subject": "Thank you", "text": "Thanks again!"})
        s.journey("repeat_thanks", {
            "name": "Thank repeat buyers",
            "entry": {"segment": "repeat_buyers"},
            "steps": [{"id": "thanks", "type": "send", "channel": "email", "template": "thanks"}],
        })  # fmt: skip
        s.settle()  # the scheduler has been running: it follows segment changes from here
        person(s, "u-6", {"email": "loyal@example.no", "consent": {"email": True}})
        buy(s, "u-6", cart="c1")
        s.settle(60_000)
        assert s.smtp.recorder.received == []

        buy(s, "u-6", cart="c2")
        s.settle(60_000)
        buy(s, "u-6", cart="c3")  # still a member: no new entry
        s.settle(60_000)
        s.settle(60_000)
        assert [m.rcpt_tos for m in s.smtp.recorder.received] == [["loyal@example.no"]]
        journey = s.h.client.get("/api/journeys/repeat_thanks", headers=s.h.admin).json()
        assert journey["entered"] == 1


def test_api_enrollment_with_the_same_key_enters_once(db_url: str) -> None:
    with shop(db_url) as s:
        s.template("vip", "email", {"subject": "Welcome to VIP", "text": "Hello VIP"})
        s.journey("vip_welcome", {
            "name": "VIP welcome",
            "entry": {"api": True},
            "steps": [{"id": "hello", "type": "send", "channel": "email", "template": "vip"}],
        })  # fmt: skip
        person(s, "u-7", {"email": "vip@example.no", "consent": {"email": True}})
        body = {"profile": "user_id:u-7", "properties": {"tier": "gold"}, "key": "crm-991"}
        answers = [
            s.h.client.post("/api/journeys/vip_welcome/enrollments", json=body, headers=s.h.admin)
            for _ in range(2)
        ]
        assert [a.status_code for a in answers] == [200, 200]
        first, second = (a.json() for a in answers)
        assert first["entered"] is True
        assert first["enrollment_id"] is not None
        assert second == {
            "entered": False,
            "reason": "entered on this already",
            "enrollment_id": None,
        }
        s.settle()
        assert [m.rcpt_tos for m in s.smtp.recorder.received] == [["vip@example.no"]]
        journey = s.h.client.get("/api/journeys/vip_welcome", headers=s.h.admin).json()
        assert journey["entered"] == 1
