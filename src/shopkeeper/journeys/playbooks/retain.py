"""Playbooks that keep customers coming back: repeat customers, post-purchase,
win-back and replenishment."""

from __future__ import annotations

from shopkeeper.journeys.playbooks import parts as p
from shopkeeper.journeys.playbooks.parts import HELLO, Channels

_FALLBACK = "[email, mobile_push, web_push]"

# -- repeat customers ---------------------------------------------------------------------

REPEAT_NAME = "Repeat customers"
REPEAT_DESCRIPTION = (
    "After an order, wait up to 30 days: if the customer buys again, thank them with a "
    "reward code; if not, send an offer with their recommended products. Once a month "
    "per customer at most."
)
REPEAT = f"""\
name: Repeat customers
description: >-
  A thank-you with a reward when a customer buys again within 30 days of an order,
  otherwise an offer with their recommendations.
entry:
  event: Order Completed
reentry:
  mode: cooldown
  cooldown: 30d
goal:
  event: Order Completed
  within: 45d
steps:
  - id: bought_again
    type: wait_for
    event: Order Completed
    timeout: 30d
    then: next
    else: offer
  - id: reward
    type: coupon
    pool: repeat-reward
  - id: thank_you
    type: send
    channel: best
    fallback: {_FALLBACK}
    template: repeat_thank_you
    next: end
  - id: offer
    type: send
    channel: best
    fallback: {_FALLBACK}
    template: repeat_offer
"""

REPEAT_TEMPLATES: dict[str, Channels] = {
    "repeat_thank_you": {
        "email": {
            "": p.email(
                "",
                "Thank you for coming back",
                f"<p>{HELLO['']} thank you for shopping with us again. Here is a reward for "
                "your next order:</p>" + p.COUPON_HTML[""] + p.button("Shop now"),
                f"{HELLO['']} thank you for shopping with us again. Here is a reward for "
                "your next order:\n" + p.COUPON_TEXT[""] + "{{ link(shop.url) }}",
            ),
            "nb": p.email(
                "nb",
                "Takk for at du kom tilbake",
                f"<p>{HELLO['nb']} takk for at du handlet hos oss igjen. Her er en belønning "
                "til neste bestilling:</p>" + p.COUPON_HTML["nb"] + p.button("Handle nå"),
                f"{HELLO['nb']} takk for at du handlet hos oss igjen. Her er en belønning "
                "til neste bestilling:\n" + p.COUPON_TEXT["nb"] + "{{ link(shop.url) }}",
            ),
        },
        **p.short(
            {"": "Thank you!", "nb": "Tusen takk!"},
            {
                "": "A reward for your next order: {{ coupon.code if coupon else '' }}",
                "nb": "En belønning til neste bestilling: {{ coupon.code if coupon else '' }}",
            },
            channels=("mobile_push", "web_push"),
        ),
    },
    "repeat_offer": {
        "email": {
            "": p.email(
                "",
                "Picked for you",
                f"<p>{HELLO['']} we picked these for you:</p>"
                + p.picks_html("")
                + p.button("See more"),
                f"{HELLO['']} we picked these for you:\n{p.picks_text('')}",
            ),
            "nb": p.email(
                "nb",
                "Utvalgt for deg",
                f"<p>{HELLO['nb']} vi har plukket ut disse til deg:</p>"
                + p.picks_html("nb")
                + p.button("Se mer"),
                f"{HELLO['nb']} vi har plukket ut disse til deg:\n{p.picks_text('nb')}",
            ),
        },
        **p.short(
            {"": "Picked for you", "nb": "Utvalgt for deg"},
            {"": "New favourites at {{ shop.name }}", "nb": "Nye favoritter hos {{ shop.name }}"},
            channels=("mobile_push", "web_push"),
        ),
    },
}

# -- post-purchase ------------------------------------------------------------------------

POST_PURCHASE_NAME = "Post-purchase"
POST_PURCHASE_DESCRIPTION = (
    "After each order: a thank-you right away, a request for a review a week later "
    "(about when the order has arrived; change the wait to your delivery time), and "
    "products that go well with it a week after that."
)
POST_PURCHASE = f"""\
name: Post-purchase
description: >-
  A thank-you after each order, a review request a week later and a cross-sell a week
  after that.
entry:
  event: Order Completed
  dedupe: order_id
reentry: every_time
max_concurrent: 3
goal:
  event: Order Completed
  within: 30d
steps:
  - id: thank_you
    type: send
    channel: email
    template: post_purchase_thanks
  - id: wait_delivery
    type: wait
    duration: 7d
  - id: review
    type: send
    channel: email
    template: post_purchase_review
  - id: wait_7d
    type: wait
    duration: 7d
  - id: cross_sell
    type: send
    channel: best
    fallback: {_FALLBACK}
    template: post_purchase_cross_sell
"""

