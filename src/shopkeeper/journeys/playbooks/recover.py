"""Playbooks that recover sales about to be lost: abandoned checkouts, browsing without
buying, almost-buyers, and the free-shipping nudge."""

from __future__ import annotations

from shopkeeper.journeys.playbooks import parts as p
from shopkeeper.journeys.playbooks.parts import HELLO, Channels

_FALLBACK = "[email, mobile_push, web_push, sms]"

# -- abandoned checkout -------------------------------------------------------------------

ABANDONED_CHECKOUT_NAME = "Abandoned checkout"
ABANDONED_CHECKOUT_DESCRIPTION = (
    "An hour after someone starts a checkout without finishing it, remind them of their "
    "order; a day later, once more with a unique discount code. Stops the moment they "
    "buy. A tenth get nothing, so you can measure what the reminders bring back."
)
ABANDONED_CHECKOUT = f"""\
name: Abandoned checkout
description: >-
  A reminder an hour after a checkout is started and not finished, and a last one with
  a unique discount code a day later. Stops as soon as the person buys.
entry:
  event: Checkout Started
reentry:
  mode: cooldown
  cooldown: 3d
holdout: 0.1
exit_on:
  - event: Order Completed
goal:
  event: Order Completed
  within: 7d
steps:
  - id: wait_1h
    type: wait
    duration: 1h
  - id: still_open
    type: condition
    condition: checkout_started_at is set
    then: next
    else: end
  - id: reminder
    type: send
    channel: best
    fallback: {_FALLBACK}
    template: checkout_reminder
  - id: wait_1d
    type: wait
    duration: 23h
  - id: still_open_1d
    type: condition
    condition: checkout_started_at is set
    then: next
    else: end
  - id: discount
    type: coupon
    pool: checkout-reminder
  - id: last_reminder
    type: send
    channel: best
    fallback: {_FALLBACK}
    template: checkout_reminder_2
"""

_CHECKOUT = "shop.url ~ '/checkout'"


def _checkout_email(locale: str, subject: str, intro: str, cta: str, coupon: bool) -> p.Parts:
    extra_html = p.COUPON_HTML[locale] if coupon else ""
    extra_text = p.COUPON_TEXT[locale] if coupon else ""
    return p.email(
        locale,
        subject,
        f"<p>{HELLO[locale]} {intro}</p>{p.CART_HTML}{extra_html}{p.button(cta, _CHECKOUT)}",
        f"{HELLO[locale]} {intro}\n\n{p.CART_TEXT}{extra_text}\n{cta}: {{{{ link({_CHECKOUT}) }}}}",
    )


_CHECKOUT_URL = "{{ link(shop.url ~ '/checkout') }}"

CHECKOUT_TEMPLATES: dict[str, Channels] = {
    "checkout_reminder": {
        "email": {
            "": _checkout_email(
                "", "Your order is almost done", "you were nearly there:", "Finish my order", False
            ),
            "nb": _checkout_email(
                "nb",
                "Bestillingen din er nesten ferdig",
                "du var nesten i mål:",
                "Fullfør bestillingen",
                False,
            ),
        },
        **p.short(
            {"": "Almost there", "nb": "Nesten i mål"},
            {"": "Your order is waiting to be finished.", "nb": "Bestillingen din venter."},
            _CHECKOUT_URL,
        ),
    },
    "checkout_reminder_2": {
        "email": {
            "": _checkout_email(
                "", "A discount to finish your order", "here is a little help:", "Use my code", True
            ),
            "nb": _checkout_email(
                "nb",
                "En rabatt til bestillingen din",
                "her er litt hjelp på veien:",
                "Bruk koden",
                True,
            ),
        },
        **p.short(
            {"": "A discount for your order", "nb": "Rabatt på bestillingen"},
            {
                "": "Use {{ coupon.code if coupon else 'your code' }} to finish your order.",
                "nb": "Bruk {{ coupon.code if coupon else 'koden' }} og fullfør bestillingen.",
            },
            _CHECKOUT_URL,
        ),
    },
}

# -- browse abandonment -------------------------------------------------------------------

