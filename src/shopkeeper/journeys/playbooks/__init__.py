"""Playbooks: journeys from the field, ready to enable, each with a description, its
definition, the templates it sends (with localized variants) and the coupon pool it
draws from. Enabling one saves the journey as a draft (or active), and creates the
templates and pool it needs when they do not exist yet; a marketer then edits them."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shopkeeper.admin import audit
from shopkeeper.journeys import service
from shopkeeper.journeys.playbooks import (
    cart,
    catalog_alerts,
    grow,
    lifecycle,
    occasions,
    recover,
    retain,
)
from shopkeeper.messaging import coupons, template_store
from shopkeeper.storage.db import Database


@dataclass(frozen=True)
class Pool:
    key: str
    name: str
    pattern: str
    discount: str
    valid_days: int


@dataclass(frozen=True)
class Playbook:
    key: str
    name: str
    description: str
    definition: str  # YAML
    # template key -> channel -> locale ("" default) -> parts
    templates: Mapping[str, Mapping[str, Mapping[str, Mapping[str, str]]]]
    pools: tuple[Pool, ...] = ()
    group: str = "Recover sales"
    extra: Mapping[str, Any] = field(default_factory=dict)


PLAYBOOKS: tuple[Playbook, ...] = (
    Playbook(
        key="abandoned_cart",
        name=cart.ABANDONED_CART_NAME,
        description=cart.ABANDONED_CART_DESCRIPTION,
        definition=cart.ABANDONED_CART,
        templates=cart.CART_TEMPLATES,
        pools=(
            Pool("cart-reminder", "Abandoned cart: last reminder", "CART-{XXXXXXXX}", "10%", 7),
        ),
    ),
    Playbook(
        key="welcome",
        name=lifecycle.WELCOME_NAME,
        description=lifecycle.WELCOME_DESCRIPTION,
        definition=lifecycle.WELCOME,
        templates=lifecycle.WELCOME_TEMPLATES,
        group="Grow",
    ),
    Playbook(
        key="abandoned_checkout",
        name=recover.ABANDONED_CHECKOUT_NAME,
        description=recover.ABANDONED_CHECKOUT_DESCRIPTION,
        definition=recover.ABANDONED_CHECKOUT,
        templates=recover.CHECKOUT_TEMPLATES,
        pools=(Pool("checkout-reminder", "Abandoned checkout", "CHECKOUT-{XXXXXXXX}", "10%", 7),),
    ),
    Playbook(
        key="browse_abandonment",
        name=recover.BROWSE_NAME,
        description=recover.BROWSE_DESCRIPTION,
        definition=recover.BROWSE,
        templates=recover.BROWSE_TEMPLATES,
    ),
    Playbook(
        key="almost_buyers",
        name=recover.ALMOST_BUYERS_NAME,
        description=recover.ALMOST_BUYERS_DESCRIPTION,
        definition=recover.ALMOST_BUYERS,
        templates=recover.ALMOST_BUYERS_TEMPLATES,
        pools=(Pool("almost-buyers", "Almost-buyers promo", "PROMO-{XXXXXXXX}", "10%", 14),),
    ),
    Playbook(
        key="free_shipping_nudge",
        name=recover.FREE_SHIPPING_NAME,
        description=recover.FREE_SHIPPING_DESCRIPTION,
        definition=recover.FREE_SHIPPING,
        templates=recover.FREE_SHIPPING_TEMPLATES,
    ),
    Playbook(
        key="back_in_stock",
        name=catalog_alerts.BACK_IN_STOCK_NAME,
        description=catalog_alerts.BACK_IN_STOCK_DESCRIPTION,
        definition=catalog_alerts.BACK_IN_STOCK,
        templates=catalog_alerts.BACK_IN_STOCK_TEMPLATES,
    ),
    Playbook(
        key="price_drop",
        name=catalog_alerts.PRICE_DROP_NAME,
        description=catalog_alerts.PRICE_DROP_DESCRIPTION,
        definition=catalog_alerts.PRICE_DROP,
        templates=catalog_alerts.PRICE_DROP_TEMPLATES,
    ),
    Playbook(
        key="lead_nurturing",
        name=grow.LEAD_NURTURING_NAME,
        description=grow.LEAD_NURTURING_DESCRIPTION,
        definition=grow.LEAD_NURTURING,
        templates=grow.LEAD_TEMPLATES,
        pools=(Pool("lead-first-order", "Lead: first order", "HELLO-{XXXXXXXX}", "10%", 14),),
        group="Grow",
    ),
    Playbook(
        key="app_first_purchase",
        name=grow.APP_FIRST_PURCHASE_NAME,
        description=grow.APP_FIRST_PURCHASE_DESCRIPTION,
        definition=grow.APP_FIRST_PURCHASE,
        templates=grow.APP_TEMPLATES,
        pools=(Pool("app-first-order", "App: first order", "APP-{XXXXXXXX}", "15%", 14),),
        group="Grow",
    ),
    Playbook(
        key="repeat_customers",
        name=retain.REPEAT_NAME,
        description=retain.REPEAT_DESCRIPTION,
        definition=retain.REPEAT,
        templates=retain.REPEAT_TEMPLATES,
        pools=(Pool("repeat-reward", "Repeat customers: reward", "THANKS-{XXXXXXXX}", "10%", 30),),
        group="Retain",
    ),
    Playbook(
        key="post_purchase",
        name=retain.POST_PURCHASE_NAME,
        description=retain.POST_PURCHASE_DESCRIPTION,
        definition=retain.POST_PURCHASE,
        templates=retain.POST_PURCHASE_TEMPLATES,
        group="Retain",
    ),
    Playbook(
        key="win_back",
        name=retain.WIN_BACK_NAME,
        description=retain.WIN_BACK_DESCRIPTION,
        definition=retain.WIN_BACK,
        templates=retain.WIN_BACK_TEMPLATES,
        pools=(Pool("win-back", "Win-back offer", "BACK-{XXXXXXXX}", "15%", 14),),
        group="Retain",
    ),
    Playbook(
        key="replenishment",
        name=retain.REPLENISHMENT_NAME,
        description=retain.REPLENISHMENT_DESCRIPTION,
        definition=retain.REPLENISHMENT,
        templates=retain.REPLENISHMENT_TEMPLATES,
        group="Retain",
    ),
    Playbook(
        key="birthday",
        name=occasions.BIRTHDAY_NAME,
        description=occasions.BIRTHDAY_DESCRIPTION,
        definition=occasions.BIRTHDAY,
        templates=occasions.BIRTHDAY_TEMPLATES,
        pools=(Pool("birthday", "Birthday gift", "BDAY-{XXXXXXXX}", "15%", 14),),
        group="Occasions",
    ),
    Playbook(
        key="holidays",
        name=occasions.HOLIDAYS_NAME,
        description=occasions.HOLIDAYS_DESCRIPTION,
        definition=occasions.HOLIDAYS,
        templates=occasions.HOLIDAY_TEMPLATES,
        group="Occasions",
    ),
)


def find(key: str) -> Playbook | None:
    return next((p for p in PLAYBOOKS if p.key == key), None)


def enable(
    db: Database,
    now_ms: int,
    *,
    actor: str,
    key: str,
    journey_key: str | None = None,
    status: str = "draft",
) -> str:
    """Save the playbook as a journey (under its own key unless told otherwise), with
    its templates and coupon pools. Returns the journey's key."""
    playbook = find(key)
    if playbook is None:
        raise LookupError(f'There is no playbook "{key}".')
    parsed = service.read(playbook.definition)
    with db.write() as conn:
        # Refuse before saving anything when a segment the journey needs is missing.
        service.check_references(conn, parsed.definition, for_activation=False)
        for template_key, channels in playbook.templates.items():
            for channel, variants in channels.items():
                if template_store.get_variants(conn, template_key, channel):
                    continue  # the shop's own version wins
                for locale, parts in variants.items():
                    template_store.save_template(
                        conn, template_key, channel, locale, dict(parts), now_ms
                    )
        for pool in playbook.pools:
            with contextlib.suppress(coupons.DuplicatePool):
                coupons.create_pool(
                    conn,
                    pool.key,
                    pool.name,
                    pattern=pool.pattern,
                    discount=pool.discount,
                    valid_days=pool.valid_days,
                    now_ms=now_ms,
                )
        audit.record(
            conn, at_ms=now_ms, actor=actor, action="playbook.enable",
            target=f"playbook {key}", details={"journey": journey_key or key},
        )  # fmt: skip
    journey = service.create(
        db,
        now_ms,
        actor=actor,
        key=journey_key or key,
        definition=playbook.definition,
        status=status,
        playbook=key,
    )
    return journey.key