_TOTAL = (
    "{% if variables.entry.revenue or variables.entry.total %}"
    "{{ (variables.entry.revenue or variables.entry.total) | money(variables.entry.currency) }}"
    "{% endif %}"
)

POST_PURCHASE_TEMPLATES: dict[str, Channels] = {
    "post_purchase_thanks": {
        "email": {
            "": p.email(
                "",
                "Thank you for your order",
                f"<p>{HELLO['']} thank you for your order! We are getting it ready.</p>"
                f"{p.ORDER_HTML}<p>{_TOTAL}</p>",
                f"{HELLO['']} thank you for your order! We are getting it ready.\n\n"
                f"{p.ORDER_TEXT}{_TOTAL}",
            ),
            "nb": p.email(
                "nb",
                "Takk for bestillingen",
                f"<p>{HELLO['nb']} takk for bestillingen! Vi gjør den klar.</p>"
                f"{p.ORDER_HTML}<p>{_TOTAL}</p>",
                f"{HELLO['nb']} takk for bestillingen! Vi gjør den klar.\n\n{p.ORDER_TEXT}{_TOTAL}",
            ),
        }
    },
    "post_purchase_review": {
        "email": {
            "": p.email(
                "",
                "How do you like it?",
                f"<p>{HELLO['']} we hope you are happy with your order. Would you tell "
                "other customers what you think? It takes a minute.</p>"
                + p.ORDER_HTML
                + p.button("Write a review"),
                f"{HELLO['']} we hope you are happy with your order. Would you tell other "
                "customers what you think?\n" + p.ORDER_TEXT + "{{ link(shop.url) }}",
            ),
            "nb": p.email(
                "nb",
                "Hva synes du?",
                f"<p>{HELLO['nb']} vi håper du er fornøyd med bestillingen. Vil du fortelle "
                "andre kunder hva du synes? Det tar et minutt.</p>"
                + p.ORDER_HTML
                + p.button("Skriv en anmeldelse"),
                f"{HELLO['nb']} vi håper du er fornøyd med bestillingen. Vil du fortelle "
                "andre kunder hva du synes?\n" + p.ORDER_TEXT + "{{ link(shop.url) }}",
            ),
        }
    },
    "post_purchase_cross_sell": {
        "email": {
            "": p.email(
                "",
                "Goes well with your order",
                f"<p>{HELLO['']} these go well with what you bought:</p>"
                + p.picks_html("")
                + p.button("See more"),
                f"{HELLO['']} these go well with what you bought:\n{p.picks_text('')}",
            ),
            "nb": p.email(
                "nb",
                "Passer godt til bestillingen din",
                f"<p>{HELLO['nb']} disse passer godt til det du kjøpte:</p>"
                + p.picks_html("nb")
                + p.button("Se mer"),
                f"{HELLO['nb']} disse passer godt til det du kjøpte:\n{p.picks_text('nb')}",
            ),
        },
        **p.short(
            {"": "Goes well with your order", "nb": "Passer til bestillingen din"},
            {"": "Picked to go with your order.", "nb": "Plukket ut til bestillingen din."},
            channels=("mobile_push", "web_push"),
        ),
    },
}

# -- win-back -----------------------------------------------------------------------------

WIN_BACK_NAME = "Win-back"
WIN_BACK_DESCRIPTION = (
    "Customers who have not ordered for 90 days hear what is new; a week later, if they "
    'still have not ordered, a unique discount code. Needs the built-in segment "lapsing-'
    'customers": enable it under Segments first. Once every 90 days per customer.'
)
WIN_BACK = """\
name: Win-back
description: >-
  What is new for customers entering the built-in segment lapsing-customers (enable it
  first), and a unique discount code a week later if they have not ordered.
entry:
  segment: lapsing-customers
reentry:
  mode: cooldown
  cooldown: 90d
holdout: 0.1
exit_on:
  - event: Order Completed
goal:
  event: Order Completed
  within: 30d
steps:
  - id: we_miss_you
    type: send
    channel: best
    fallback: [email, mobile_push, web_push]
    template: win_back
  - id: wait_7d
    type: wait
    duration: 7d
  - id: discount
    type: coupon
    pool: win-back
  - id: offer
    type: send
    channel: best
    fallback: [email, mobile_push, web_push, sms]
    template: win_back_offer
"""

