"""One planned activity of a person, rendered: an online visit (browse, research, sign-up,
purchase), a CRM record, a POS order, or what happens to an order later (cancellation,
refund, review) and unsubscribing. Each returns the follow-ups it schedules. Pure.
"""

from __future__ import annotations

import random
from typing import Any

from shopkeeper.demo import model as m
from shopkeeper.demo.emit import Emitter
from shopkeeper.demo.people import STORE, Device, Person, new_id
from shopkeeper.demo.sessions import SHOP_NAME, Visit
from shopkeeper.timeutil import ms_to_iso

FollowUps = list[tuple[int, str, dict[str, Any]]]

_POS_LIBRARY = {"name": "pos-sync", "version": "2.4.0"}
_CRM_LIBRARY = {"name": "crm-sync", "version": "1.9.3"}
_TIERS = ("bronze", "silver", "gold", "platinum")
_STORE_PAYMENTS = {
    "TH": ("card", "cash", "promptpay"),
    "CN": ("alipay", "wechat_pay", "card"),
    "NO": ("card", "vipps"),
    "*": ("card", "cash", "apple_pay"),
}
_REVIEWS = (
    "Exactly as pictured.",
    "Good quality for the price.",
    "Arrived quickly.",
    "The colour is a bit different from the photo.",
    "Love it!",
)


def _pick_device(rng: random.Random, person: Person, details: dict[str, Any]) -> Device:
    index = details.get("device")
    if isinstance(index, int) and index < len(person.devices):
        return person.devices[index]
    if len(person.devices) == 1 or rng.random() < 0.55:
        return person.devices[0]
    return rng.choice(person.devices[1:])


def _open_visit(em: Emitter, person: Person, details: dict[str, Any], at_ms: int) -> Visit:
    rng = em.rng
    device = _pick_device(rng, person, details)
    if device.kind == "web" and rng.random() < em.params.cookie_reset:
        # Cleared cookies: a new anonymous id, logged out.
        device.anonymous_id = new_id(rng)
        device.truth_key = device.anonymous_id
        device.logged_in = False
    visit = Visit(em, person, device, at_ms)
    visit.start()
    if (
        person.signed_up
        and not device.logged_in
        and (device.kind == "app" or details.get("login") or rng.random() < em.params.login_chance)
    ):
        visit.log_in()
    return visit


def _look_around(visit: Visit, favourite: int | None, views_mean: float) -> list[int]:
    rng = visit.rng
    if rng.random() < 0.35:
        visit.search(favourite)
    if rng.random() < 0.6:
        visit.product_list(favourite, filtered=rng.random() < 0.45)
    viewed = []
    for _ in range(1 + m.poisson(rng, views_mean)):
        index = visit.choose_product(favourite)
        visit.product_view(index)
        viewed.append(index)
    return viewed


def browse(em: Emitter, person: Person, details: dict[str, Any], at_ms: int) -> FollowUps:
    """A visit that looks around and may leave a cart behind (or get as far as paying)."""
    rng = em.rng
    visit = _open_visit(em, person, details, at_ms)
    favourite = details.get("favourite")
    viewed = _look_around(visit, favourite, 1.6 if favourite is None else 2.5)
    sold_out = [i for i in viewed if not em.catalog.in_stock(i)]
    if rng.random() < 0.06 or (sold_out and rng.random() < 0.35):
        visit.wishlist(sold_out[0] if sold_out else viewed[-1])
    if rng.random() >= person.cart_rate * em.params.cart_factor:
        return []
    for index in viewed[-2:] if rng.random() < 0.3 else viewed[-1:]:
        visit.add_to_cart(index)
    if not visit.cart:
        return []
    if len(visit.cart) > 1 and rng.random() < 0.15:
        visit.remove_from_cart()
    stage = rng.random()
    if stage < 0.55 or not visit.cart:
        return []
    visit.view_cart()
    if stage < 0.75:
        return []
    if not visit.device.logged_in:
        if not person.signed_up:
            return []  # the log-in wall: browsers without an account stop here
        visit.log_in()
    visit.checkout("started" if stage < 0.9 else "payment")
    return []


def signup(em: Emitter, person: Person, details: dict[str, Any], at_ms: int) -> FollowUps:
    visit = _open_visit(em, person, details, at_ms)
    viewed = _look_around(visit, None, 0.8)
    if not person.signed_up:
        visit.sign_up()
    if em.rng.random() < 0.3:
        visit.wishlist(viewed[-1])
    return []


