"""Admin API for segments: save and change them, preview a condition before saving,
read members, history and size over time, explain a profile's membership, enable the
built-in segments, and list a profile's segments and scores."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from shopkeeper.admin import audit
from shopkeeper.admin.auth import Admin
from shopkeeper.errors import ApiError
from shopkeeper.profiles.api import RefParam, profile_id_for_ref
from shopkeeper.segments import service
from shopkeeper.segments.membership import RefreshResult, refresh_segment
from shopkeeper.segments.store import SegmentError

if TYPE_CHECKING:
    from shopkeeper.bootstrap import Services

router = APIRouter(tags=["Segments"])

KeyParam = Annotated[str, Path(description="The segment's key", examples=["vip"])]
_CONDITION = WithJsonSchema(
    {
        "anyOf": [{"type": "string"}, {"type": "object"}],
        "description": (
            "The condition in the segment language (docs/segments.md), e.g. "
            "`orders_count >= 1 and last_order_at within 90 days`, or its JSON form"
        ),
    }
)


def _services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def _error(exc: Exception) -> ApiError:
    if isinstance(exc, SegmentError):
        status = 409 if exc.code == "conflict" else 422
        return ApiError(status, exc.code, exc.message, exc.field, extra=exc.details())
    if isinstance(exc, service.SegmentNotFound):
        return ApiError(404, "not_found", str(exc), "key")
    if isinstance(exc, service.SegmentInUse):
        return ApiError(409, "in_use", str(exc), "key")
    if isinstance(exc, LookupError):
        return ApiError(404, "not_found", str(exc))
    raise exc


class SegmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: Annotated[Any, WithJsonSchema({"type": "string", "examples": ["vip"]})]
    name: Annotated[Any, WithJsonSchema({"type": "string", "examples": ["VIP customers"]})]
    description: str | None = None
    condition: Annotated[Any, _CONDITION]
    realtime: bool = Field(
        default=True,
        description="Re-evaluated for a profile whenever its events are applied; otherwise "
        "refreshed for everyone every refresh_minutes",
    )
    refresh_minutes: Annotated[Any, WithJsonSchema({"type": "integer", "default": 60})] = 60


class SegmentPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[Any, WithJsonSchema({"type": "string"})] = None
    description: str | None = None
    condition: Annotated[Any, _CONDITION] = None
    realtime: bool | None = None
    refresh_minutes: Annotated[Any, WithJsonSchema({"type": "integer"})] = None


class PreviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    condition: Annotated[Any, _CONDITION]
    key: str | None = Field(
        default=None, description="The segment being edited, if any (to refuse cycles)"
    )
    sample: int = Field(default=10, ge=0, le=100)


class ExplainIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    profile: str = Field(description="type:value of the profile, e.g. email:ana@example.com")
    key: str | None = Field(default=None, description="A saved segment")
    condition: Annotated[Any, _CONDITION] = None


def _refresh_out(result: RefreshResult | None) -> dict[str, Any] | None:
    if result is None:
        return None
    return {
        "size": result.size,
        "entered": result.entered,
        "exited": result.exited,
        "seconds": round(result.seconds, 3),
    }


@router.get("/api/segments", summary="Every segment with its size and its change over 7 days")
def list_segments(request: Request, _admin: Admin) -> dict[str, Any]:
    services = _services(request)
    return {"segments": service.summaries(services.db, services.clock.now_ms())}


@router.post("/api/segments", status_code=201, summary="Save a segment")
def create_segment(request: Request, admin: Admin, body: SegmentIn) -> dict[str, Any]:
    services = _services(request)
    try:
        _segment, result = service.create(
            services.db,
            services.clock.now_ms(),
            actor=audit.key_actor(admin),
            key=body.key,
            name=body.name,
            condition=body.condition,
            description=body.description,
            realtime=body.realtime,
            refresh_minutes=body.refresh_minutes,
        )
    except (SegmentError, LookupError, service.SegmentInUse) as exc:
        raise _error(exc) from None
    out = service.detail(services.db, body.key, services.clock.now_ms())
    out["refresh"] = _refresh_out(result)
    return out


@router.post(
    "/api/segments/preview",
    summary="Count and a sample of the profiles an unsaved condition holds for",
)
def preview_segment(request: Request, _admin: Admin, body: PreviewIn) -> dict[str, Any]:
    services = _services(request)
    try:
        found = service.preview(
            services.db, body.condition, services.clock.now_ms(), key=body.key, sample=body.sample
        )
    except (SegmentError, LookupError) as exc:
        raise _error(exc) from None
    return {
        "count": found.count,
        "sample": found.sample,
        "condition": found.condition,
        "condition_json": found.condition_json,
    }


@router.post(
    "/api/segments/explain",
    summary="Why a profile is or is not in a segment (saved, or an unsaved condition)",
)
def explain_segment(request: Request, _admin: Admin, body: ExplainIn) -> dict[str, Any]:
    services = _services(request)
    if (body.key is None) == (body.condition is None):
        raise ApiError(422, "invalid_request", "Give either key or condition.", "key")
    profile_id = profile_id_for_ref(services, body.profile)
    try:
        return service.explain_membership(
            services.db,
            profile_id,
            services.clock.now_ms(),
            key=body.key,
            condition=body.condition,
        )
    except (SegmentError, LookupError) as exc:
        raise _error(exc) from None


@router.get("/api/segments/builtins", summary="The built-in segments, ready to enable")
def list_builtins(request: Request, _admin: Admin) -> dict[str, Any]:
    from shopkeeper.segments.builtins import BUILTINS

    services = _services(request)
    enabled = service.enabled_builtins(services.db)
    return {
        "builtins": [
            {
                "key": b.key,
                "name": b.name,
                "description": b.description,
                "condition": b.condition,
                "realtime": b.realtime,
                "refresh_minutes": b.refresh_minutes,
                "group": b.group,
                "enabled_as": enabled.get(b.key),
            }
            for b in BUILTINS
        ]
    }


@router.post(
    "/api/segments/builtins/{builtin}",
    status_code=201,
    summary="Enable a built-in segment (saved under its own key)",
)
def enable_builtin(
    request: Request, admin: Admin, builtin: Annotated[str, Path()]
) -> dict[str, Any]:
    from shopkeeper.segments.builtins import find_builtin

    services = _services(request)
    found = find_builtin(builtin)
    if found is None:
        raise ApiError(404, "not_found", f'There is no built-in segment "{builtin}".', "builtin")
    try:
        service.create(
            services.db,
            services.clock.now_ms(),
            actor=audit.key_actor(admin),
            key=found.key,
            name=found.name,
            condition=found.condition,
            description=found.description,
            realtime=found.realtime,
            refresh_minutes=found.refresh_minutes,
            builtin=found.key,
        )
    except (SegmentError, LookupError, service.SegmentInUse) as exc:
        raise _error(exc) from None
    return service.detail(services.db, found.key, services.clock.now_ms())


@router.get("/api/segments/{key}", summary="A segment: definition, size, size over time")
def get_segment(request: Request, _admin: Admin, key: KeyParam) -> dict[str, Any]:
    services = _services(request)
    try:
        return service.detail(services.db, key, services.clock.now_ms())
    except LookupError as exc:
        raise _error(exc) from None


@router.patch("/api/segments/{key}", summary="Change a segment (a new condition re-evaluates it)")
def update_segment(
    request: Request, admin: Admin, key: KeyParam, body: SegmentPatch
) -> dict[str, Any]:
    services = _services(request)
    changes = body.model_dump(exclude_unset=True)
    try:
        _segment, result = service.update(
            services.db, services.clock.now_ms(), key, changes, actor=audit.key_actor(admin)
        )
    except (SegmentError, LookupError) as exc:
        raise _error(exc) from None
    out = service.detail(services.db, key, services.clock.now_ms())
    out["refresh"] = _refresh_out(result)
    return out


@router.delete("/api/segments/{key}", status_code=204, summary="Delete a segment")
def delete_segment(request: Request, admin: Admin, key: KeyParam) -> Response:
    services = _services(request)
    try:
        service.delete(services.db, services.clock.now_ms(), key, actor=audit.key_actor(admin))
    except (LookupError, service.SegmentInUse) as exc:
        raise _error(exc) from None
    return Response(status_code=204)


@router.post("/api/segments/{key}/refresh", summary="Re-evaluate a segment over everyone now")
def refresh(request: Request, _admin: Admin, key: KeyParam) -> dict[str, Any]:
    services = _services(request)
    result = refresh_segment(services.db, key, services.clock.now_ms())
    if result is None:
        raise ApiError(404, "not_found", f'There is no segment "{key}".', "key")
    return {"segment": key, **(_refresh_out(result) or {})}


@router.get("/api/segments/{key}/members", summary="Members, most recent entries first")
def list_members(
    request: Request,
    _admin: Admin,
    key: KeyParam,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    services = _services(request)
    try:
        return service.members(services.db, key, limit, offset)
    except LookupError as exc:
        raise _error(exc) from None


@router.get(
    "/api/segments/{key}/history",
    summary="Entries and exits (Segment Entered / Segment Exited), newest first",
)
def list_history(
    request: Request,
    _admin: Admin,
    key: KeyParam,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    before: Annotated[int | None, Query(description="id cursor from next_before")] = None,
) -> dict[str, Any]:
    services = _services(request)
    try:
        return service.history(services.db, key, limit, before)
    except LookupError as exc:
        raise _error(exc) from None


@router.get("/api/profiles/{ref}/segments", summary="The segments a profile is in, and its scores")
def profile_segments(request: Request, _admin: Admin, ref: RefParam) -> dict[str, Any]:
    services = _services(request)
    profile_id = profile_id_for_ref(services, ref)
    return service.profile_segments(services.db, profile_id, services.clock.now_ms())
