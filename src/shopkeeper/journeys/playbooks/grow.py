"""Playbooks that turn new contacts into customers: lead nurturing after a newsletter
sign-up, and a first-purchase discount for new app users."""

from __future__ import annotations

from shopkeeper.journeys.playbooks import parts as p
from shopkeeper.journeys.playbooks.parts import HELLO, Channels

# -- lead nurturing -----------------------------------------------------------------------

LEAD_NURTURING_NAME = "Lead nurturing"
LEAD_NURTURING_DESCRIPTION = (
    "Within 24 hours of a newsletter sign-up (at the hour the person is most likely to "
    "read), a welcome; three days later the shop's bestsellers; a week in, a unique code "
    "for the first order. Stops when they buy. For a download or another lead form, "
    'change the entry event to yours (for example "Guide Downloaded").'
)
LEAD_NURTURING = """\
name: Lead nurturing
description: >-
  A welcome within 24 hours of a newsletter sign-up, bestsellers three days later and a
  first-order code after a week, unless the person has bought.
entry:
  event: Email Subscribed
reentry: once
exit_on:
  - event: Order Completed
goal:
  event: Order Completed
  within: 30d
steps:
  - id: welcome
    type: send
    channel: email
    template: lead_welcome
    send_time: best_hour
    fallback_hour: 10
  - id: wait_3d
    type: wait
    duration: 3d
  - id: bestsellers
    type: send
    channel: email
    template: lead_bestsellers
  - id: wait_4d
    type: wait
    duration: 4d
  - id: first_order_code
    type: coupon
    pool: lead-first-order
  - id: offer
    type: send
    channel: email
    template: lead_offer
"""

LEAD_TEMPLATES: dict[str, Channels] = {
    "lead_welcome": {
        "email": {
            "": p.email(
                "",
                "Thanks for signing up to {{ shop.name }}",
                f"<p>{HELLO['']} thanks for signing up! You will hear from us about new "
                "arrivals, tips and offers, never too often.</p>" + p.button("Visit the shop"),
                f"{HELLO['']} thanks for signing up! You will hear from us about new "
                "arrivals, tips and offers, never too often.\n\n{{ link(shop.url) }}",
            ),
            "nb": p.email(
                "nb",
                "Takk for at du meldte deg på hos {{ shop.name }}",
                f"<p>{HELLO['nb']} takk for at du meldte deg på! Du får høre fra oss om "
                "nyheter, tips og tilbud, aldri for ofte.</p>" + p.button("Gå til butikken"),
                f"{HELLO['nb']} takk for at du meldte deg på! Du får høre fra oss om "
                "nyheter, tips og tilbud, aldri for ofte.\n\n{{ link(shop.url) }}",
            ),
        }
    },
    "lead_bestsellers": {
        "email": {
            "": p.email(
                "",
                "Our customers' favourites",
                f"<p>{HELLO['']} these are what other customers love most:</p>"
                + p.picks_html("")
                + p.button("See more"),
                f"{HELLO['']} these are what other customers love most:\n{p.picks_text('')}",
            ),
            "nb": p.email(
                "nb",
                "Kundenes favoritter",
                f"<p>{HELLO['nb']} dette er det andre kunder liker best:</p>"
                + p.picks_html("nb")
                + p.button("Se mer"),
                f"{HELLO['nb']} dette er det andre kunder liker best:\n{p.picks_text('nb')}",
            ),
        }
    },
    "lead_offer": {
        "email": {
            "": p.email(
                "",
                "A welcome gift for your first order",
                f"<p>{HELLO['']} here is something for your first order.</p>"
                + p.COUPON_HTML[""]
                + p.picks_html("")
                + p.button("Shop now"),
                f"{HELLO['']} here is something for your first order.\n"
                + p.COUPON_TEXT[""]
                + "{{ link(shop.url) }}",
            ),
            "nb": p.email(
                "nb",
                "En velkomstgave til din første bestilling",
                f"<p>{HELLO['nb']} her er noe til din første bestilling.</p>"
                + p.COUPON_HTML["nb"]
                + p.picks_html("nb")
                + p.button("Handle nå"),
                f"{HELLO['nb']} her er noe til din første bestilling.\n"
                + p.COUPON_TEXT["nb"]
                + "{{ link(shop.url) }}",
            ),
        }
    },
}

# -- first purchase in the app ------------------------------------------------------------

APP_FIRST_PURCHASE_NAME = "First purchase in the app"
APP_FIRST_PURCHASE_DESCRIPTION = (
    "An hour after someone installs the app, if they have never bought, a unique "
    "first-purchase discount by push (or in the app, or by email); a reminder three "
    "days later. Stops when they buy."
)
APP_FIRST_PURCHASE = """\
name: First purchase in the app
description: >-
  A first-purchase discount an hour after the app is installed, for people who have
  never bought, and a reminder three days later.
entry:
  event: Application Installed
reentry: once
exit_on:
  - event: Order Completed
goal:
  event: Order Completed
  within: 14d
steps:
  - id: wait_1h
    type: wait
    duration: 1h
  - id: never_bought
    type: condition
    condition: not orders_count >= 1
    then: next
    else: end
  - id: discount
    type: coupon
    pool: app-first-order
  - id: offer
    type: send
    channel: best
    fallback: [mobile_push, in_app, email]
    template: app_first_purchase
  - id: wait_3d
    type: wait
    duration: 3d
  - id: reminder
    type: send
    channel: best
    fallback: [mobile_push, in_app, email]
    template: app_first_purchase_reminder
"""

_CODE = {
    "": "{{ coupon.code if coupon else 'your code' }}",
    "nb": "{{ coupon.code if coupon else 'koden din' }}",
}
_OFF = {
    "": "{{ coupon.discount ~ ' off' if coupon and coupon.discount else 'A gift for' }}",
    "nb": "{{ coupon.discount ~ ' rabatt' if coupon and coupon.discount else 'En gave' }}",
}


def _app(subject: dict[str, str], line: dict[str, str]) -> Channels:
    return {
        "email": {
            locale: p.email(
                locale,
                subject[locale],
                f"<p>{HELLO[locale]}</p><p>{line[locale]}</p>{p.COUPON_HTML[locale]}"
                + p.picks_html(locale)
                + p.button({"": "Open the shop", "nb": "Åpne butikken"}[locale]),
                f"{HELLO[locale]}\n\n{line[locale]}\n{p.COUPON_TEXT[locale]}"
                "{{ link(shop.url) }}",
            )
            for locale in p.LOCALES
        },
        **p.short(subject, line, channels=("mobile_push", "in_app")),
    }


APP_TEMPLATES: dict[str, Channels] = {
    "app_first_purchase": _app(
        {"": "A gift for your first order", "nb": "En gave til første bestilling"},
        {
            "": f"Welcome to the app! {_OFF['']} your first order with {_CODE['']}.",
            "nb": f"Velkommen til appen! {_OFF['nb']} på første bestilling med {_CODE['nb']}.",
        },
    ),
    "app_first_purchase_reminder": _app(
        {"": "Your first-order gift is waiting", "nb": "Gaven din venter fortsatt"},
        {
            "": f"{_OFF['']} your first order is still yours with {_CODE['']}.",
            "nb": f"{_OFF['nb']} på første bestilling er fortsatt din med {_CODE['nb']}.",
        },
    ),
}
