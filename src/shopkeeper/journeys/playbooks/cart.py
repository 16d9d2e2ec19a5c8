"""The abandoned-cart playbook: reminders 1 hour, 24 hours and 72 hours after a cart
is left, the discount only in the last, and no more reminders once the person buys."""

from __future__ import annotations

ABANDONED_CART_NAME = "Abandoned cart"
ABANDONED_CART_DESCRIPTION = (
    "An hour after someone leaves a full cart, remind them of what is in it; again after "
    "a day; after three days with a unique discount code. Stops the moment they buy. A "
    "tenth of shoppers get nothing, so you can see how much the reminders bring back."
)

ABANDONED_CART = """\
name: Abandoned cart
description: >-
  Reminders at 1 hour, 24 hours and 72 hours after a cart is left, with a unique
  discount code only in the last one. Stops as soon as the person buys.
entry:
  event: Product Added
  dedupe: cart_id
reentry: every_time
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
  - id: cart_still_full
    type: condition
    condition: cart_items_count >= 1
    then: next
    else: end
  - id: first_reminder
    type: send
    channel: best
    fallback: [email, mobile_push, web_push, sms]
    template: cart_reminder
  - id: wait_1d
    type: wait
    duration: 23h
  - id: still_full_1d
    type: condition
    condition: cart_items_count >= 1
    then: next
    else: end
  - id: second_reminder
    type: send
    channel: best
    fallback: [email, mobile_push, web_push, sms]
    template: cart_reminder_2
  - id: wait_3d
    type: wait
    duration: 2d
  - id: still_full_3d
    type: condition
    condition: cart_items_count >= 1
    then: next
    else: end
  - id: discount
    type: coupon
    pool: cart-reminder
  - id: last_reminder
    type: send
    channel: best
    fallback: [email, mobile_push, web_push, sms]
    template: cart_reminder_3
"""

_ITEMS_HTML = """\
<table role="presentation" cellpadding="6">
{% for item in cart %}<tr>
<td>{% if item.image_url %}<img src="{{ item.image_url }}" alt="" width="80">{% endif %}</td>
<td><a href="{{ link(item.url or shop.url) }}">{{ item.name or item.product_id }}</a><br>
{{ item.quantity }} &times; {{ item.price | money(item.currency) }}</td>
</tr>{% endfor %}
</table>
<p><strong>{{ cart_total | money(cart_currency) }}</strong></p>"""

_ITEMS_TEXT = """\
{% for item in cart %}- {{ item.name or item.product_id }}: {{ item.quantity }} x \
{{ item.price | money(item.currency) }}
{% endfor %}= {{ cart_total | money(cart_currency) }}"""

_FOOTER_HTML = """\
<p style="font-size:12px;color:#777">{{ shop.name }} ·
<a href="{{ unsubscribe_url }}">{{ unsubscribe_label }}</a></p>"""


def _email(
    subject: str, intro: str, button: str, unsubscribe: str, extra: str = ""
) -> dict[str, str]:
    html = (
        f"<html><body><p>{intro}</p>{_ITEMS_HTML}{extra}"
        f"<p><a href=\"{{{{ link(shop.url ~ '/cart') }}}}\">{button}</a></p>"
        + _FOOTER_HTML.replace("{{ unsubscribe_label }}", unsubscribe)
        + "</body></html>"
    )
    coupon = (
        "{% if coupon %}\n{{ coupon.code }} ({{ coupon.discount }})\n{% endif %}" if extra else ""
    )
    text = (
        f"{intro}\n\n{_ITEMS_TEXT}\n{coupon}\n"
        f"{button}: {{{{ link(shop.url ~ '/cart') }}}}\n\n"
        f"{unsubscribe}: {{{{ unsubscribe_url }}}}\n"
    )
    return {"subject": subject, "html": html, "text": text}


_COUPON_EN = (
    "{% if coupon %}<p>Here is {{ coupon.discount }} off with the code "
    "<strong>{{ coupon.code }}</strong>"
    "{% if coupon.expires_at %}, until {{ coupon.expires_at | date }}{% endif %}.</p>{% endif %}"
)
_COUPON_NB = (
    "{% if coupon %}<p>Her er {{ coupon.discount }} rabatt med koden "
    "<strong>{{ coupon.code }}</strong>"
    "{% if coupon.expires_at %}, til {{ coupon.expires_at | date }}{% endif %}.</p>{% endif %}"
)
_COUPON_DE = (
    "{% if coupon %}<p>Mit dem Code <strong>{{ coupon.code }}</strong> sparen Sie "
    "{{ coupon.discount }}"
    "{% if coupon.expires_at %}, gültig bis {{ coupon.expires_at | date }}{% endif %}."
    "</p>{% endif %}"
)

