"""GET /api/segments/{key}/export.csv: a segment's members with chosen fields, or with
an advertising platform's hashed identifiers, as a streamed CSV download."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import StreamingResponse

from shopkeeper.admin import audit
from shopkeeper.admin.auth import Admin
from shopkeeper.errors import ApiError
from shopkeeper.segments.audiences.export import open_csv_stream
from shopkeeper.segments.audiences.fields import UnknownField, parse_fields
from shopkeeper.segments.audiences.hashing import COLUMNS, columns_for
from shopkeeper.segments.audiences.members import RecordBuilder, member_count, segment_by_key

if TYPE_CHECKING:
    from shopkeeper.bootstrap import Services

router = APIRouter(tags=["Audiences"])

_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]+")


def builder_for_export(
    fields: str | None, hashed: Literal["meta", "google"] | None, default_region: str | None
) -> RecordBuilder:
    """Raises ApiError 422 naming the field that is not known (or not hashable)."""
    if hashed is None:
        try:
            return RecordBuilder(fields=parse_fields(fields), default_region=default_region)
        except UnknownField as exc:
            raise ApiError(422, "unknown_field", str(exc), "fields") from None
    names = [name.strip() for name in (fields or "").split(",") if name.strip()]
    if not names:
        names = [column.field for column in COLUMNS[hashed]]
    try:
        return RecordBuilder(columns=columns_for(hashed, names), default_region=default_region)
    except ValueError as exc:
        raise ApiError(422, "unknown_field", str(exc), "fields") from None


@router.get(
    "/api/segments/{key}/export.csv",
    response_class=StreamingResponse,
    responses={
        200: {"description": "The members, one row each", "content": {"text/csv": {}}},
        404: {"description": "No segment has that key"},
        422: {"description": "A field is not known (or cannot be hashed for that platform)"},
    },
    summary="Export a segment's members as CSV (streamed)",
)
def export_csv(
    request: Request,
    admin: Admin,
    key: Annotated[str, Path(description="The segment's key", examples=["vip"])],
    fields: Annotated[
        str | None,
        Query(
            description=(
                "Comma-separated: profile_id, email, phone, user_id, first_name, last_name, "
                "name, country, city, postal_code, locale, a computed attribute "
                "(orders_count), or a trait path (traits.plan). Default: profile_id, "
                "email, phone, first_name, last_name, country. With `hashed`: the "
                "identifiers to include (default: all the platform matches on)."
            ),
            examples=["email,first_name,orders_count"],
        ),
    ] = None,
    hashed: Annotated[
        Literal["meta", "google"] | None,
        Query(
            description=(
                "Identifiers normalised and SHA-256 hashed the way Meta (Custom Audiences) "
                "or Google (Customer Match) match them, with that platform's column names"
            )
        ),
    ] = None,
) -> StreamingResponse:
    services: Services = request.app.state.services
    builder = builder_for_export(fields, hashed, services.settings.default_phone_region)
    with services.db.read() as conn:
        segment = segment_by_key(conn, key)
        if segment is None:
            raise ApiError(404, "not_found", f'No segment has the key "{key}".', "key")
        members = member_count(conn, segment.id)
    stream = open_csv_stream(services.db, segment.id, builder)
    try:
        with services.db.write() as conn:
            audit.record(
                conn,
                at_ms=services.clock.now_ms(),
                actor=audit.key_actor(admin),
                action="segment.export",
                target=f"segment {segment.id}",
                details={"fields": builder.headers, "hashed": hashed, "members": members},
            )
    except BaseException:
        stream.close()  # give its read transaction back now, not at garbage collection
        raise
    name = _UNSAFE_FILENAME.sub("-", segment.key).strip("-") or "segment"
    suffix = f"-{hashed}" if hashed else ""
    return StreamingResponse(
        stream,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="segment-{name}{suffix}.csv"'},
    )
