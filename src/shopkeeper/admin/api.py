"""Admin API for the audit log: who did what, newest first."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from shopkeeper.admin import audit
from shopkeeper.admin.auth import Admin

if TYPE_CHECKING:
    from shopkeeper.bootstrap import Services

router = APIRouter(prefix="/api/audit", tags=["Audit log"])


class AuditEntryOut(BaseModel):
    id: int
    at: str
    actor: str
    action: str
    target: str | None
    details: dict[str, Any]


class AuditOut(BaseModel):
    entries: list[AuditEntryOut]
    next_offset: int | None


@router.get("", response_model=AuditOut, summary="Admin actions, newest first")
def list_audit(
    request: Request,
    _admin: Admin,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
    action: Annotated[
        str | None,
        Query(
            max_length=100,
            description="One action (`profile.erase`) or, ending in a dot, a family (`profile.`).",
        ),
    ] = None,
) -> dict[str, Any]:
    services: Services = request.app.state.services
    with services.db.read() as conn:
        entries = audit.recent(conn, limit + 1, offset, action)
    more = len(entries) > limit
    return {"entries": entries[:limit], "next_offset": offset + limit if more else None}
