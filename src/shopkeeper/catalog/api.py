"""Admin API for the catalog: products (list, detail with numbers, create or replace,
soft delete) and the catalog events that stock and price changes cause."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from shopkeeper.admin import audit
from shopkeeper.admin.auth import Admin
from shopkeeper.catalog import service
from shopkeeper.catalog.products import EVENT_TYPES, ProductError, parse_product
from shopkeeper.errors import ApiError
from shopkeeper.timeutil import ms_to_iso, parse_iso_ms

if TYPE_CHECKING:
    from shopkeeper.bootstrap import Services

router = APIRouter(tags=["Catalog"])

ProductIdParam = Annotated[
    str,
    Path(
        description="The shop's product id, as events carry it in properties.product_id "
        "(it may contain slashes)"
    ),
]

# Input fields are typed loosely here and checked by parse_product, so that every
# mistake gets the same message whether it arrives by the API or in an import file.
_TEXT = WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "null"}]})
_ID = WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]})
_NUMBER = WithJsonSchema(
    {"anyOf": [{"type": "number"}, {"type": "string"}, {"type": "null"}]},
)
_INTEGER = WithJsonSchema(
    {"anyOf": [{"type": "integer"}, {"type": "string"}, {"type": "null"}]},
)
_CATEGORY = WithJsonSchema(
    {
        "anyOf": [
            {"type": "string"},
            {"type": "array", "items": {"type": "string"}},
            {"type": "null"},
        ]
    }
)
_OBJECT = WithJsonSchema({"anyOf": [{"type": "object"}, {"type": "null"}]})


class ProductIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "Linen sofa cushion",
                    "sku": "CUSH-LIN-45",
                    "category": "Home > Living room > Cushions",
                    "brand": "Nordlys",
                    "price": 39.9,
                    "sale_price": 29.9,
                    "currency": "EUR",
                    "stock_quantity": 12,
                    "url": "https://shop.example/p/cush-lin-45",
                    "attributes": {"color": "sand", "size_cm": 45},
                    "locales": {"nb-NO": {"name": "Sofaputer i lin"}},
                }
            ]
        },
    )

    id: Annotated[Any, _ID] = Field(None, description="Optional; must equal the path's id")
    sku: Annotated[Any, _TEXT] = None
    name: Annotated[Any, _TEXT] = Field(None, description="Required")
    description: Annotated[Any, _TEXT] = None
    category: Annotated[Any, _CATEGORY] = Field(
        None, description="A path, most general first: 'Home > Living room' or 'Home/Living room'"
    )
    brand: Annotated[Any, _TEXT] = None
    price: Annotated[Any, _NUMBER] = Field(None, description="Non-negative; '12,50' is accepted")
    sale_price: Annotated[Any, _NUMBER] = Field(None, description="At most the price")
    currency: Annotated[Any, _TEXT] = Field(
        None, description="ISO 4217 code; absent means the shop currency"
    )
    stock_quantity: Annotated[Any, _INTEGER] = Field(
        None, description="Units in stock; absent or null: stock is not tracked"
    )
    url: Annotated[Any, _TEXT] = None
    image_url: Annotated[Any, _TEXT] = None
    attributes: Annotated[Any, _OBJECT] = Field(None, description="Free-form JSON object")
    locales: Annotated[Any, _OBJECT] = Field(
        None, description='Per locale: {"nb-NO": {"name": "...", "url": "https://..."}}'
    )


class LocaleOut(BaseModel):
    name: str | None = None
    url: str | None = None


class ProductOut(BaseModel):
    id: str
    sku: str | None
    name: str
    description: str | None
    category: str | None
    brand: str | None
    price: float | None
    sale_price: float | None
    currency: str | None = Field(description="None: the shop currency")
    stock_quantity: int | None = Field(description="None: stock is not tracked")
    url: str | None
    image_url: str | None
    attributes: dict[str, Any]
    locales: dict[str, LocaleOut]
    created_at: str
    updated_at: str
    deleted_at: str | None


class ProductsOut(BaseModel):
    products: list[ProductOut]
    total: int = Field(description="How many products match, over all pages")


class CaughtEventOut(BaseModel):
    type: str
    product_id: str
    at: str
    details: dict[str, Any]


class PutOut(BaseModel):
    status: str = Field(description="created, updated or unchanged")
    product: ProductOut
    catalog_events: list[CaughtEventOut] = Field(description="What this change recorded")


class StatsOut(BaseModel):
    since: str = Field(description="First UTC day counted (YYYY-MM-DD)")
    days: int
    views: int
    cart_adds: int
    orders: int
    units: float
    revenue: float
    currency: str = Field(description="The shop currency, that revenue is in")


class DayOut(BaseModel):
    date: str
    views: int
    cart_adds: int
    orders: int
    units: float
    revenue: float


class ProductDetailOut(BaseModel):
    product_id: str
    product: ProductOut | None = Field(description="None while only events know the product")
    stats: StatsOut
    daily: list[DayOut] = Field(description="Days with activity, oldest first")
    recent_viewers: list[int] = Field(description="Profile ids, most recent first")
    recent_buyers: list[int] = Field(description="Profile ids, most recent first")


class CatalogEventOut(BaseModel):
    id: int
    product_id: str
    type: str
    at: str
    details: dict[str, Any]


class CatalogEventsOut(BaseModel):
    events: list[CatalogEventOut]
    next_after: int | None = Field(description="Pass as `after` for the next page")


_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such product."}}
_INVALID: dict[int | str, dict[str, Any]] = {
    422: {"description": "The product is not valid; the error names the field."}
}


def _services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def _not_found(product_id: str) -> ApiError:
    shown = product_id if len(product_id) <= 200 else product_id[:197] + "..."
    return ApiError(404, "not_found", f"No product with id {shown!r}.", "product_id")


@router.get(
    "/api/products",
    response_model=ProductsOut,
    summary="Products, by name, with filters and paging",
)
def list_products(
    request: Request,
    _admin: Admin,
    q: Annotated[
        str | None, Query(max_length=200, description="Part of the name, sku or id")
    ] = None,
    category: Annotated[
        str | None, Query(max_length=500, description="A category path prefix, by whole parts")
    ] = None,
    brand: Annotated[str | None, Query(max_length=200)] = None,
    in_stock: Annotated[
        bool | None,
        Query(description="true: stock above 0 or not tracked; false: out of stock"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    services = _services(request)
    with services.db.read() as conn:
        products, total = service.list_products(
            conn,
            q=q,
            category=category,
            brand=brand,
            in_stock=in_stock,
            limit=limit,
            offset=offset,
        )
    return {"products": products, "total": total}


@router.get(
    "/api/products/{product_id:path}",
    response_model=ProductDetailOut,
    responses=_NOT_FOUND,
    summary="One product with its numbers for the last 30 days",
)
def get_product(request: Request, _admin: Admin, product_id: ProductIdParam) -> dict[str, Any]:
    services = _services(request)
    with services.db.read() as conn:
        found = service.product_detail(conn, product_id, services.clock.now_ms())
    if found is None:
        raise _not_found(product_id)
    found["stats"]["currency"] = services.settings.shop_currency
    return found


@router.put(
    "/api/products/{product_id:path}",
    response_model=PutOut,
    responses=_INVALID,
    summary="Create or replace one product",
)
def put_product(
    request: Request, admin: Admin, product_id: ProductIdParam, body: ProductIn
) -> dict[str, Any]:
    services = _services(request)
    raw = body.model_dump(exclude_unset=True)
    try:
        if raw.get("id") is None or raw.get("id") == "":
            raw["id"] = product_id
        product = parse_product(raw)
        if product["id"] != product_id:
            raise ProductError("id in the body must be the id in the path (or be left out)", "id")
    except ProductError as exc:
        raise ApiError(422, "invalid_product", str(exc), exc.field) from None
    now_ms = services.clock.now_ms()
    outcome = service.upsert_product(
        services.db,
        product,
        now_ms,
        low_stock_threshold=services.settings.low_stock_threshold,
        actor=audit.key_actor(admin),
    )
    return {
        "status": outcome.status,
        "product": outcome.product,
        "catalog_events": [{**event, "at": ms_to_iso(now_ms)} for event in outcome.events],
    }


@router.delete(
    "/api/products/{product_id:path}",
    response_model=ProductOut,
    responses=_NOT_FOUND,
    summary="Delete a product (hidden from lists, kept for the events that name it)",
)
def delete_product(request: Request, admin: Admin, product_id: ProductIdParam) -> dict[str, Any]:
    services = _services(request)
    found = service.delete_product(
        services.db, product_id, services.clock.now_ms(), actor=audit.key_actor(admin)
    )
    if found is None:
        raise _not_found(product_id)
    return found


@router.get(
    "/api/catalog/events",
    response_model=CatalogEventsOut,
    summary="Stock and price changes (catalog events), oldest first",
)
def list_catalog_events(
    request: Request,
    _admin: Admin,
    since: Annotated[str | None, Query(description="ISO-8601 time: events at or after it")] = None,
    after: Annotated[
        int | None, Query(ge=0, description="Event id cursor (next_after of the last page)")
    ] = None,
    type_: Annotated[str | None, Query(alias="type", description=", ".join(EVENT_TYPES))] = None,
    product_id: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    services = _services(request)
    since_ms = None
    if since is not None:
        try:
            since_ms = parse_iso_ms(since)
        except ValueError:
            raise ApiError(
                422,
                "invalid_request",
                "since must be an ISO-8601 time such as 2026-11-23T08:00:00Z",
                "since",
            ) from None
    if type_ is not None and type_ not in EVENT_TYPES:
        raise ApiError(
            422, "invalid_request", f"type must be one of: {', '.join(EVENT_TYPES)}", "type"
        )
    with services.db.read() as conn:
        events = service.catalog_events(
            conn,
            since_ms=since_ms,
            after_id=after,
            type_=type_,
            product_id=product_id,
            limit=limit,
        )
    next_after = events[-1]["id"] if len(events) == limit else None
    return {"events": events, "next_after": next_after}
