"""Admin API for coupon pools: create a pool, add codes (generated or imported), see how
a pool is doing and list its codes, and list the coupons a person holds."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from shopkeeper.admin import audit
from shopkeeper.admin.auth import Admin
from shopkeeper.errors import ApiError
from shopkeeper.messaging import coupon_reports as reports
from shopkeeper.messaging import coupons
from shopkeeper.profiles.api import profile_id_for_ref
from shopkeeper.timeutil import parse_iso_ms

if TYPE_CHECKING:
    from shopkeeper.bootstrap import Services

router = APIRouter(prefix="/api/coupons", tags=["Coupons"])

KeyParam = Annotated[str, Path(description="The pool's key", examples=["cart-reminder"])]


def _services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def _error(exc: Exception) -> ApiError:
    if isinstance(exc, coupons.DuplicatePool):
        return ApiError(409, "conflict", exc.message, exc.field)
    if isinstance(exc, coupons.CouponError):
        return ApiError(422, "invalid_request", exc.message, exc.field)
    if isinstance(exc, coupons.UnknownPool):
        return ApiError(404, "not_found", str(exc), "key")
    raise exc


class PoolIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str = Field(examples=["cart-reminder"], description="Lower-case letters, digits, - or _")
    name: str = Field(examples=["Abandoned cart, last reminder"])
    pattern: str | None = Field(
        default=None,
        examples=["CART-{XXXXXX}"],
        description=(
            "How new codes look: {XXXXXX} random letters and digits without look-alikes, "
            "{999999} random digits, at least 6 random characters. Null for a pool of "
            "imported codes only."
        ),
    )
    discount: str | None = Field(
        default=None, examples=["10%"], description="What the code gives, for messages"
    )
    valid_days: int | None = Field(
        default=None, description="A code expires this many days after it is issued"
    )
    expires_at: str | None = Field(
        default=None,
        examples=["2026-12-31T23:59:59Z"],
        description="No code of the pool is valid after this ISO-8601 time",
    )


class CodesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    generate: int | None = Field(
        default=None, ge=1, le=coupons.MAX_BATCH, description="Make this many codes"
    )
    codes: list[Any] | None = Field(
        default=None,
        max_length=coupons.MAX_BATCH,
        description="Import these codes (the shop's own); duplicates are skipped",
    )


@router.post("/pools", status_code=201, summary="Create a coupon pool")
def create_pool(request: Request, admin: Admin, body: PoolIn) -> dict[str, Any]:
    services = _services(request)
    now_ms = services.clock.now_ms()
    expires_at = None
    if body.expires_at is not None:
        try:
            expires_at = parse_iso_ms(body.expires_at)
        except ValueError as exc:
            raise ApiError(422, "invalid_request", str(exc), "expires_at") from None
    try:
        with services.db.write() as conn:
            pool = coupons.create_pool(
                conn,
                body.key,
                body.name,
                pattern=body.pattern,
                discount=body.discount,
                valid_days=body.valid_days,
                expires_at=expires_at,
                now_ms=now_ms,
            )
            audit.record(
                conn,
                at_ms=now_ms,
                actor=audit.key_actor(admin),
                action="coupon_pool.create",
                target=f"coupon pool {pool.key}",
                details={
                    "pattern": pool.pattern,
                    "discount": pool.discount,
                    "valid_days": pool.valid_days,
                    "expires_at": pool.expires_at,
                },
            )
            return reports.pool_summary(conn, pool.key, now_ms)
    except coupons.CouponError as exc:
        raise _error(exc) from None


@router.get("/pools", summary="Every coupon pool with its counts")
def list_pools(request: Request, _admin: Admin) -> dict[str, Any]:
    services = _services(request)
    with services.db.read() as conn:
        return {"pools": reports.summaries(conn, services.clock.now_ms())}


@router.get("/pools/{key}", summary="A coupon pool: settings, counts and revenue")
def get_pool(request: Request, _admin: Admin, key: KeyParam) -> dict[str, Any]:
    services = _services(request)
    try:
        with services.db.read() as conn:
            return reports.pool_summary(conn, key, services.clock.now_ms())
    except coupons.UnknownPool as exc:
        raise _error(exc) from None


@router.post(
    "/pools/{key}/codes",
    summary='Add codes: {"generate": n} from the pattern, or {"codes": [...]} to import',
)
def add_codes(request: Request, admin: Admin, key: KeyParam, body: CodesIn) -> dict[str, Any]:
    services = _services(request)
    if (body.generate is None) == (body.codes is None):
        raise ApiError(
            422, "invalid_request", 'Give either "generate" (a number) or "codes" (a list).'
        )
    now_ms = services.clock.now_ms()
    try:
        with services.db.write() as conn:
            pool = coupons.get_pool(conn, key)
            if pool is None:
                raise coupons.UnknownPool(key)
            if body.generate is not None:
                added = coupons.generate_codes(conn, pool.id, body.generate, now_ms)
                duplicates, action = 0, "coupon_pool.generate"
            else:
                added, duplicates = coupons.import_codes(conn, key, body.codes or [], now_ms)
                action = "coupon_pool.import"
            audit.record(
                conn,
                at_ms=now_ms,
                actor=audit.key_actor(admin),
                action=action,
                target=f"coupon pool {key}",
                details={"added": added, "duplicates": duplicates},
            )
            summary = reports.pool_summary(conn, key, now_ms)
    except (coupons.CouponError, coupons.UnknownPool) as exc:
        raise _error(exc) from None
    return {"added": added, "duplicates": duplicates, "pool": summary}


@router.get("/pools/{key}/codes", summary="A pool's codes, in the order they were added")
def list_codes(
    request: Request,
    _admin: Admin,
    key: KeyParam,
    status: Annotated[reports.Status | None, Query(description="free, issued or redeemed")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    services = _services(request)
    try:
        with services.db.read() as conn:
            return reports.list_codes(
                conn, key, services.clock.now_ms(), status=status, limit=limit, offset=offset
            )
    except coupons.UnknownPool as exc:
        raise _error(exc) from None


@router.get("", summary="The coupons a person holds (and redeemed), newest first")
def profile_coupons(
    request: Request,
    _admin: Admin,
    profile: Annotated[
        str,
        Query(
            description="type:value of the profile, e.g. email:ana@example.com or profile:7",
            examples=["email:ana@example.com"],
        ),
    ],
) -> dict[str, Any]:
    services = _services(request)
    profile_id = profile_id_for_ref(services, profile)
    with services.db.read() as conn:
        found = reports.profile_coupons(conn, profile_id, services.clock.now_ms())
    return {"profile_id": profile_id, "coupons": found}
