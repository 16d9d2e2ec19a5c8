"""Pieces the playbooks' templates share, in English (the default variant "") and
Norwegian ("nb"): an email's frame and footer, the product that triggered a message
(with "only N left" when stock is low), recommendations, the coupon, the cart, the
free-shipping line, and pushes, SMS and in-app messages. Templates are Jinja sources
(see messaging/content.py for what they see); a shop edits them once enabled."""

from __future__ import annotations

from collections.abc import Mapping

Parts = dict[str, str]
# channel -> locale -> parts
Channels = dict[str, dict[str, Parts]]

LOCALES = ("", "nb")
# Below this many in stock, a product says how many are left.
LOW_STOCK = 5

HELLO = {
    "": "Hi {{ profile.first_name or 'there' }},",
    "nb": "Hei{{ ' ' ~ profile.first_name if profile.first_name else '' }},",
}
_UNSUBSCRIBE = {"": "Unsubscribe", "nb": "Meld deg av"}
_ONLY_LEFT = {"": "Only {n} left", "nb": "Bare {n} igjen"}


def _low_stock(item: str, locale: str) -> str:
    """ "Only 3 left" for an item whose stock is known and low."""
    count = "{{ " + item + ".stock_quantity }}"
    return (
        "{% if " + item + " and " + item + ".stock_quantity is number and 0 < "
        + item + ".stock_quantity <= " + str(LOW_STOCK) + " %}"
        + _ONLY_LEFT[locale].format(n=count)
        + "{% endif %}"
    )  # fmt: skip


def email(locale: str, subject: str, html: str, text: str) -> Parts:
    """An email: the body in a frame, with the unsubscribe link in the footer."""
    label = _UNSUBSCRIBE[locale]
    footer = (
        '<p style="font-size:12px;color:#777">{{ shop.name }} · '
        f'<a href="{{{{ unsubscribe_url }}}}">{label}</a></p>'
    )
    return {
        "subject": subject,
        "html": f"<html><body>{html}{footer}</body></html>",
        "text": f"{text}\n\n{label}: {{{{ unsubscribe_url }}}}\n",
    }


def button(label: str, target: str = "shop.url") -> str:
    """A link button to a shop page (a Jinja expression: shop.url ~ '/cart')."""
    return (
        f'<p><a href="{{{{ link({target}) }}}}" style="background:#222;color:#fff;'
        f'padding:10px 18px;text-decoration:none">{label}</a></p>'
    )


def product_html(locale: str) -> str:
    """The product that triggered the message (back in stock, viewed...)."""
    return (
        "{% if product %}<p>"
        '<a href="{{ link(product.url or shop.url) }}">'
        '{% if product.image_url %}<img src="{{ product.image_url }}" alt="" width="240"><br>'
        "{% endif %}<strong>{{ product.name }}</strong></a><br>"
        "{{ product.price | money(product.currency) }} "
        f"<em>{_low_stock('product', locale)}</em></p>{{% endif %}}"
    )


def product_text(locale: str) -> str:
    return (
        "{% if product %}{{ product.name }}: {{ product.price | money(product.currency) }} "
        f"{_low_stock('product', locale)}\n{{{{ link(product.url or shop.url) }}}}\n{{% endif %}}"
    )


def picks_html(locale: str) -> str:
    """Recommended products: popular in the category the person cares about."""
    return (
        '{% if recommendations %}<table role="presentation" cellpadding="6"><tr>'
        '{% for p in recommendations %}<td valign="top" width="25%">'
        '<a href="{{ link(p.url or shop.url) }}">'
        '{% if p.image_url %}<img src="{{ p.image_url }}" alt="" width="120"><br>{% endif %}'
        "{{ p.name }}</a><br>{{ p.price | money(p.currency) }}"
        f"<br><em>{_low_stock('p', locale)}</em></td>"
        "{% endfor %}</tr></table>{% endif %}"
    )


def picks_text(locale: str) -> str:
    return (
        "{% for p in recommendations %}- {{ p.name }} {{ p.price | money(p.currency) }} "
        f"{_low_stock('p', locale)} {{{{ link(p.url or shop.url) }}}}\n{{% endfor %}}"
    )