BROWSE_NAME = "Browse abandonment"
BROWSE_DESCRIPTION = (
    "Someone looked at a product and did not put anything in the cart within 4 hours: "
    "show them that product again with a few others like it. At most once every 3 days "
    "per person; stops if they add to the cart or buy."
)
BROWSE = f"""\
name: Browse abandonment
description: >-
  4 hours after a product view with nothing added to the cart, the product again with
  similar picks. At most once every 3 days per person.
entry:
  event: Product Viewed
  where: product_id is set
reentry:
  mode: cooldown
  cooldown: 3d
holdout: 0.1
exit_on:
  - event: Order Completed
goal:
  event: Order Completed
  within: 7d
steps:
  - id: added_to_cart
    type: wait_for
    event: Product Added
    timeout: 4h
    then: end
    else: next
  - id: cart_empty
    type: condition
    condition: cart is empty
    then: next
    else: end
  - id: reminder
    type: send
    channel: best
    fallback: {_FALLBACK}
    template: browse_reminder
"""

_PRODUCT_URL = "{{ link(product.url or shop.url) if product else link(shop.url) }}"

BROWSE_TEMPLATES: dict[str, Channels] = {
    "browse_reminder": {
        "email": {
            "": p.email(
                "",
                "Still thinking about {{ product.name if product else 'it' }}?",
                f"<p>{HELLO['']} this caught your eye:</p>{p.product_html('')}"
                f"<p>You might also like:</p>{p.picks_html('')}",
                f"{HELLO['']} this caught your eye:\n{p.product_text('')}\n"
                f"You might also like:\n{p.picks_text('')}",
            ),
            "nb": p.email(
                "nb",
                "Tenker du fortsatt på {{ product.name if product else 'den' }}?",
                f"<p>{HELLO['nb']} denne fanget interessen din:</p>{p.product_html('nb')}"
                f"<p>Kanskje du også liker:</p>{p.picks_html('nb')}",
                f"{HELLO['nb']} denne fanget interessen din:\n{p.product_text('nb')}\n"
                f"Kanskje du også liker:\n{p.picks_text('nb')}",
            ),
        },
        **p.short(
            {"": "Still thinking about it?", "nb": "Fortsatt i tankene?"},
            {
                "": "{{ product.name if product else 'Your find' }} is waiting for you.",
                "nb": "{{ product.name if product else 'Funnet ditt' }} venter på deg.",
            },
            _PRODUCT_URL,
        ),
    }
}

# -- almost-buyers ------------------------------------------------------------------------

ALMOST_BUYERS_NAME = "Almost-buyers"
ALMOST_BUYERS_DESCRIPTION = (
    "People who keep looking (or have a wishlist) but do not buy get a unique promo "
    'code, with "only N left" on products that are nearly sold out. Needs the built-in '
    'segment "almost-buyers": enable it under Segments first. At most once a month per '
    "person."
)
ALMOST_BUYERS = f"""\
name: Almost-buyers
description: >-
  A promo code, with "only N left" on nearly sold-out products, for people who entered
  the built-in segment almost-buyers (enable it first).
entry:
  segment: almost-buyers
reentry:
  mode: cooldown
  cooldown: 30d
holdout: 0.1
exit_on:
  - event: Order Completed
goal:
  event: Order Completed
  within: 14d
steps:
  - id: promo
    type: coupon
    pool: almost-buyers
  - id: nudge
    type: send
    channel: best
    fallback: {_FALLBACK}
    template: almost_buyers
"""

_WISHLIST_HTML = {
    "": "{% if profile.computed.wishlist %}<p>Still on your wishlist:</p>",
    "nb": "{% if profile.computed.wishlist %}<p>Fortsatt på ønskelisten din:</p>",
}
_WISHLIST_ITEMS = (
    "{% for w in profile.computed.wishlist %}{% if w.name %}<p>"
    '<a href="{{ link(w.url or shop.url) }}">{{ w.name }}</a> '
    "{{ w.price | money(w.currency) }}</p>{% endif %}{% endfor %}{% endif %}"
)