_HELLO_EN = "Hi {{ profile.first_name or 'there' }},"
_HELLO_NB = "Hei {{ profile.first_name or '' }},"
_HELLO_DE = "Hallo {{ profile.first_name or '' }},"

_PUSH = {
    "": {
        "title": "Still thinking it over?",
        "body": "{{ cart | length }} item(s) are waiting in your cart.",
        "url": "{{ link(shop.url ~ '/cart') }}",
    },
    "nb": {
        "title": "Fortsatt i tankene?",
        "body": "{{ cart | length }} vare(r) venter i handlekurven din.",
        "url": "{{ link(shop.url ~ '/cart') }}",
    },
}
_SMS = {
    "": {"body": "{{ shop.name }}: your cart is waiting: {{ link(shop.url ~ '/cart') }}"},
    "nb": {"body": "{{ shop.name }}: handlekurven din venter: {{ link(shop.url ~ '/cart') }}"},
}

_PUSH_CODE = {
    "": {
        "title": "{{ coupon.discount if coupon else 'A treat' }} for your cart",
        "body": "Use {{ coupon.code if coupon else 'your code' }} before it expires.",
        "url": "{{ link(shop.url ~ '/cart') }}",
    },
    "nb": {
        "title": "{{ coupon.discount if coupon else 'Litt ekstra' }} på handlekurven",
        "body": "Bruk {{ coupon.code if coupon else 'koden din' }} før den utløper.",
        "url": "{{ link(shop.url ~ '/cart') }}",
    },
}

CART_TEMPLATES = {
    "cart_reminder": {
        "email": {
            "": _email(
                "You left something in your cart",
                f"{_HELLO_EN} you left these in your cart at {{{{ shop.name }}}}:",
                "Back to my cart",
                "Unsubscribe",
            ),
            "nb": _email(
                "Du har glemt noe i handlekurven",
                f"{_HELLO_NB} du la igjen dette i handlekurven hos {{{{ shop.name }}}}:",
                "Tilbake til handlekurven",
                "Meld deg av",
            ),
            "de": _email(
                "Sie haben etwas im Warenkorb vergessen",
                f"{_HELLO_DE} diese Artikel liegen noch in Ihrem Warenkorb "
                "bei {{ shop.name }}:",
                "Zum Warenkorb",
                "Abmelden",
            ),
        },
        "mobile_push": _PUSH,
        "web_push": _PUSH,
        "sms": _SMS,
    },
    "cart_reminder_2": {
        "email": {
            "": _email(
                "Your cart is still waiting",
                f"{_HELLO_EN} your cart is saved, but we cannot hold it for ever:",
                "Complete my order",
                "Unsubscribe",
            ),
            "nb": _email(
                "Handlekurven din venter fortsatt",
                f"{_HELLO_NB} handlekurven din er lagret, men vi kan ikke holde av varene lenge:",
                "Fullfør bestillingen",
                "Meld deg av",
            ),
            "de": _email(
                "Ihr Warenkorb wartet noch",
                f"{_HELLO_DE} Ihr Warenkorb ist gespeichert, aber nicht für immer:",
                "Bestellung abschließen",
                "Abmelden",
            ),
        },
        "mobile_push": _PUSH,
        "web_push": _PUSH,
        "sms": _SMS,
    },
    "cart_reminder_3": {
        "email": {
            "": _email(
                "A little something to help you decide",
                f"{_HELLO_EN} still thinking about these?",
                "Use my discount",
                "Unsubscribe",
                _COUPON_EN,
            ),
            "nb": _email(
                "Litt hjelp til å bestemme deg",
                f"{_HELLO_NB} tenker du fortsatt på disse?",
                "Bruk rabatten",
                "Meld deg av",
                _COUPON_NB,
            ),
            "de": _email(
                "Eine kleine Entscheidungshilfe",
                f"{_HELLO_DE} denken Sie noch über diese Artikel nach?",
                "Rabatt einlösen",
                "Abmelden",
                _COUPON_DE,
            ),
        },
        "mobile_push": _PUSH_CODE,
        "web_push": _PUSH_CODE,
        "sms": {
            "": {
                "body": "{{ shop.name }}: {{ coupon.discount if coupon else '' }} off your cart "
                "with {{ coupon.code if coupon else '' }}: {{ link(shop.url ~ '/cart') }}"
            },
            "nb": {
                "body": "{{ shop.name }}: {{ coupon.discount if coupon else '' }} rabatt med "
                "{{ coupon.code if coupon else '' }}: {{ link(shop.url ~ '/cart') }}"
            },
        },
    },
}
