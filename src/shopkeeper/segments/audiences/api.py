"""Admin API for audiences kept in sync with a segment at a webhook destination."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any, Literal

import httpx
from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from shopkeeper.admin import audit
from shopkeeper.admin.auth import Admin
from shopkeeper.admin.keys import AdminKey
from shopkeeper.errors import ApiError
from shopkeeper.segments.audiences import store
from shopkeeper.segments.audiences.destinations import DestinationRefused, check_url
from shopkeeper.segments.audiences.fields import UnknownField, parse_fields
from shopkeeper.segments.audiences.hashing import COLUMNS, columns_for
from shopkeeper.segments.audiences.members import segment_by_key
from shopkeeper.segments.audiences.sync import run_sync_now
from shopkeeper.timeutil import ms_to_iso

if TYPE_CHECKING:
    from shopkeeper.bootstrap import Services

router = APIRouter(prefix="/api/audiences", tags=["Audiences"])

Kind = Literal["webhook", "meta", "google"]
IdParam = Annotated[int, Path(description="The audience's id", ge=1)]

_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")
# Set by the HTTP client from the request itself; a copy from the user would conflict.
_RESERVED_HEADERS = {"host", "content-length", "content-type", "transfer-encoding", "connection"}
MAX_HEADERS = 20


class AudienceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    segment: str = Field(min_length=1, max_length=100, description="The segment's key")
    name: str = Field(min_length=1, max_length=200)
    kind: Kind = Field(
        default="webhook",
        description="webhook: the chosen fields as they are; meta, google: that platform's "
        "normalised and SHA-256 hashed identifiers",
    )
    url: str = Field(min_length=1, max_length=2000, examples=["https://hooks.example.com/vip"])
    headers: dict[str, str] = Field(
        default_factory=dict, description="Sent with every request, e.g. an Authorization token"
    )
    fields: list[str] | None = Field(
        default=None,
        description="webhook: fields as in the CSV export; meta, google: the identifiers "
        "to send (default: all the platform matches on)",
    )
    interval_minutes: int = Field(default=60, ge=1, le=7 * 24 * 60)
    active: bool = True


class AudiencePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    active: bool | None = None
    url: str | None = Field(default=None, min_length=1, max_length=2000)
    headers: dict[str, str] | None = Field(default=None, description="Replaces all headers")
    interval_minutes: int | None = Field(default=None, ge=1, le=7 * 24 * 60)
    resync: bool = Field(
        default=False,
        description="Send every member again as a full load (after a destination lost its "
        "list, or to a new URL)",
    )


class AudienceOut(BaseModel):
    id: int
    segment: str | None = Field(description="The segment's key; null once it was deleted")
    segment_id: int
    name: str
    kind: Kind
    url: str
    header_names: list[str] = Field(description="Header values are not shown: they hold secrets")
    fields: list[str]
    interval_minutes: int
    active: bool
    cursor: int = Field(description="The last membership-history id the destination has")
    full_load_pending: bool = Field(description="Every member is (still) to be sent")
    running: bool
    next_run_at: str
    failures: int = Field(description="Failed attempts in a row")
    last_error: str | None
    created_at: str
    updated_at: str


class RunOut(BaseModel):
    id: int
    started_at: str
    finished_at: str | None
    added: int
    removed: int
    from_cursor: int
    to_cursor: int
    full_load: bool = Field(description="Part of a full load (members sent as additions)")
    status: Literal["ok", "failed"]
    error: str | None


class SyncNowOut(BaseModel):
    status: str = Field(description="ok, more (more batches follow soon), up_to_date, failed")
    error: str | None
    runs: list[RunOut]


def _services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def _out(sync: store.AudienceSync, now_ms: int) -> dict[str, Any]:
    return {
        "id": sync.id,
        "segment": sync.segment_key,
        "segment_id": sync.segment_id,
        "name": sync.name,
        "kind": sync.kind,
        "url": sync.url,
        "header_names": sorted(sync.headers),
        "fields": sync.fields,
        "interval_minutes": sync.interval_minutes,
        "active": sync.active,
        "cursor": sync.cursor,
        "full_load_pending": sync.full_load_after is not None,
        "running": sync.lease_until is not None and sync.lease_until > now_ms,
        "next_run_at": ms_to_iso(sync.next_run_at),
        "failures": sync.failures,
        "last_error": sync.last_error,
        "created_at": ms_to_iso(sync.created_at),
        "updated_at": ms_to_iso(sync.updated_at),
    }


def _run_out(run: dict[str, Any]) -> dict[str, Any]:
    # A full-load page keeps the cursor where it is; a delta always moves it forward.
    return {**run, "full_load": run["from_cursor"] == run["to_cursor"]}


def _checked_fields(kind: str, fields: list[str] | None) -> list[str]:
    try:
        if kind == "webhook":
            return [spec.name for spec in parse_fields(fields)]
        platform: Literal["meta", "google"] = "meta" if kind == "meta" else "google"
        names = [name.strip() for name in fields or [] if name.strip()]
        if not names:
            names = [column.field for column in COLUMNS[platform]]
        return [column.field for column in columns_for(platform, names)]
    except (UnknownField, ValueError) as exc:
        raise ApiError(422, "unknown_field", str(exc), "fields") from None


def _checked_headers(headers: dict[str, str]) -> dict[str, str]:
    if len(headers) > MAX_HEADERS:
        raise ApiError(422, "invalid_headers", f"At most {MAX_HEADERS} headers.", "headers")
    for name, value in headers.items():
        if not _HEADER_NAME.match(name):
            raise ApiError(422, "invalid_headers", f'"{name}" is not a header name.', "headers")
        if name.lower() in _RESERVED_HEADERS:
            raise ApiError(
                422, "invalid_headers", f"{name} is set by Shopkeeper itself.", "headers"
            )
        if len(value) > 4000 or any(ch in value for ch in "\r\n\0"):
            raise ApiError(
                422,
                "invalid_headers",
                f"The value of {name} is too long or spans lines.",
                "headers",
            )
    return headers


def _checked_url(services: Services, url: str) -> str:
    url = url.strip()
    try:
        check_url(url, allow_private=services.settings.webhook_allow_private)
    except DestinationRefused as exc:
        raise ApiError(422, "url_refused", str(exc), "url") from None
    return url


def _get(services: Services, sync_id: int) -> store.AudienceSync:
    with services.db.read() as conn:
        sync = store.get(conn, sync_id)
    if sync is None:
        raise ApiError(404, "not_found", f"No audience has the id {sync_id}.", "id")
    return sync


def _audit(services: Services, admin: AdminKey, action: str, sync_id: int, **details: Any) -> None:
    with services.db.write() as conn:
        audit.record(
            conn,
            at_ms=services.clock.now_ms(),
            actor=audit.key_actor(admin),
            action=action,
            target=f"audience {sync_id}",
            details=details,
        )


_ERRORS: dict[int | str, dict[str, Any]] = {404: {"description": "No audience has that id"}}


@router.post(
    "",
    status_code=201,
    response_model=AudienceOut,
    responses={422: {"description": "Unknown segment or field, or a URL that is refused"}},
    summary="Keep an audience in sync with a segment",
)
def create_audience(request: Request, admin: Admin, body: AudienceIn) -> dict[str, Any]:
    services = _services(request)
    fields = _checked_fields(body.kind, body.fields)
    headers = _checked_headers(body.headers)
    url = _checked_url(services, body.url)
    now = services.clock.now_ms()
    with services.db.write() as conn:
        segment = segment_by_key(conn, body.segment)
        if segment is None:
            raise ApiError(
                422, "unknown_segment", f'No segment has the key "{body.segment}".', "segment"
            )
        sync_id = store.create(
            conn,
            segment_id=segment.id,
            name=body.name.strip(),
            kind=body.kind,
            url=url,
            headers=headers,
            fields=fields,
            interval_minutes=body.interval_minutes,
            active=body.active,
            now_ms=now,
        )
        audit.record(
            conn,
            at_ms=now,
            actor=audit.key_actor(admin),
            action="audience.create",
            target=f"audience {sync_id}",
            details={"segment_id": segment.id, "kind": body.kind},
        )
    return _out(_get(services, sync_id), now)


@router.get("", response_model=list[AudienceOut], summary="Audiences, oldest first")
def list_audiences(
    request: Request,
    _admin: Admin,
    segment: Annotated[str | None, Query(description="Only this segment's (its key)")] = None,
) -> list[dict[str, Any]]:
    services = _services(request)
    now = services.clock.now_ms()
    with services.db.read() as conn:
        segment_id = None
        if segment is not None:
            found = segment_by_key(conn, segment)
            if found is None:
                raise ApiError(404, "not_found", f'No segment has the key "{segment}".', "segment")
            segment_id = found.id
        syncs = store.list_syncs(conn, segment_id)
    return [_out(sync, now) for sync in syncs]


@router.get("/{id}", response_model=AudienceOut, responses=_ERRORS, summary="One audience")
def get_audience(request: Request, _admin: Admin, id: IdParam) -> dict[str, Any]:
    services = _services(request)
    return _out(_get(services, id), services.clock.now_ms())


@router.patch(
    "/{id}",
    response_model=AudienceOut,
    responses={**_ERRORS, 409: {"description": "A sync of this audience is running"}},
    summary="Pause, resume, move, re-schedule or resync an audience",
)
def update_audience(
    request: Request, admin: Admin, id: IdParam, body: AudiencePatch
) -> dict[str, Any]:
    services = _services(request)
    now = services.clock.now_ms()
    sync = _get(services, id)
    values: dict[str, Any] = {}
    if body.name is not None:
        values["name"] = body.name.strip()
    if body.active is not None:
        values["active"] = body.active
        if body.active and not sync.active:
            values.update(next_run_at=now, failures=0, last_error=None)
    if body.url is not None:
        values["url"] = _checked_url(services, body.url)
    if body.headers is not None:
        values["headers"] = _checked_headers(body.headers)
    if body.interval_minutes is not None:
        values["interval_minutes"] = body.interval_minutes
        values["next_run_at"] = min(sync.next_run_at, now + body.interval_minutes * 60_000)
    if body.resync:
        values.update(full_load_after=store.FULL_LOAD_PENDING, next_run_at=now)
    if values:
        with services.db.write() as conn:
            changed = store.update_idle(conn, id, values, now)
            if not changed:
                raise ApiError(
                    409, "conflict", "This audience is being synced right now; try again shortly."
                )
            audit.record(
                conn,
                at_ms=now,
                actor=audit.key_actor(admin),
                action="audience.update",
                target=f"audience {id}",
                details={"changed": sorted(key for key in body.model_fields_set)},
            )
    return _out(_get(services, id), now)


@router.delete("/{id}", status_code=204, responses=_ERRORS, summary="Stop and forget an audience")
def delete_audience(request: Request, admin: Admin, id: IdParam) -> Response:
    services = _services(request)
    with services.db.write() as conn:
        if not store.delete(conn, id):
            raise ApiError(404, "not_found", f"No audience has the id {id}.", "id")
        audit.record(
            conn,
            at_ms=services.clock.now_ms(),
            actor=audit.key_actor(admin),
            action="audience.delete",
            target=f"audience {id}",
        )
    return Response(status_code=204)


@router.get(
    "/{id}/runs",
    response_model=list[RunOut],
    responses=_ERRORS,
    summary="The sync history: each request sent, newest first",
)
def list_runs(
    request: Request,
    _admin: Admin,
    id: IdParam,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[dict[str, Any]]:
    services = _services(request)
    _get(services, id)
    with services.db.read() as conn:
        return [_run_out(run) for run in store.runs(conn, id, limit, offset)]


@router.post(
    "/{id}/run",
    response_model=SyncNowOut,
    responses={**_ERRORS, 409: {"description": "Paused, or a sync is running"}},
    summary="Sync now: send what changed (or the full load) at once",
)
def sync_now(request: Request, admin: Admin, id: IdParam) -> dict[str, Any]:
    services = _services(request)
    sync = _get(services, id)
    if not sync.active:
        raise ApiError(409, "conflict", "This audience is paused; resume it first.")
    settings = services.settings
    with httpx.Client(timeout=settings.audience_sync_timeout_seconds) as client:
        outcome = run_sync_now(
            services.db, settings, id, services.clock.now_ms(), client, clock=services.clock.now_ms
        )
    if outcome.status == "busy":
        raise ApiError(409, "conflict", "This audience is being synced right now.")
    _audit(services, admin, "audience.run", id, status=outcome.status)
    with services.db.read() as conn:
        runs = [run for run in store.runs(conn, id, limit=500) if run["id"] in outcome.run_ids]
    return {
        "status": outcome.status,
        "error": outcome.error,
        "runs": [_run_out(run) for run in reversed(runs)],
    }