def purchase(em: Emitter, person: Person, details: dict[str, Any], at_ms: int) -> FollowUps:
    rng = em.rng
    visit = _open_visit(em, person, details, at_ms)
    favourite = details.get("favourite", 0)
    viewed = _look_around(visit, favourite, 2.0)
    wanted = 1 + (rng.random() < 0.35) + (rng.random() < 0.12)
    for index in viewed[-wanted:]:
        visit.add_to_cart(index)
    tries = 0
    while (len(visit.cart) < wanted and tries < 12) or not visit.cart:
        tries += 1
        # Sold out where they looked: in the end they take anything that is in stock.
        if tries <= 12:
            index = visit.choose_product(favourite)
        else:
            index = em.catalog.pick(rng, em.catalog.any_category(rng))
        if em.catalog.in_stock(index):
            visit.product_view(index)
            visit.add_to_cart(index)
    if len(visit.cart) > 1 and rng.random() < 0.1:
        visit.remove_from_cart()
    visit.view_cart()
    if not person.signed_up:
        visit.sign_up()  # sign-up at checkout
    elif not visit.device.logged_in:
        visit.log_in()
    order = visit.checkout(None)
    return _after_order(em, order, visit.t) if order else []


def _after_order(em: Emitter, order: dict[str, Any], at_ms: int) -> FollowUps:
    rng, params = em.rng, em.params
    follow: FollowUps = []
    if rng.random() < params.cancel_rate:
        follow.append((at_ms + int(rng.uniform(0.5, 48) * m.HOUR), m.CANCEL, {"order": order}))
    elif rng.random() < params.refund_rate:
        follow.append((at_ms + int(rng.uniform(3, 30) * m.DAY), m.REFUND, {"order": order}))
    if rng.random() < params.review_rate:
        follow.append((at_ms + int(rng.uniform(5, 20) * m.DAY), m.REVIEW, {"order": order}))
    return follow


# -- offline and server-side -------------------------------------------------------------------


def _server(
    em: Emitter, person: Person, source: str, at_ms: int, event: str, properties: dict[str, Any]
) -> None:
    """A server-side event about a known customer (the shop's back office)."""
    context = {"library": {"name": "analytics-python", "version": "2.3.3"}}
    message = {
        "type": "track",
        "event": event,
        "userId": person.user_id,
        "properties": properties,
        "context": context,
    }
    em.send(source, person, None, at_ms, message)


def cancel(em: Emitter, person: Person, details: dict[str, Any], at_ms: int) -> FollowUps:
    order = details["order"]
    order["cancelled"] = True
    em.truth.orders_cancelled += 1
    _server(
        em,
        person,
        order["source"],
        at_ms,
        "Order Cancelled",
        {
            "order_id": order["order_id"],
            "total": order["total"],
            "currency": order["currency"],
            "reason": "customer request",
        },
    )
    return []


def refund(em: Emitter, person: Person, details: dict[str, Any], at_ms: int) -> FollowUps:
    order = details["order"]
    if order["cancelled"]:
        return []
    em.truth.refunds += 1
    properties: dict[str, Any] = {"order_id": order["order_id"], "currency": order["currency"]}
    lines = order["lines"]
    if len(lines) > 1 and em.rng.random() < 0.6:  # one line sent back
        line = em.rng.choice(lines)
        properties["revenue"] = round(line["price"] * line["quantity"], 2)
        properties["products"] = [line]
    _server(em, person, order["source"], at_ms, "Order Refunded", properties)
    return []


def review(em: Emitter, person: Person, details: dict[str, Any], at_ms: int) -> FollowUps:
    order = details["order"]
    if order["cancelled"]:
        return []
    line = em.rng.choice(order["lines"])
    rating = em.rng.choices((5, 4, 3, 2, 1), (50, 28, 10, 6, 6))[0]
    _server(
        em,
        person,
        "web" if order["source"] == "pos" else order["source"],
        at_ms,
        "Product Reviewed",
        {
            "product_id": line["product_id"],
            "review_id": new_id(em.rng),
            "rating": rating,
            "review_body": em.rng.choice(_REVIEWS),
        },
    )
    return []


def unsubscribe(em: Emitter, person: Person, details: dict[str, Any], at_ms: int) -> FollowUps:
    if not person.signed_up or not person.email_opt_in:
        return []
    person.email_opt_in = False
    _server(em, person, "web", at_ms, "Email Unsubscribed", {"list": "newsletter"})
    return []