WIN_BACK_TEMPLATES: dict[str, Channels] = {
    "win_back": {
        "email": {
            "": p.email(
                "",
                "We miss you at {{ shop.name }}",
                f"<p>{HELLO['']} it has been a while. Here is what is popular now:</p>"
                + p.picks_html("")
                + p.button("Have a look"),
                f"{HELLO['']} it has been a while. Here is what is popular now:\n"
                + p.picks_text(""),
            ),
            "nb": p.email(
                "nb",
                "Vi savner deg hos {{ shop.name }}",
                f"<p>{HELLO['nb']} det er lenge siden sist. Dette er populært nå:</p>"
                + p.picks_html("nb")
                + p.button("Ta en titt"),
                f"{HELLO['nb']} det er lenge siden sist. Dette er populært nå:\n"
                + p.picks_text("nb"),
            ),
        },
        **p.short(
            {"": "We miss you", "nb": "Vi savner deg"},
            {"": "See what is new at {{ shop.name }}.", "nb": "Se hva som er nytt hos oss."},
            channels=("mobile_push", "web_push"),
        ),
    },
    "win_back_offer": {
        "email": {
            "": p.email(
                "",
                "A welcome-back gift",
                f"<p>{HELLO['']} come back for something special:</p>"
                + p.COUPON_HTML[""]
                + p.picks_html("")
                + p.button("Use my code"),
                f"{HELLO['']} come back for something special:\n"
                + p.COUPON_TEXT[""]
                + "{{ link(shop.url) }}",
            ),
            "nb": p.email(
                "nb",
                "En velkommen-tilbake-gave",
                f"<p>{HELLO['nb']} kom tilbake for noe ekstra:</p>"
                + p.COUPON_HTML["nb"]
                + p.picks_html("nb")
                + p.button("Bruk koden"),
                f"{HELLO['nb']} kom tilbake for noe ekstra:\n"
                + p.COUPON_TEXT["nb"]
                + "{{ link(shop.url) }}",
            ),
        },
        **p.short(
            {"": "A welcome-back gift", "nb": "En gave til deg"},
            {
                "": "Use {{ coupon.code if coupon else 'your code' }} on your next order.",
                "nb": "Bruk {{ coupon.code if coupon else 'koden din' }} på neste bestilling.",
            },
        ),
    },
}

# -- replenishment ------------------------------------------------------------------------

REPLENISHMENT_NAME = "Replenishment"
REPLENISHMENT_DESCRIPTION = (
    "30 days after an order, if the customer has not ordered since, remind them to "
    "restock what they bought. Set the wait to how long your products last, and narrow "
    "the entry with a `where` on the order (for example a consumables flag) if only "
    "some products run out."
)
REPLENISHMENT = """\
name: Replenishment
description: >-
  A reminder to restock 30 days after an order, unless the customer has ordered since.
entry:
  event: Order Completed
reentry: every_time
max_concurrent: 3
goal:
  event: Order Completed
  within: 14d
steps:
  - id: wait_30d
    type: wait
    duration: 30d
  - id: not_reordered
    type: condition
    condition: last_order_at more than 29 days ago
    then: next
    else: end
  - id: reminder
    type: send
    channel: best
    fallback: [email, mobile_push, web_push, sms]
    template: replenishment
"""

REPLENISHMENT_TEMPLATES: dict[str, Channels] = {
    "replenishment": {
        "email": {
            "": p.email(
                "",
                "Time to restock?",
                f"<p>{HELLO['']} running low? Your last order had:</p>"
                + p.ORDER_HTML
                + p.button("Order again"),
                f"{HELLO['']} running low? Your last order had:\n"
                + p.ORDER_TEXT
                + "{{ link(shop.url) }}",
            ),
            "nb": p.email(
                "nb",
                "På tide å fylle på?",
                f"<p>{HELLO['nb']} begynner det å bli tomt? Sist bestilte du:</p>"
                + p.ORDER_HTML
                + p.button("Bestill igjen"),
                f"{HELLO['nb']} begynner det å bli tomt? Sist bestilte du:\n"
                + p.ORDER_TEXT
                + "{{ link(shop.url) }}",
            ),
        },
        **p.short(
            {"": "Time to restock?", "nb": "På tide å fylle på?"},
            {"": "Order your favourites again.", "nb": "Bestill favorittene dine igjen."},
        ),
    }
}
