"""Visits to the online shop, rendered as Segment messages: pages (screens in the app),
searches, filters, product views, wishlists, carts, checkouts, sign-ups, log-ins and
orders, in the shapes of Segment's e-commerce spec. Pure.
"""

from __future__ import annotations

from typing import Any

from shopkeeper.demo.catalog import SHOP_URL
from shopkeeper.demo.emit import Emitter
from shopkeeper.demo.locales import ascii_slug
from shopkeeper.demo.people import Device, Person, new_id
from shopkeeper.timeutil import ms_to_iso

SHOP_NAME = "Baan Living"
_REFERRERS = {
    "TH": ("https://www.google.co.th/", "https://www.facebook.com/", "https://line.me/", ""),
    "CN": ("https://www.baidu.com/", "https://weibo.com/", "https://www.xiaohongshu.com/", ""),
    "*": ("https://www.google.com/", "https://www.facebook.com/", "https://www.instagram.com/", ""),
}
_CAMPAIGNS = (
    {"name": "new_season_living", "source": "facebook", "medium": "paid_social"},
    {"name": "bedding_sale", "source": "google", "medium": "cpc"},
    {"name": "weekly_newsletter", "source": "newsletter", "medium": "email"},
    {"name": "home_refresh", "source": "instagram", "medium": "paid_social"},
)
_SHIPPING = ("standard", "express", "click_and_collect")
_PAYMENTS = {
    "TH": ("credit_card", "promptpay", "cash_on_delivery"),
    "CN": ("alipay", "wechat_pay", "union_pay"),
    "NO": ("vipps", "credit_card", "klarna"),
    "*": ("credit_card", "paypal", "apple_pay"),
}
_COUPONS = {
    "TH": "SONGKRAN15",
    "CN": "DOUBLE11",
    "NO": "SOMMER15",
    "RO": "VARA15",
    "US": "HOLIDAY15",
}
_SIGNUP_METHODS = {
    "TH": ("email", "line", "facebook", "google"),
    "CN": ("wechat", "phone", "email"),
    "*": ("email", "google", "apple", "facebook"),
}
_SORTS = (("price", "asc"), ("price", "desc"), ("popularity", "desc"), ("newest", "desc"))


def _for(table: dict[str, Any], code: str) -> Any:
    return table.get(code, table["*"])


