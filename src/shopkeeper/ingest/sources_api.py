"""Admin API for sources and their write keys."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from shopkeeper.admin import audit
from shopkeeper.admin.auth import Admin
from shopkeeper.errors import ApiError
from shopkeeper.ingest import sources
from shopkeeper.timeutil import ms_to_iso

if TYPE_CHECKING:
    from shopkeeper.bootstrap import Services

router = APIRouter(prefix="/api/sources", tags=["Sources"])


class SourceIn(BaseModel):
    name: str = Field(min_length=1, max_length=200, examples=["web shop"])
    kind: str = Field(default="web", description=", ".join(sources.SOURCE_KINDS))


class SourceOut(BaseModel):
    id: int
    name: str
    kind: str
    write_key: str
    active: bool
    created_at: str
    revoked_at: str | None


class SourcesOut(BaseModel):
    sources: list[SourceOut]


def _out(source: sources.Source) -> dict[str, Any]:
    return {
        "id": source.id,
        "name": source.name,
        "kind": source.kind,
        "write_key": source.write_key,
        "active": source.active,
        "created_at": ms_to_iso(source.created_at),
        "revoked_at": ms_to_iso(source.revoked_at) if source.revoked_at else None,
    }


def _services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


@router.get("", response_model=SourcesOut, summary="Every source with its write key")
def list_sources(request: Request, _admin: Admin) -> dict[str, Any]:
    return {"sources": [_out(s) for s in sources.list_sources(_services(request).db)]}


@router.post(
    "",
    response_model=SourceOut,
    status_code=201,
    responses={409: {"description": "A source with that name exists"}},
    summary="Create a source and its write key",
)
def create_source(request: Request, admin: Admin, body: SourceIn) -> dict[str, Any]:
    services = _services(request)
    try:
        created = sources.create_source(
            services.db, body.name, body.kind, services.clock.now_ms(), audit.key_actor(admin)
        )
    except sources.SourceError as exc:
        status = 409 if "already exists" in str(exc) else 422
        raise ApiError(status, "invalid_source", str(exc), "name") from None
    return _out(created)


@router.post(
    "/{name}/revoke",
    response_model=SourceOut,
    responses={404: {"description": "No active source with that name"}},
    summary="Revoke a source's write key (events with it are refused within seconds)",
)
def revoke_source(request: Request, admin: Admin, name: str) -> dict[str, Any]:
    services = _services(request)
    try:
        revoked = sources.revoke_source(
            services.db, name, services.clock.now_ms(), audit.key_actor(admin)
        )
    except sources.SourceError as exc:
        raise ApiError(404, "not_found", str(exc), "name") from None
    return _out(revoked)