COUPON_HTML = {
    "": (
        "{% if coupon %}<p>Your code <strong>{{ coupon.code }}</strong>"
        "{% if coupon.discount %} gives you {{ coupon.discount }} off{% endif %}"
        "{% if coupon.expires_at %}, until {{ coupon.expires_at | date }}{% endif %}."
        "</p>{% endif %}"
    ),
    "nb": (
        "{% if coupon %}<p>Koden din <strong>{{ coupon.code }}</strong>"
        "{% if coupon.discount %} gir deg {{ coupon.discount }} rabatt{% endif %}"
        "{% if coupon.expires_at %}, til {{ coupon.expires_at | date }}{% endif %}."
        "</p>{% endif %}"
    ),
}
COUPON_TEXT = {
    "": (
        "{% if coupon %}Your code: {{ coupon.code }}"
        "{% if coupon.discount %} ({{ coupon.discount }} off){% endif %}"
        "{% if coupon.expires_at %}, until {{ coupon.expires_at | date }}{% endif %}\n{% endif %}"
    ),
    "nb": (
        "{% if coupon %}Koden din: {{ coupon.code }}"
        "{% if coupon.discount %} ({{ coupon.discount }} rabatt){% endif %}"
        "{% if coupon.expires_at %}, til {{ coupon.expires_at | date }}{% endif %}\n{% endif %}"
    ),
}

CART_HTML = (
    '{% if cart %}<table role="presentation" cellpadding="6">{% for item in cart %}<tr>'
    '<td>{% if item.image_url %}<img src="{{ item.image_url }}" alt="" width="80">{% endif %}'
    '</td><td><a href="{{ link(item.url or shop.url) }}">{{ item.name or item.product_id }}'
    "</a><br>{{ item.quantity }} &times; {{ item.price | money(item.currency) }}</td></tr>"
    "{% endfor %}</table><p><strong>{{ cart_total | money(cart_currency) }}</strong></p>"
    "{% endif %}"
)
CART_TEXT = (
    "{% for item in cart %}- {{ item.name or item.product_id }}: {{ item.quantity }} x "
    "{{ item.price | money(item.currency) }}\n{% endfor %}"
    "{% if cart %}= {{ cart_total | money(cart_currency) }}\n{% endif %}"
)

# What the order that entered the journey held (the Order Completed's products).
ORDER_HTML = (
    "{% for p in variables.entry.products %}{% if p.name %}<p>"
    '<a href="{{ link(p.url or shop.url) }}">{{ p.name }}</a>'
    "{% if p.quantity %} &times; {{ p.quantity }}{% endif %}</p>{% endif %}{% endfor %}"
)
ORDER_TEXT = (
    "{% for p in variables.entry.products %}{% if p.name %}- {{ p.name }}"
    "{% if p.quantity %} x {{ p.quantity }}{% endif %}\n{% endif %}{% endfor %}"
)

FREE_SHIPPING = {
    "": (
        "{% if free_shipping and not free_shipping.reached %}Add "
        "{{ free_shipping.remaining | money(free_shipping.currency) }} more and shipping "
        "is free.{% elif free_shipping %}Your order ships free.{% else %}Your cart is "
        "waiting.{% endif %}"
    ),
    "nb": (
        "{% if free_shipping and not free_shipping.reached %}Handle for "
        "{{ free_shipping.remaining | money(free_shipping.currency) }} til, så er frakten "
        "gratis.{% elif free_shipping %}Bestillingen din sendes fraktfritt.{% else %}"
        "Handlekurven din venter.{% endif %}"
    ),
}


def push(title: str, body: str, url: str = "{{ link(shop.url) }}") -> Parts:
    return {"title": title, "body": body, "url": url}


def sms(body: str) -> Parts:
    return {"body": "{{ shop.name }}: " + body}


def short(
    titles: Mapping[str, str],
    bodies: Mapping[str, str],
    url: str = "{{ link(shop.url) }}",
    channels: tuple[str, ...] = ("mobile_push", "web_push", "sms"),
) -> Channels:
    """Push, SMS and in-app variants of one short message in every locale (SMS: the
    body and the link)."""
    out: Channels = {}
    for channel in channels:
        if channel == "sms":
            out[channel] = {loc: sms(bodies[loc] + " " + url) for loc in LOCALES}
        else:
            out[channel] = {loc: push(titles[loc], bodies[loc], url) for loc in LOCALES}
    return out
