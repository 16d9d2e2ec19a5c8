"""The playbooks: every definition is valid, every template a step can send exists for
each channel the step may choose, every template renders in English and Norwegian for a
full and an empty context (and for a real profile's context), and every playbook can be
switched on through the API on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from shopkeeper.journeys.definition import read_definition
from shopkeeper.journeys.playbooks import PLAYBOOKS, Playbook, find
from shopkeeper.messaging import blocks, template_store
from shopkeeper.messaging.content import message_context
from shopkeeper.messaging.reach import DEFAULT_ORDER
from shopkeeper.messaging.templates import check, pick_variant, render
from shopkeeper.timeutil import ms_to_iso
from tests.harness import NOW, Harness, harness

# The playbooks of this module (cart.py and lifecycle.py have their own tests).
MINE = (
    "abandoned_checkout", "browse_abandonment", "almost_buyers", "free_shipping_nudge",
    "back_in_stock", "price_drop", "lead_nurturing", "app_first_purchase",
    "repeat_customers", "post_purchase", "win_back", "replenishment", "birthday",
    "holidays",
)  # fmt: skip
# Built-in segments a playbook's entry needs.
NEEDS_SEGMENT = {"win_back": "lapsing-customers", "almost_buyers": "almost-buyers"}
LOCALES = ("en", "nb-NO")
IDS = [p.key for p in PLAYBOOKS]


def channels_of(playbook: Playbook) -> dict[str, set[str]]:
    """template -> the channels its send steps may choose."""
    out: dict[str, set[str]] = {}
    for step in read_definition(playbook.definition).steps:
        if step.type != "send":
            continue
        o = step.options
        if o["channel"] == "best":
            chosen = set(o["fallback"]) or set(DEFAULT_ORDER)
        else:
            chosen = {o["channel"], *o["fallback"]}
        out.setdefault(o["template"], set()).update(chosen)
    return out


def test_every_playbook_of_the_issue_is_there() -> None:
    assert set(MINE) <= set(IDS)
    assert len(IDS) == len(set(IDS))


@pytest.mark.parametrize("playbook", PLAYBOOKS, ids=IDS)
def test_definitions_are_valid_and_described(playbook: Playbook) -> None:
    definition = read_definition(playbook.definition)
    assert definition.name
    assert definition.description
    assert len(playbook.description) > 60
    for needed in NEEDS_SEGMENT.get(playbook.key, "").split():
        assert needed in playbook.description  # says which segment to enable
    pools = {pool.key for pool in playbook.pools}
    assert {s.options["pool"] for s in definition.steps if s.type == "coupon"} == pools


@pytest.mark.parametrize("playbook", PLAYBOOKS, ids=IDS)
def test_each_template_exists_for_each_channel_a_step_may_choose(playbook: Playbook) -> None:
    wanted = channels_of(playbook)
    assert set(wanted) == set(playbook.templates)  # none missing, none unused
    for template, channels in wanted.items():
        have = playbook.templates[template]
        assert "email" in have, template
        assert channels <= set(have), (template, channels - set(have))
        for channel, variants in have.items():
            assert "" in variants, (template, channel)
            for locale, parts in variants.items():
                assert check(parts) == [], (template, channel, locale)
                for group in template_store.REQUIRED_PARTS[channel]:
                    assert any(parts.get(part) for part in group), (template, channel, group)


@pytest.mark.parametrize("key", MINE)
def test_english_and_norwegian_variants_on_every_channel(key: str) -> None:
    playbook = find(key)
    assert playbook is not None
    for template, channels in playbook.templates.items():
        for channel, variants in channels.items():
            assert {"", "nb"} <= set(variants), (template, channel)
            assert variants[""] != variants["nb"], (template, channel)


def sample_context(locale: str, *, full: bool) -> dict[str, Any]:
    product = {
        "product_id": "boot-1", "id": "boot-1", "name": "Trail boot", "price": 1299.0,
        "regular_price": 1499.0, "currency": "NOK", "url": "https://shop.example/p/boot-1",
        "image_url": "https://cdn.example/boot-1.jpg", "stock_quantity": 3, "in_stock": True,
    }  # fmt: skip
    pick = {**product, "product_id": "sock-2", "id": "sock-2", "name": "Wool sock",
            "price": 99.0, "stock_quantity": 40}  # fmt: skip
    coupon = {"code": "GIFT-ABCD2345", "discount": "15%", "expires_at": NOW + 14 * 86_400_000}
    entry = {
        "product_id": "boot-1", "old_price": 1499.0, "new_price": 1299.0, "currency": "NOK",
        "drop_percent": 13.34, "holiday": "mothers_day", "holiday_name": "Mother's Day",
        "holiday_date": "2026-02-08", "order_id": "o-1", "revenue": 1398.0,
        "products": [{"product_id": "boot-1", "name": "Trail boot", "quantity": 1}],
    }  # fmt: skip
    cart = [{**product, "quantity": 1, "line_total": 1299.0}]
    profile = {
        "id": 1, "first_name": "Kari", "email": "kari@example.no", "traits": {},
        "computed": {"wishlist": [{"product_id": "boot-1", "name": "Trail boot",
                                   "price": 1299.0, "currency": "NOK"}]},
    }  # fmt: skip
    link = blocks.make_link("https://shop.example", "email", "playbook", coupon["code"])
    return {
        "profile": profile if full else {"id": 2, "traits": {}, "computed": {}},
        "cart": cart if full else [],
        "cart_total": 1299.0 if full else 0.0,
        "cart_currency": "NOK",
        "cart_count": 1 if full else 0,
        "product": product if full else None,
        "recommendations": [pick, {**product, "product_id": "boot-9"}] if full else [],
        "coupon": coupon if full else None,
        "free_shipping": (
            {"threshold": 1500.0, "remaining": 201.0, "reached": False, "currency": "NOK"}
            if full
            else None
        ),
        "shop": {"name": "Nordic Home", "url": "https://shop.example"},
        "link": link,
        "links": link,
        "unsubscribe_url": "https://sk.example/u/token",
        "variables": {"entry": entry if full else {}},
        "locale": locale,
        "currency": "NOK",
        "timezone": "Europe/Oslo",
        "now": NOW,
        "channel": "email",
        "journey": "playbook",
    }


def render_all(
    templates: Mapping[str, Mapping[str, Mapping[str, Mapping[str, str]]]],
    context_for: Any,
) -> dict[tuple[str, str, str], dict[str, str]]:
    out = {}
    for template, channels in templates.items():
        for channel, variants in channels.items():
            for locale in LOCALES:
                _key, parts = pick_variant(variants, locale, "en")
                rendered = render(
                    parts,
                    context_for(locale),
                    locale=locale,
                    currency="NOK",
                    timezone="Europe/Oslo",
                )
                for part, text in rendered.items():
                    assert "{{" not in text, (template, part)
                    assert "{%" not in text, (template, part)
                    if part in ("subject", "title", "body"):
                        assert text.strip(), (template, channel, locale, part)
                out[(template, channel, locale)] = rendered
    return out


@pytest.mark.parametrize("full", [True, False], ids=["full", "empty"])
@pytest.mark.parametrize("playbook", PLAYBOOKS, ids=IDS)
def test_every_template_renders_in_both_locales(playbook: Playbook, full: bool) -> None:
    render_all(playbook.templates, lambda locale: sample_context(locale, full=full))


def test_what_the_templates_say() -> None:
    def rendered(key: str, template: str, locale: str, part: str = "html") -> str:
        playbook = find(key)
        assert playbook is not None
        out = render_all({template: playbook.templates[template]}, lambda loc: sample_context(
            loc, full=True))  # fmt: skip
        return out[(template, "email", locale)][part]

    # Urgency only for what is nearly sold out (3 boots left, 40 socks).
    html = rendered("almost_buyers", "almost_buyers", "en")
    assert "Only 3 left" in html
    assert "Only 40 left" not in html
    assert "GIFT-ABCD2345" in html
    assert "Bare 3 igjen" in rendered("almost_buyers", "almost_buyers", "nb-NO")
    assert "Only 3 left" in rendered("back_in_stock", "back_in_stock", "en", "text")
    price = rendered("price_drop", "price_drop", "nb-NO", "text")
    assert "Før 1\xa0499,00" in price
    assert "nå 1\xa0299,00" in price
    assert "13,34" in price
    assert "201,00" in rendered("free_shipping_nudge", "free_shipping_nudge", "nb-NO")
    assert rendered("holidays", "holiday_gift_guide", "nb-NO", "subject").startswith("Morsdag")
    assert "Mother's Day" in rendered("holidays", "holiday_gift_guide", "en", "subject")
    assert "8. februar 2026" in rendered("holidays", "holiday_gift_guide", "nb-NO", "text")
    assert "Trail boot" in rendered("post_purchase", "post_purchase_thanks", "en", "text")
    assert rendered("birthday", "birthday", "nb-NO", "subject") == "Gratulerer med dagen, Kari!"


def enable(h: Harness, key: str, **body: Any) -> Any:
    return h.client.post(f"/api/playbooks/{key}", json=body, headers=h.admin)


def test_every_playbook_can_be_switched_on_through_the_api(db_url: str) -> None:
    with harness(db_url, shop_name="Nordic Home", free_shipping_threshold=1500.0) as h:
        # Without its segment, a playbook says which one is missing.
        response = enable(h, "win_back", status="active")
        assert response.status_code == 422, response.text
        assert "lapsing-customers" in response.json()["error"]["message"]
        for segment in sorted(set(NEEDS_SEGMENT.values())):
            response = h.client.post(f"/api/segments/builtins/{segment}", headers=h.admin)
            assert response.status_code == 201, response.text

        for playbook in PLAYBOOKS:
            response = enable(h, playbook.key, status="active")
            assert response.status_code == 201, (playbook.key, response.text)
            assert response.json()["status"] == "active"
            assert response.json()["playbook"] == playbook.key
        listed = h.client.get("/api/playbooks", headers=h.admin).json()["playbooks"]
        assert {p["key"]: p["enabled_as"] for p in listed} == {k: k for k in IDS}
        assert enable(h, "birthday").status_code == 409  # the key is taken

        # The stored templates render for a real profile's context.
        h.send("identify", {"userId": "u-1", "context": {"locale": "nb-NO"},
                            "traits": {"email": "kari@example.no", "firstName": "Kari"},
                            "timestamp": ms_to_iso(NOW)})  # fmt: skip
        h.drain()
        profile_id = h.profile("user_id:u-1")["profile_id"]
        db, settings = h.services.db, h.services.settings
        with db.read() as conn:
            stored = {
                key: {
                    channel: template_store.get_variants(conn, key, channel) for channel in channels
                }
                for playbook in PLAYBOOKS
                for key, channels in playbook.templates.items()
            }

            def context(locale: str) -> dict[str, Any]:
                out = message_context(
                    conn, profile_id, settings=settings, variables={}, now_ms=NOW, channel="email"
                )
                return {**out, "locale": locale, "unsubscribe_url": "https://sk.example/u/x"}

            out = render_all(stored, context)
        assert out[("birthday", "email", "nb-NO")]["subject"] == "Gratulerer med dagen, Kari!"
