"""Customers: search and browse, and the single customer view with its timeline."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.engine import Connection

from shopkeeper.analytics.customers import recent_customers
from shopkeeper.profiles import view
from shopkeeper.segments import service as segments
from shopkeeper.segments.builtins import rfm_key
from shopkeeper.web import catalog_link
from shopkeeper.web.timeline import describe, group_visits, product_ids
from shopkeeper.web.ui import PageNotFound, Session, int_param, is_htmx, now_ms, render, services

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
EVENTS_PAGE = 100
SEARCH_LIMIT = 50

# Shown in this order at the top of the customer view; the rest go under "All attributes".
HEADLINE = (
    "orders_count",
    "total_revenue",
    "average_order_value",
    "last_order_at",
    "sessions_count",
    "product_views_count",
    "first_seen_at",
    "last_seen_at",
)
# Shown in their own sections.
_OWN_SECTION = {
    "cart",
    "wishlist",
    "viewed_products",
    "viewed_categories",
    "recent_searches",
    "last_order",
    "last_search",
}

_FILTERS = {"all": None, "known": True, "anonymous": False}


@router.get("/customers")
def customers(
    request: Request,
    session: Session,
    q: str | None = None,
    show: str | None = None,
    page: str | None = None,
) -> Response:
    db = services(request).db
    query = (q or "").strip()[:200]
    show = show if show in _FILTERS else "all"
    page_no = int_param(page, 1, low=1, high=100_000)
    total = None
    with db.read() as conn:
        if query.isdigit() and len(query) > 18:
            # view.search also tries a number as a profile id, which overflows the
            # database's integers past 18 digits; no profile id is that long.
            rows = []
        elif query:
            rows = view.search(conn, query, SEARCH_LIMIT)
        else:
            rows, total = recent_customers(
                conn, known=_FILTERS[show], limit=PAGE_SIZE, offset=(page_no - 1) * PAGE_SIZE
            )
    context = {
        "title": "Customers",
        "q": query,
        "show": show,
        "rows": rows,
        "total": total,
        "page": page_no,
        "pages": max(1, -(-(total or 0) // PAGE_SIZE)),
        "search_limit": SEARCH_LIMIT,
    }
    template = "_customer_rows.html" if is_htmx(request) else "customers.html"
    return render(request, template, context, session=session)


def _profile_id(conn: Connection, raw: str) -> int:
    """The live profile a URL names (an absorbed profile's id names its survivor)."""
    if not raw.isdigit() or len(raw) > 18:
        raise PageNotFound("There is no customer with this number.")
    found = view.resolve(conn, "profile", raw)
    if found is None:
        raise PageNotFound("There is no customer with this number. They may have been erased.")
    return found


def _events_page(
    conn: Connection, profile_id: int, before: str | None, currency: str, gap_ms: int
) -> dict[str, Any]:
    """One page of the timeline, grouped into visits. A visit cut by the page's end
    continues on the next page."""
    cursor = int(before) if before and before.isdigit() and len(before) < 19 else None
    events = view.timeline(conn, profile_id, EVENTS_PAGE + 1, cursor)
    more = len(events) > EVENTS_PAGE
    events = events[:EVENTS_PAGE]
    products = catalog_link.products(conn, product_ids(events))
    return {
        "profile_id": profile_id,
        "visits": group_visits(events, gap_ms),
        "lines": {e["seq"]: describe(e, products, currency) for e in events},
        "next_before": events[-1]["seq"] if more and events else None,
        "paged": cursor is not None,
    }


def _cart(conn: Connection, computed: dict[str, Any]) -> list[dict[str, Any]]:
    cart = computed.get("cart") or []
    items = [item for item in cart if isinstance(item, dict)]
    known = catalog_link.products(conn, _ids(items))
    out = []
    for item in items:
        product = known.get(str(item.get("product_id")), {})
        out.append({**item, "catalog": product})
    return out


def _ids(items: Iterable[dict[str, Any]]) -> set[str]:
    return {str(i["product_id"]) for i in items if i.get("product_id") is not None}


def _gap_ms(request: Request) -> int:
    return services(request).settings.session_timeout_minutes * 60 * 1000


@router.get("/customers/{raw_id}")
def customer(
    request: Request, session: Session, raw_id: str, before: str | None = None
) -> Response:
    svc = services(request)
    with svc.db.read() as conn:
        profile_id = _profile_id(conn, raw_id)
        if str(profile_id) != raw_id:
            return RedirectResponse(f"/customers/{profile_id}", status_code=303)
        profile = view.customer_view(conn, profile_id)
        if profile is None:
            raise PageNotFound("There is no customer with this number.")
        computed = profile["computed"]
        timeline = _events_page(
            conn, profile_id, before, svc.settings.shop_currency, _gap_ms(request)
        )
        cart = _cart(conn, computed)
        viewed = sorted(
            (v for v in (computed.get("viewed_products") or {}).values() if isinstance(v, dict)),
            key=lambda v: str(v.get("last_at", "")),
            reverse=True,
        )[:10]
        viewed_names = catalog_link.products(conn, _ids(viewed))
    # Its own snapshot: the segments and scores as of one moment.
    membership = segments.profile_segments(svc.db, profile_id, now_ms(request))
    rfm_segment = membership["scores"]["rfm_segment"]
    membership["rfm_css"] = rfm_key(rfm_segment) if rfm_segment else ""
    others = {
        key: value
        for key, value in sorted(computed.items())
        if key not in HEADLINE and key not in _OWN_SECTION
    }
    return render(
        request,
        "customer.html",
        {
            "title": profile["display_name"] or f"Anonymous visitor {profile_id}",
            "p": profile,
            "c": computed,
            "headline": [(key, computed.get(key)) for key in HEADLINE],
            "others": others,
            "cart": cart,
            "viewed": viewed,
            "viewed_names": viewed_names,
            "membership": membership,
            **timeline,
        },
        session=session,
    )


@router.get("/customers/{raw_id}/events")
def customer_events(
    request: Request, session: Session, raw_id: str, before: str | None = None
) -> Response:
    """The next page of the timeline, for the "Show older events" button."""
    svc = services(request)
    with svc.db.read() as conn:
        profile_id = _profile_id(conn, raw_id)
        page = _events_page(conn, profile_id, before, svc.settings.shop_currency, _gap_ms(request))
    return render(request, "_visits.html", page, session=session)
