"""Redemption: an `Order Completed` whose `coupon` property names one of our codes
marks that code redeemed, once, with the order's id and revenue.

Revenue is recorded as the order sent it (`revenue`, else `total`), in the order's
currency, as the pool's report of what its codes brought in.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shopkeeper.messaging.coupon_patterns import CODE_TEXT, spellings
from shopkeeper.profiles.values import as_number, as_text
from shopkeeper.storage import tables as t

if TYPE_CHECKING:
    from shopkeeper.pipeline.processor import BatchChanges

log = logging.getLogger(__name__)

_c = t.coupons.c

ORDER_COMPLETED = "Order Completed"


def redeem(
    conn: Connection,
    code: str,
    *,
    profile_id: int | None,
    order_id: str | None,
    revenue: float | None,
    at_ms: int,
) -> bool:
    """Record that an order used `code`. True when this call recorded the redemption;
    False for a code that is not in any pool, or one already redeemed (the first order
    stands: a replayed or second order with the same code changes nothing).

    A code redeemed by someone other than the person it was issued to (a shared code) is
    recorded all the same, against the code: the shop accepted it, and the sale came from
    the coupon. Only a log line notes the difference, as the table has no column for it.
    """
    found = _find_code(conn, code)
    if found is None:
        return False
    if revenue is not None and not math.isfinite(revenue):
        revenue = None
    done = conn.execute(
        sa.update(t.coupons)
        .where(_c.id == found.id, _c.redeemed_at.is_(None))
        .values(redeemed_at=at_ms, order_id=order_id[:200] if order_id else None, revenue=revenue)
    ).rowcount
    if done != 1:
        return False
    if (
        found.profile_id is not None
        and profile_id is not None
        and not _same_person(conn, int(found.profile_id), profile_id)
    ):
        log.info(
            "coupon %s issued to profile %s was redeemed by profile %s (order %s)",
            found.id,
            found.profile_id,
            profile_id,
            order_id,
        )
    return True


def _find_code(conn: Connection, code: str) -> Any:
    text = code.strip() if isinstance(code, str) else ""
    if not CODE_TEXT.match(text):
        return None  # not one of ours, whatever it is
    return conn.execute(
        sa.select(_c.id, _c.profile_id)
        .where(_c.code.in_(spellings([text])))
        .order_by(_c.id)
        .limit(1)
    ).first()


def _same_person(conn: Connection, issued_to: int, redeemer: int) -> bool:
    if issued_to == redeemer:
        return True
    merged_into = conn.execute(
        sa.select(t.profiles.c.merged_into).where(t.profiles.c.id == issued_to)
    ).scalar()
    return merged_into == redeemer


class CouponRedemptionHook:
    """The pipeline's BatchHook: redeems the `coupon` of every `Order Completed` applied
    in the batch, in the batch's transaction (so each order is counted exactly once)."""

    def after_batch(self, conn: Connection, changes: BatchChanges, now_ms: int) -> None:
        for applied in changes.applied:
            event = applied.event
            if event.type != "track" or event.event != ORDER_COMPLETED:
                continue
            properties = event.properties
            code = properties.get("coupon")
            if not isinstance(code, str) or not code.strip():
                continue
            revenue = as_number(properties.get("revenue"))
            if revenue is None:
                revenue = as_number(properties.get("total"))
            redeem(
                conn,
                code,
                profile_id=applied.profile_id,
                order_id=as_text(properties.get("order_id"), 200),
                revenue=revenue,
                at_ms=event.timestamp_ms,
            )