class Visit:
    """One visit on one device: messages at increasing times from `start_ms`."""

    def __init__(self, em: Emitter, person: Person, device: Device, start_ms: int) -> None:
        self.em = em
        self.rng = em.rng
        self.person = person
        self.device = device
        self.t = start_ms
        self.web = device.kind == "web"
        self.source = "web" if self.web else "app"
        self.country = person.country
        self.lang = self.country.locale.split("-")[0]
        self.context = device.context(self.country, person.city)
        if self.web and self.country.eu:
            # The cookie banner's answer, as Segment's consent wrapper sends it.
            self.context["consent"] = {
                "categoryPreferences": {
                    "Analytics": person.index % 5 != 0,
                    "Advertising": person.index % 3 == 0,
                }
            }
        self.page: dict[str, Any] | None = None
        self.cart: list[dict[str, Any]] = []
        self.cart_id: str | None = None

    # -- plumbing ---------------------------------------------------------------------------

    def wait(self, low: int = 4, high: int = 70) -> None:
        self.t += self.rng.randint(low * 1000, high * 1000)

    def _context(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        context = dict(self.context)
        if self.page is not None:
            context["page"] = self.page
        if extra:
            context.update(extra)
        return context

    def track(self, event: str, properties: dict[str, Any]) -> None:
        self.wait(2, 25)
        message = {
            "type": "track",
            "event": event,
            "properties": properties,
            "context": self._context(),
        }
        self.em.send(self.source, self.person, self.device, self.t, message)

    def identify(self, traits: dict[str, Any]) -> None:
        self.wait(5, 40)
        message = {"type": "identify", "traits": traits, "context": self._context()}
        self.em.send(self.source, self.person, self.device, self.t, message)

    def view(
        self, name: str, path: str, title: str, category: str | None = None, landing: bool = False
    ) -> None:
        """A page on the web, a screen in the app."""
        self.wait()
        if not self.web:
            properties: dict[str, Any] = {"name": name}
            if category:
                properties["category"] = category
            message = {
                "type": "screen",
                "name": name,
                "properties": properties,
                "context": self._context(),
            }
            self.em.send(self.source, self.person, self.device, self.t, message)
            return
        referrer = (
            self.page["url"] if self.page else self.rng.choice(_for(_REFERRERS, self.country.code))
        )
        url = f"{SHOP_URL}/{self.lang}{path}"
        self.page = {
            "path": f"/{self.lang}{path}",
            "url": url,
            "title": f"{title} | {SHOP_NAME}",
            "referrer": referrer,
            "search": "",
        }
        extra = None
        if landing and self.rng.random() < 0.2:
            extra = {"campaign": dict(self.rng.choice(_CAMPAIGNS))}
        properties = {key: self.page[key] for key in ("path", "url", "title", "referrer")}
        message = {
            "type": "page",
            "name": name,
            "properties": properties,
            "context": self._context(extra),
        }
        if category:
            message["category"] = category
            properties["category"] = category
        self.em.send(self.source, self.person, self.device, self.t, message)

    # -- the steps of a visit ---------------------------------------------------------------

    def start(self) -> None:
        if not self.web:
            if not self.device.installed:
                self.device.installed = True
                self.track("Application Installed", {"version": "4.12.0", "build": "4120"})
                if self.rng.random() < (0.5 if self.device.os_name == "iOS" else 0.75):
                    self.track("Push Notifications Enabled", {})
                    self.device.push_token = f"{self.rng.getrandbits(256):064x}"
                    self.context = self.device.context(self.country, self.person.city)
            self.track("Application Opened", {"from_background": False, "version": "4.12.0"})
        landing = self.rng.random()
        if landing < 0.55:
            self.view("Home", "/", SHOP_NAME, landing=True)
        elif landing < 0.8:
            category = self.em.catalog.categories[self.choose_category(None)].path
            self.view(
                "Category",
                f"/c/{_slug(category)}",
                category.split(" > ")[-1],
                category,
                landing=True,
            )
        else:
            self.product_view(self.choose_product(None), landing=True)

    def choose_category(self, favourite: int | None) -> int:
        rng, person = self.rng, self.person
        if favourite is not None and rng.random() < 0.8:
            return person.categories[favourite]
        if rng.random() < 0.6:
            return rng.choice(person.categories)
        return self.em.catalog.any_category(rng)

    def choose_product(self, favourite: int | None) -> int:
        return self.em.catalog.pick(self.rng, self.choose_category(favourite))

    def item(self, index: int) -> dict[str, Any]:
        return self.em.catalog.item(index, self.country)

    def product_view(self, index: int, landing: bool = False) -> None:
        item = self.item(index)
        self.view(
            "Product", f"/p/{item['product_id']}", item["name"], item["category"], landing=landing
        )
        self.track("Product Viewed", {**item, "quantity": 1})

    def search(self, favourite: int | None) -> None:
        category = self.em.catalog.categories[self.choose_category(favourite)]
        nouns = dict(zip(("en", "th", "ro", "nb", "zh"), category.noun, strict=True))
        query = nouns[self.country.language] if self.rng.random() < 0.65 else nouns["en"]
        if self.rng.random() < 0.25:
            query = (
                f"{self.rng.choice(('grey', 'oak', 'linen', 'white', 'small', 'large'))} {query}"
            )
        self.view("Search", f"/search?q={ascii_slug(query) or 'q'}", f"Search: {query}")
        self.track("Products Searched", {"query": query})

    def product_list(self, favourite: int | None, filtered: bool) -> int:
        index = self.choose_category(favourite)
        category = self.em.catalog.categories[index].path
        self.view("Category", f"/c/{_slug(category)}", category.split(" > ")[-1], category)
        shown = self.em.catalog.by_category[index][:4]
        products = [
            {"product_id": self.em.catalog.products[i]["id"], "position": n + 1}
            for n, i in enumerate(shown)
        ]
        self.track(
            "Product List Viewed",
            {"list_id": _slug(category), "category": category, "products": products},
        )
        if filtered:
            rng = self.rng
            usd = self.em.catalog.categories[index].usd
            top = int(usd[0] + (usd[1] - usd[0]) * rng.choice((0.25, 0.5, 0.75)))
            filters = [{"type": "price", "value": f"0-{top}"}]
            if rng.random() < 0.6:
                filters.append(
                    {
                        "type": "color",
                        "value": rng.choice(("grey", "white", "natural", "black", "sage")),
                    }
                )
            sort_type, sort_value = rng.choice(_SORTS)
            self.track(
                "Product List Filtered",
                {
                    "list_id": _slug(category),
                    "category": category,
                    "filters": filters,
                    "sorts": [{"type": sort_type, "value": sort_value}],
                    "products": products,
                },
            )
        return index

    def add_to_cart(self, index: int) -> bool:
        if not self.em.catalog.in_stock(index):
            return False
        if self.cart_id is None:
            self.cart_id = f"{self.rng.getrandbits(64):016x}"
            self.em.truth.carts += 1
        item = self.item(index)
        most = self.em.catalog.category_of(index).max_quantity
        quantity = self.rng.randint(1, most) if most > 1 and self.rng.random() < 0.4 else 1
        for line in self.cart:
            if line["product_id"] == item["product_id"]:
                line["quantity"] += quantity
                break
        else:
            self.cart.append({**item, "quantity": quantity})
        self.track("Product Added", {**item, "quantity": quantity, "cart_id": self.cart_id})
        return True

    def remove_from_cart(self) -> None:
        line = self.cart.pop(self.rng.randrange(len(self.cart)))
        self.track("Product Removed", {**line, "cart_id": self.cart_id})

    def view_cart(self) -> None:
        self.view("Cart", "/cart", "Your cart")
        self.track("Cart Viewed", {"cart_id": self.cart_id, "products": self._lines()})

    def _lines(self) -> list[dict[str, Any]]:
        return [{**line, "position": n + 1} for n, line in enumerate(self.cart)]

    def wishlist(self, index: int) -> None:
        self.track(
            "Product Added to Wishlist",
            {**self.item(index), "wishlist_id": "default", "wishlist_name": "My wishlist"},
        )

    # -- sign-up and log-in -------------------------------------------------------------------

    def sign_up(self) -> None:
        person, rng = self.person, self.rng
        self.view("Sign Up", "/account/register", "Create your account")
        traits: dict[str, Any] = {
            "email": person.email,
            "firstName": person.first[0],
            "lastName": person.last[0],
            "name": person.name,
            "gender": person.gender,
            "createdAt": ms_to_iso(self.t),
            "address": {"city": person.city.local, "country": person.country.code},
            "email_opt_in": person.email_opt_in,
        }
        if rng.random() < 0.8:
            traits["phone"] = person.phone
            traits["sms_opt_in"] = person.sms_opt_in
        if person.birthday:
            traits["birthday"] = person.birthday
        self.device.logged_in = True
        person.signed_up = True
        self.em.truth.signups += 1
        if any(d is not self.device and d.truth_key in person.keys for d in person.devices):
            self.em.truth.signups_other_device += 1
        self.identify(traits)
        method = rng.choice(_for(_SIGNUP_METHODS, person.country.code))
        self.track("Signed Up", {"type": method})

    def log_in(self) -> None:
        self.view("Log In", "/account/login", "Log in")
        self.device.logged_in = True
        traits = {"email": self.person.email} if self.rng.random() < 0.5 else {}
        self.identify(traits)
        self.track("Signed In", {"username": self.person.email})

    # -- checkout -------------------------------------------------------------------------------

    def checkout(self, stop_at: str | None) -> dict[str, Any] | None:
        """Checkout from the current cart. `stop_at` abandons it after that step
        ("started" or "payment"); None completes the order, which is returned."""
        rng, country, em = self.rng, self.country, self.em
        lines = self._lines()
        subtotal = round(sum(line["price"] * line["quantity"] for line in lines), 2)
        order_id = em.next_order_id(country.code)
        checkout_id = new_id(rng)
        em.truth.checkouts_started += 1
        self.view("Checkout", "/checkout", "Checkout")
        self.track(
            "Checkout Started",
            {
                "checkout_id": checkout_id,
                "order_id": order_id,
                "value": subtotal,
                "revenue": subtotal,
                "currency": country.currency,
                "products": lines,
            },
        )
        shipping_method = rng.choice(_SHIPPING)
        self.track(
            "Checkout Step Completed",
            {"checkout_id": checkout_id, "step": 1, "shipping_method": shipping_method},
        )
        if stop_at == "started":
            return None
        coupon, discount = None, 0.0
        if rng.random() < em.params.coupon_rate:
            code = (
                "WELCOME10"
                if not self.person.orders
                else rng.choice(("SAVE15", "FREESHIP", _COUPONS[country.code]))
            )
            self.track(
                "Coupon Entered", {"order_id": order_id, "cart_id": self.cart_id, "coupon_id": code}
            )
            if rng.random() < 0.15:
                self.track(
                    "Coupon Denied",
                    {
                        "order_id": order_id,
                        "cart_id": self.cart_id,
                        "coupon_id": code,
                        "reason": "Coupon expired",
                    },
                )
            else:
                coupon = code
                rate = 0.10 if code == "WELCOME10" else 0.0 if code == "FREESHIP" else 0.15
                discount = round(subtotal * rate, 2)
                self.track(
                    "Coupon Applied",
                    {
                        "order_id": order_id,
                        "cart_id": self.cart_id,
                        "coupon_id": code,
                        "coupon_name": code,
                        "discount": discount,
                    },
                )
        payment = rng.choice(_for(_PAYMENTS, country.code))
        self.track(
            "Payment Info Entered",
            {
                "checkout_id": checkout_id,
                "order_id": order_id,
                "step": 2,
                "payment_method": payment,
            },
        )
        if stop_at == "payment":
            return None
        self.track(
            "Checkout Step Completed",
            {"checkout_id": checkout_id, "step": 2, "payment_method": payment},
        )
        revenue = round(subtotal - discount, 2)
        free_from = 50 * country.per_usd
        shipping = (
            0.0 if revenue >= free_from or coupon == "FREESHIP" else round(6 * country.per_usd, 2)
        )
        if country.sales_tax_added:
            tax = round(revenue * 0.08, 2)
            total = round(revenue + shipping + tax, 2)
        else:
            tax = round(revenue - revenue / (1 + country.vat), 2)
            total = round(revenue + shipping, 2)
        properties: dict[str, Any] = {
            "checkout_id": checkout_id,
            "order_id": order_id,
            "affiliation": f"{SHOP_NAME} {'web shop' if self.web else 'app'}",
            "total": total,
            "subtotal": subtotal,
            "revenue": revenue,
            "shipping": shipping,
            "tax": tax,
            "discount": discount,
            "currency": country.currency,
            "payment_method": payment,
            "shipping_method": shipping_method,
            "products": lines,
        }
        if coupon:
            properties["coupon"] = coupon
        self.track("Order Completed", properties)
        self.view("Order Confirmation", "/checkout/complete", "Thank you for your order")
        em.truth.carts_converted += 1
        em.truth.orders_online += 1
        order = {
            "order_id": order_id,
            "source": self.source,
            "device": self.device,
            "lines": lines,
            "revenue": revenue,
            "total": total,
            "currency": country.currency,
            "cancelled": False,
            "at": self.t,
        }
        self.person.orders.append(order)
        self.cart, self.cart_id = [], None
        return order


def _slug(category: str) -> str:
    return "/".join("-".join(ascii_slug(part).split()) for part in category.split(" > "))