ALMOST_BUYERS_TEMPLATES: dict[str, Channels] = {
    "almost_buyers": {
        "email": {
            "": p.email(
                "",
                "Something for you to decide on",
                f"<p>{HELLO['']} we saw you looking around. Here is a little push:</p>"
                f"{p.COUPON_HTML['']}{_WISHLIST_HTML['']}{_WISHLIST_ITEMS}"
                f"<p>Popular right now:</p>{p.picks_html('')}{p.button('Shop now')}",
                f"{HELLO['']} we saw you looking around. Here is a little push:\n"
                f"{p.COUPON_TEXT['']}\nPopular right now:\n{p.picks_text('')}\n"
                "{{ link(shop.url) }}",
            ),
            "nb": p.email(
                "nb",
                "Litt hjelp til å bestemme deg",
                f"<p>{HELLO['nb']} vi så at du kikket rundt. Her er en liten dytt:</p>"
                f"{p.COUPON_HTML['nb']}{_WISHLIST_HTML['nb']}{_WISHLIST_ITEMS}"
                f"<p>Populært akkurat nå:</p>{p.picks_html('nb')}{p.button('Handle nå')}",
                f"{HELLO['nb']} vi så at du kikket rundt. Her er en liten dytt:\n"
                f"{p.COUPON_TEXT['nb']}\nPopulært akkurat nå:\n{p.picks_text('nb')}\n"
                "{{ link(shop.url) }}",
            ),
        },
        **p.short(
            {"": "A little push", "nb": "En liten dytt"},
            {
                "": "{{ coupon.discount ~ ' off' if coupon and coupon.discount else 'A treat' }}"
                " with {{ coupon.code if coupon else 'your code' }}.",
                "nb": "{{ coupon.discount ~ ' rabatt' if coupon and coupon.discount else "
                "'En godbit' }} med {{ coupon.code if coupon else 'koden din' }}.",
            },
        ),
    }
}

# -- free-shipping nudge ------------------------------------------------------------------

FREE_SHIPPING_NAME = "Free-shipping nudge"
FREE_SHIPPING_DESCRIPTION = (
    "Half an hour after something goes into a cart, tell the shopper how much more "
    "gets them free shipping (the threshold is the free_shipping_threshold setting). "
    "Once per cart; stops when they buy."
)
FREE_SHIPPING = """\
name: Free-shipping nudge
description: >-
  "Add X more for free shipping" half an hour after a product goes into the cart, once
  per cart, unless the person has bought.
entry:
  event: Product Added
  dedupe: cart_id
reentry: every_time
exit_on:
  - event: Order Completed
goal:
  event: Order Completed
  within: 3d
steps:
  - id: wait_30m
    type: wait
    duration: 30m
  - id: cart_still_full
    type: condition
    condition: cart_items_count >= 1
    then: next
    else: end
  - id: nudge
    type: send
    channel: best
    fallback: [mobile_push, web_push, email]
    template: free_shipping_nudge
"""

_CART_URL = "{{ link(shop.url ~ '/cart') }}"
_COMPLETE = {"": "These would complete it nicely:", "nb": "Disse passer godt til:"}

FREE_SHIPPING_TEMPLATES: dict[str, Channels] = {
    "free_shipping_nudge": {
        "email": {
            locale: p.email(
                locale,
                {"": "Free shipping is close", "nb": "Gratis frakt er nær"}[locale],
                f"<p>{HELLO[locale]} {p.FREE_SHIPPING[locale]}</p>{p.CART_HTML}"
                f"<p>{_COMPLETE[locale]}</p>"
                f"{p.picks_html(locale)}"
                + p.button(
                    {"": "Go to my cart", "nb": "Til handlekurven"}[locale], "shop.url ~ '/cart'"
                ),
                f"{HELLO[locale]} {p.FREE_SHIPPING[locale]}\n\n{p.CART_TEXT}\n{_CART_URL}",
            )
            for locale in p.LOCALES
        },
        **p.short(
            {"": "Free shipping is close", "nb": "Gratis frakt er nær"},
            p.FREE_SHIPPING,
            _CART_URL,
            ("mobile_push", "web_push"),
        ),
    }
}
