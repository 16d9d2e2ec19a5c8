"""Catalog: products with their stock, and one product's views and sales."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from shopkeeper.analytics.customers import display_names
from shopkeeper.catalog import service as catalog
from shopkeeper.web import format as fmt
from shopkeeper.web.charts import Bar, bar_chart
from shopkeeper.web.ui import PageNotFound, Session, int_param, now_ms, render, services

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
_STOCK = {"in": True, "out": False}


@router.get("/catalog")
def catalog_page(
    request: Request,
    session: Session,
    q: str | None = None,
    category: str | None = None,
    brand: str | None = None,
    stock: str | None = None,
    page: str | None = None,
) -> Response:
    svc = services(request)
    filters = {
        "q": (q or "").strip()[:200],
        "category": (category or "").strip()[:500],
        "brand": (brand or "").strip()[:200],
        "stock": stock if stock in _STOCK else "",
    }
    page_no = int_param(page, 1, low=1, high=100_000)
    with svc.db.read() as conn:
        rows, total = catalog.list_products(
            conn,
            q=filters["q"] or None,
            category=filters["category"] or None,
            brand=filters["brand"] or None,
            in_stock=_STOCK.get(filters["stock"]),
            limit=PAGE_SIZE,
            offset=(page_no - 1) * PAGE_SIZE,
        )
    query = urlencode({k: v for k, v in filters.items() if v})
    return render(
        request,
        "catalog.html",
        {
            "title": "Catalog",
            "rows": rows,
            "total": total,
            "filters": filters,
            "filtered": any(filters.values()),
            "page": page_no,
            "pages": max(1, -(-total // PAGE_SIZE)),
            "query": query,
            "low_stock": svc.settings.low_stock_threshold,
        },
        session=session,
    )


@router.get("/catalog/{product_id:path}")
def product_page(request: Request, session: Session, product_id: str) -> Response:
    svc = services(request)
    if not product_id or len(product_id) > 200:
        raise PageNotFound("There is no product with this ID.")
    with svc.db.read() as conn:
        detail = catalog.product_detail(conn, product_id, now_ms(request))
        if detail is None:
            raise PageNotFound("Neither the catalog nor any event knows a product with this ID.")
        people = display_names(conn, [*detail["recent_viewers"], *detail["recent_buyers"]])
    bars = [
        Bar(
            label=fmt.day(day_ms).rsplit(" ", 1)[0],
            value=day["views"],
            tooltip=f"{fmt.day(day_ms)}: {day['views']} views, "
            f"{day['cart_adds']} added to cart, {day['orders']} orders",
        )
        for day_ms, day in _every_day(detail)
    ]
    product = detail["product"] or {}
    return render(
        request,
        "product.html",
        {
            "title": product.get("name") or f"Product {product_id}",
            "d": detail,
            "product": product,
            "chart": bar_chart(
                bars,
                label="Views per day",
                top_label=f"highest {fmt.number(max(b.value for b in bars))} views",
            )
            if detail["daily"]
            else None,
            "people": people,
            "low_stock": svc.settings.low_stock_threshold,
        },
        session=session,
    )


def _every_day(detail: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    """The product's daily numbers with the days without any filled in as zeros."""
    known = {day["date"]: day for day in detail["daily"]}
    first = fmt.to_ms(detail["stats"]["since"] + "T00:00:00Z") or 0
    empty = {"views": 0, "cart_adds": 0, "orders": 0}
    out = []
    for index in range(int(detail["stats"]["days"])):
        day_ms = first + index * 86_400_000
        out.append((day_ms, known.get(fmt.iso(day_ms)[:10], empty)))
    return out
