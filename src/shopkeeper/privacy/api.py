"""Admin API for privacy requests: export a person's data, erase it, and the suppression
list that keeps an erased person from coming back."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from shopkeeper.admin import audit
from shopkeeper.admin.auth import Admin
from shopkeeper.errors import ApiError
from shopkeeper.identity.identifiers import IdentifierExtractor, JunkFilter
from shopkeeper.privacy import suppression
from shopkeeper.privacy.erase import erase_profile
from shopkeeper.privacy.export import open_export_stream, record_export
from shopkeeper.privacy.person import ProfileNotFound
from shopkeeper.profiles.api import RefParam, profile_id_for_ref

if TYPE_CHECKING:
    from shopkeeper.bootstrap import Services

router = APIRouter(tags=["Privacy"])


class EraseOut(BaseModel):
    """Counts only: no personal data in the answer."""

    profile_id: int
    absorbed_profile_ids: list[int]
    profiles_deleted: int
    identities_deleted: int
    identities_suppressed: int = Field(description="Identifiers put on the suppression list")
    events_deleted: int
    unapplied_events_deleted: int = Field(
        description="Of events_deleted: pending or parked events carrying the identifiers"
    )
    consents_deleted: int
    merges_deleted: int


class SuppressionsOut(BaseModel):
    entries: dict[str, int] = Field(description="Suppressed identifiers per type")
    total: int
    dropped_events: int = Field(
        description="Events deleted because they carried a suppressed identifier, ever"
    )


class RemoveIn(BaseModel):
    type: Annotated[str, Field(min_length=1, max_length=100, examples=["email"])]
    value: Annotated[str, Field(min_length=1, max_length=500, examples=["ana@example.com"])]


class RemoveOut(BaseModel):
    removed: bool
    type: str


_REF_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "The reference is not type:value"},
    404: {"description": "No profile holds that identifier"},
}


def _services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def _extractor(services: Services) -> IdentifierExtractor:
    settings = services.settings
    return IdentifierExtractor(JunkFilter(settings.junk_identifiers), settings.default_phone_region)


@router.get(
    "/api/profiles/{ref}/export",
    responses={
        200: {"description": "The document", "content": {"application/json": {}}},
        **_REF_ERRORS,
    },
    summary="Everything held about a person, as one JSON document (streamed)",
)
def export(request: Request, admin: Admin, ref: RefParam) -> StreamingResponse:
    services = _services(request)
    profile_id = profile_id_for_ref(services, ref)
    now = services.clock.now_ms()
    try:
        stream = open_export_stream(
            services.db, profile_id, now_ms=now, extractor=_extractor(services)
        )
    except ProfileNotFound:
        raise ApiError(404, "not_found", f"No profile holds {ref}.", "ref") from None
    try:
        record_export(services.db, profile_id, now, audit.key_actor(admin))
    except BaseException:
        stream.close()  # give its read transaction back now, not at garbage collection
        raise
    return StreamingResponse(
        stream,
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="profile-{profile_id}.json"'},
    )


@router.delete(
    "/api/profiles/{ref}",
    response_model=EraseOut,
    responses=_REF_ERRORS,
    summary="Erase a person: every row holding their data, in one transaction",
)
def erase(request: Request, admin: Admin, ref: RefParam) -> dict[str, Any]:
    services = _services(request)
    profile_id = profile_id_for_ref(services, ref)
    try:
        summary = erase_profile(
            services.db,
            profile_id,
            services.clock.now_ms(),
            audit.key_actor(admin),
            extractor=_extractor(services),
        )
    except ProfileNotFound:
        raise ApiError(404, "not_found", f"No profile holds {ref}.", "ref") from None
    return summary.as_dict()


@router.get(
    "/api/suppressions",
    response_model=SuppressionsOut,
    summary="How many identifiers are suppressed, and how many events they dropped",
)
def suppressions(request: Request, _admin: Admin) -> dict[str, Any]:
    services = _services(request)
    with services.db.read() as conn:
        entries = suppression.counts_by_type(conn)
        dropped = suppression.dropped_count(conn)
    return {"entries": entries, "total": sum(entries.values()), "dropped_events": dropped}


@router.post(
    "/api/suppressions/remove",
    response_model=RemoveOut,
    responses={404: {"description": "That identifier is not suppressed"}},
    summary="Stop suppressing one identifier (its events are accepted again)",
)
def remove_suppression(request: Request, admin: Admin, body: RemoveIn) -> dict[str, Any]:
    services = _services(request)
    type_ = body.type.strip().lower()
    value = suppression.normalize_value(type_, body.value, services.settings.default_phone_region)
    now = services.clock.now_ms()
    with services.db.write() as conn:
        removed = suppression.remove(conn, type_, value)
        if removed:
            audit.record(
                conn,
                at_ms=now,
                actor=audit.key_actor(admin),
                action="suppression.remove",
                target=f"suppression {type_}",
            )
    if not removed:
        raise ApiError(404, "not_found", f"That {type_} is not suppressed.", "value")
    return {"removed": True, "type": type_}