def crm_record(em: Emitter, person: Person, details: dict[str, Any], at_ms: int) -> FollowUps:
    """The CRM's customer record, synced as an identify: created at the first store
    visit (store customers) or on joining the loyalty club (online customers)."""
    rng = em.rng
    tier = _TIERS[min(len(person.orders) // 2, 3)]
    traits: dict[str, Any] = {
        "loyalty_tier": tier,
        "loyalty_points": 120 * len(person.orders) + rng.randint(0, 99),
    }
    if not details.get("update"):
        em.truth.crm_records += 1
        person.crm_record = True
        traits.update(
            firstName=person.first[0],
            lastName=person.last[0],
            name=person.name,
            address={"city": person.city.local, "country": person.country.code},
            preferred_store=rng.choice(person.country.stores),
            customer_since=ms_to_iso(at_ms)[:10],
        )
        if person.kind == STORE:
            if rng.random() < 0.95:
                traits["phone"] = person.phone
                traits["sms_opt_in"] = person.sms_opt_in
            if rng.random() < 0.7:
                traits["email"] = person.email
                traits["email_opt_in"] = person.email_opt_in
            person.signed_up = True  # the loyalty account works online too
        elif rng.random() < 0.7:
            traits["phone"] = person.phone
        if person.birthday:
            traits["birthday"] = person.birthday
    context = {
        "library": _CRM_LIBRARY,
        "locale": person.country.locale,
        "externalIds": [
            {
                "id": f"CRM-{person.index:07d}",
                "type": "crm_id",
                "collection": "users",
                "encoding": "none",
            }
        ],
    }
    message = {"type": "identify", "userId": person.user_id, "traits": traits, "context": context}
    em.send("crm", person, None, at_ms, message)
    return []


def pos_order(em: Emitter, person: Person, details: dict[str, Any], at_ms: int) -> FollowUps:
    """A till receipt: the cashier scans the loyalty card (user id), or looks the customer
    up by phone or email, among what the shop already knows of them."""
    rng, country, catalog = em.rng, person.country, em.catalog
    store = rng.choice(country.stores)
    lines: list[dict[str, Any]] = []
    for _ in range(1 + (rng.random() < 0.4) + (rng.random() < 0.15)):
        index = catalog.pick(rng, rng.choice(person.categories))
        if catalog.in_stock(index) and all(
            line["product_id"] != catalog.products[index]["id"] for line in lines
        ):
            lines.append({**catalog.item(index, country), "quantity": 1})
    if not lines:
        index = catalog.pick(rng, catalog.any_category(rng))
        lines.append({**catalog.item(index, country), "quantity": 1})
    for n, line in enumerate(lines):
        line["position"] = n + 1
        line.pop("url", None)
    revenue = round(sum(line["price"] for line in lines), 2)
    tax = (
        round(revenue * 0.08, 2)
        if country.sales_tax_added
        else round(revenue - revenue / (1 + country.vat), 2)
    )
    total = round(revenue + tax, 2) if country.sales_tax_added else revenue
    order_id = em.next_order_id(f"POS-{country.code}-")
    properties = {
        "order_id": order_id,
        "affiliation": f"{SHOP_NAME} {store}",
        "store": store,
        "total": total,
        "revenue": revenue,
        "tax": tax,
        "discount": 0,
        "currency": country.currency,
        "payment_method": rng.choice(_STORE_PAYMENTS.get(country.code, _STORE_PAYMENTS["*"])),
        "products": lines,
    }
    context: dict[str, Any] = {
        "library": _POS_LIBRARY,
        "locale": country.locale,
        "timezone": person.city.timezone,
        "location": {"country": country.code, "city": person.city.name},
    }
    message: dict[str, Any] = {
        "type": "track",
        "event": "Order Completed",
        "properties": properties,
        "context": context,
    }
    roll = rng.random()
    anonymous_id = None
    if roll < 0.15 and "email" in person.known_ids:
        context["traits"] = {"email": person.email}
    elif roll < 0.4 and "phone" in person.known_ids:
        context["traits"] = {"phone": person.phone}
    else:
        message["userId"] = person.user_id
    if "userId" not in message:
        anonymous_id = f"pos-{order_id.lower()}"
    em.send("pos", person, None, at_ms, message, anonymous_id=anonymous_id)
    em.truth.orders_pos += 1
    order = {
        "order_id": order_id,
        "source": "pos",
        "device": None,
        "lines": lines,
        "revenue": revenue,
        "total": total,
        "currency": country.currency,
        "cancelled": False,
        "at": at_ms,
    }
    person.orders.append(order)
    if rng.random() < em.params.refund_rate / 2:
        return [(at_ms + int(rng.uniform(1, 14) * m.DAY), m.REFUND, {"order": order})]
    return []


RENDERERS = {
    m.BROWSE: browse,
    m.RESEARCH: browse,
    m.SIGNUP: signup,
    m.PURCHASE: purchase,
    m.POS_ORDER: pos_order,
    m.CRM_RECORD: crm_record,
    m.CANCEL: cancel,
    m.REFUND: refund,
    m.REVIEW: review,
    m.UNSUBSCRIBE: unsubscribe,
}
