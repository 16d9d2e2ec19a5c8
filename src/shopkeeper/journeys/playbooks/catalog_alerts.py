"""Playbooks started by the catalog: back in stock and price drop, for the people who
viewed the product, put it on their wishlist or asked to be told."""

from __future__ import annotations

from shopkeeper.journeys.playbooks import parts as p
from shopkeeper.journeys.playbooks.parts import HELLO, Channels

_PRODUCT_URL = "{{ link(product.url or shop.url) if product else link(shop.url) }}"

BACK_IN_STOCK_NAME = "Back in stock"
BACK_IN_STOCK_DESCRIPTION = (
    "When a sold-out product is back, tell everyone who viewed it, put it on their "
    "wishlist or asked to be told in the last 30 days, on the channel they prefer, with "
    '"only N left" when few came in.'
)
BACK_IN_STOCK = """\
name: Back in stock
description: >-
  Everyone who viewed, wishlisted or asked about a product in the last 30 days hears
  when it is back in stock.
entry:
  catalog: Product Back In Stock
  viewed_within: 30d
reentry: every_time
goal:
  event: Order Completed
  within: 7d
steps:
  - id: alert
    type: send
    channel: best
    fallback: [email, mobile_push, web_push, sms]
    template: back_in_stock
"""

BACK_IN_STOCK_TEMPLATES: dict[str, Channels] = {
    "back_in_stock": {
        "email": {
            "": p.email(
                "",
                "{{ product.name if product else 'It' }} is back in stock",
                f"<p>{HELLO['']} good news: it is back.</p>{p.product_html('')}"
                + p.button("Get it now", "product.url or shop.url")
                + f"<p>You might also like:</p>{p.picks_html('')}",
                f"{HELLO['']} good news: it is back.\n\n{p.product_text('')}",
            ),
            "nb": p.email(
                "nb",
                "{{ product.name if product else 'Varen' }} er tilbake på lager",
                f"<p>{HELLO['nb']} gode nyheter: den er tilbake.</p>{p.product_html('nb')}"
                + p.button("Kjøp nå", "product.url or shop.url")
                + f"<p>Kanskje du også liker:</p>{p.picks_html('nb')}",
                f"{HELLO['nb']} gode nyheter: den er tilbake.\n\n{p.product_text('nb')}",
            ),
        },
        **p.short(
            {"": "Back in stock", "nb": "Tilbake på lager"},
            {
                "": "{{ product.name if product else 'Your find' }} is back. Be quick!",
                "nb": "{{ product.name if product else 'Varen' }} er tilbake. Vær rask!",
            },
            _PRODUCT_URL,
        ),
    }
}

PRICE_DROP_NAME = "Price drop"
PRICE_DROP_DESCRIPTION = (
    "When a product's price goes down, tell the people who viewed it or wishlisted it "
    "in the last 14 days: the old price, the new one and how much they save. At most "
    "one alert every 3 days per person."
)
PRICE_DROP = """\
name: Price drop
description: >-
  The people who viewed or wishlisted a product in the last 14 days hear when its
  price goes down, at most once every 3 days.
entry:
  catalog: Product Price Dropped
  viewed_within: 14d
reentry:
  mode: cooldown
  cooldown: 3d
goal:
  event: Order Completed
  within: 7d
steps:
  - id: alert
    type: send
    channel: best
    fallback: [email, mobile_push, web_push, sms]
    template: price_drop
"""

_OLD = "variables.entry.old_price | money(variables.entry.currency)"
_NEW = "variables.entry.new_price | money(variables.entry.currency)"
_SAVE = {
    "": (
        f"{{% if variables.entry.old_price %}}Was {{{{ {_OLD} }}}}, now {{{{ {_NEW} }}}}"
        "{% if variables.entry.drop_percent %} ({{ variables.entry.drop_percent | number }}% "
        "off){% endif %}.{% endif %}"
    ),
    "nb": (
        f"{{% if variables.entry.old_price %}}Før {{{{ {_OLD} }}}}, nå {{{{ {_NEW} }}}}"
        "{% if variables.entry.drop_percent %} ({{ variables.entry.drop_percent | number }} % "
        "lavere){% endif %}.{% endif %}"
    ),
}

PRICE_DROP_TEMPLATES: dict[str, Channels] = {
    "price_drop": {
        "email": {
            "": p.email(
                "",
                "Price drop: {{ product.name if product else 'something you liked' }}",
                f"<p>{HELLO['']} the price went down.</p><p><strong>{_SAVE['']}</strong></p>"
                + p.product_html("")
                + p.button("See it", "product.url or shop.url"),
                f"{HELLO['']} the price went down. {_SAVE['']}\n\n{p.product_text('')}",
            ),
            "nb": p.email(
                "nb",
                "Lavere pris: {{ product.name if product else 'noe du likte' }}",
                f"<p>{HELLO['nb']} prisen har gått ned.</p><p><strong>{_SAVE['nb']}</strong>"
                "</p>" + p.product_html("nb") + p.button("Se varen", "product.url or shop.url"),
                f"{HELLO['nb']} prisen har gått ned. {_SAVE['nb']}\n\n{p.product_text('nb')}",
            ),
        },
        **p.short(
            {"": "Price drop", "nb": "Lavere pris"},
            {
                "": "{{ product.name if product else 'A product you viewed' }}: " + _SAVE[""],
                "nb": "{{ product.name if product else 'En vare du så på' }}: " + _SAVE["nb"],
            },
            _PRODUCT_URL,
        ),
    }
}
