"""Admin API for profiles: the single customer view, the timeline, search."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, Field

from shopkeeper.admin.auth import Admin
from shopkeeper.errors import ApiError
from shopkeeper.profiles import view

if TYPE_CHECKING:
    from shopkeeper.bootstrap import Services

router = APIRouter(prefix="/api/profiles", tags=["Profiles"])

RefParam = Annotated[
    str,
    Path(
        description=(
            "type:value, where type is profile, user_id, anonymous_id, email or phone (or "
            "another identifier type such as device_id); e.g. email:ana@example.com"
        ),
        examples=["email:ana@example.com"],
    ),
]


class IdentityOut(BaseModel):
    type: str
    value: str
    first_seen_at: str
    last_seen_at: str
    source: str | None


class ConsentOut(BaseModel):
    channel: str = Field(description="email, sms, whatsapp, push, in_app, or * for all")
    purpose: str
    granted: bool
    updated_at: str
    source: str | None
    via: str = Field(description="Where it came from: trait:<name>, context.consent, event:<name>")
    message_id: str | None


class IdentifierOut(BaseModel):
    type: str
    value: str


class MergeOut(BaseModel):
    at: str
    status: str = Field(description="merged, or refused (the two profiles stay apart)")
    survivor_id: int
    other_id: int
    reason: str
    identifiers: list[IdentifierOut]
    message_id: str | None
    event_type: str | None


class ProfileOut(BaseModel):
    profile_id: int
    display_name: str | None
    is_known: bool
    created_at: str
    updated_at: str
    identities: list[IdentityOut]
    traits: dict[str, Any]
    computed: dict[str, Any]
    consents: list[ConsentOut]
    merges: list[MergeOut]
    absorbed_profile_ids: list[int]


class EventOut(BaseModel):
    seq: int
    message_id: str | None
    type: str
    event: str | None
    timestamp: str
    received_at: str
    source: str | None
    user_id: str | None
    anonymous_id: str | None
    properties: dict[str, Any]
    traits: dict[str, Any]
    context: dict[str, Any]


class EventsOut(BaseModel):
    profile_id: int
    events: list[EventOut]
    next_before: int | None = Field(description="Pass as `before` to get the next page")


class SearchHit(BaseModel):
    profile_id: int
    display_name: str | None
    is_known: bool
    last_seen_at: str | None
    orders_count: int | float


class SearchOut(BaseModel):
    query: str
    results: list[SearchHit]


_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No profile holds that identifier."}
}


def _services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def profile_id_for_ref(services: Services, ref: str) -> int:
    """The profile a `type:value` reference names: 400 if malformed, 404 if nobody."""
    try:
        type_, value = view.parse_ref(ref)
        with services.db.read() as conn:
            profile_id = view.resolve(conn, type_, value)
    except view.BadRef as exc:
        raise ApiError(400, "invalid_ref", str(exc), "ref") from None
    if profile_id is None:
        raise ApiError(404, "not_found", f"No profile holds {ref}.", "ref")
    return profile_id


@router.get(
    "",
    response_model=SearchOut,
    summary="Search profiles by identifier (prefix) or name",
)
def search_profiles(
    request: Request,
    _admin: Admin,
    query: Annotated[str, Query(min_length=1, max_length=500)],
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
) -> dict[str, Any]:
    services = _services(request)
    with services.db.read() as conn:
        results = view.search(conn, query, limit)
    return {"query": query, "results": results}


@router.get(
    "/{ref}",
    response_model=ProfileOut,
    responses=_NOT_FOUND,
    summary="The single customer view",
)
def get_profile(request: Request, _admin: Admin, ref: RefParam) -> dict[str, Any]:
    services = _services(request)
    profile_id = profile_id_for_ref(services, ref)
    with services.db.read() as conn:
        found = view.customer_view(conn, profile_id)
    if found is None:
        raise ApiError(404, "not_found", f"No profile holds {ref}.", "ref")
    return found


@router.get(
    "/{ref}/events",
    response_model=EventsOut,
    responses=_NOT_FOUND,
    summary="The profile's timeline, newest first",
)
def get_profile_events(
    request: Request,
    _admin: Admin,
    ref: RefParam,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    before: Annotated[int | None, Query(description="seq cursor from next_before")] = None,
) -> dict[str, Any]:
    services = _services(request)
    profile_id = profile_id_for_ref(services, ref)
    with services.db.read() as conn:
        events = view.timeline(conn, profile_id, limit, before)
    next_before = events[-1]["seq"] if len(events) == limit else None
    return {"profile_id": profile_id, "events": events, "next_before": next_before}
