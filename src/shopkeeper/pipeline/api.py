"""Admin API for the pipeline: how much is waiting, what is parked, retrying it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from shopkeeper.admin.auth import Admin
from shopkeeper.errors import ApiError
from shopkeeper.ingest import log as event_log
from shopkeeper.privacy import suppression
from shopkeeper.timeutil import ms_to_iso

if TYPE_CHECKING:
    from shopkeeper.bootstrap import Services

router = APIRouter(prefix="/api/pipeline", tags=["Pipeline"])


class StatusOut(BaseModel):
    pending: int = Field(description="Events in the log not yet applied")
    parked: int = Field(description="Events that failed and wait for a retry")
    lag_seconds: float = Field(description="Age of the oldest pending event")
    in_process_worker: bool = Field(description="Whether this server runs a pipeline worker")
    suppressed: int = Field(description="Events dropped for carrying an erased person's identifier")


class ParkedEvent(BaseModel):
    seq: int
    message_id: str
    type: str
    event: str | None
    user_id: str | None
    anonymous_id: str | None
    received_at: str
    parked_at: str | None
    error: str | None
    payload: dict[str, Any]


class ParkedOut(BaseModel):
    parked: list[ParkedEvent]


class RetryOut(BaseModel):
    requeued: int


def _services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


@router.get("/status", response_model=StatusOut, summary="Pending and parked events")
def status(request: Request, _admin: Admin) -> dict[str, Any]:
    services = _services(request)
    with services.db.read() as conn:
        counts = event_log.status_counts(conn, services.clock.now_ms())
        suppressed = suppression.dropped_count(conn)
    return {**counts, "in_process_worker": services.runner is not None, "suppressed": suppressed}


@router.get("/parked", response_model=ParkedOut, summary="Events that could not be applied")
def parked(
    request: Request,
    _admin: Admin,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    services = _services(request)
    with services.db.read() as conn:
        rows = event_log.parked(conn, limit, offset)
    return {
        "parked": [
            {
                **{k: row[k] for k in ("seq", "message_id", "type", "event", "error", "payload")},
                "user_id": row["user_id"],
                "anonymous_id": row["anonymous_id"],
                "received_at": ms_to_iso(row["received_at"]),
                "parked_at": ms_to_iso(row["processed_at"]) if row["processed_at"] else None,
            }
            for row in rows
        ]
    }


@router.post("/parked/retry", response_model=RetryOut, summary="Requeue every parked event")
def retry_all(request: Request, _admin: Admin) -> dict[str, int]:
    services = _services(request)
    with services.db.write() as conn:
        count = event_log.retry_parked(conn, None)
    if services.runner is not None:
        services.runner.wake()
    return {"requeued": count}


@router.post(
    "/parked/{seq}/retry",
    response_model=RetryOut,
    responses={404: {"description": "No parked event with that seq"}},
    summary="Requeue one parked event",
)
def retry_one(request: Request, _admin: Admin, seq: int) -> dict[str, int]:
    services = _services(request)
    with services.db.write() as conn:
        count = event_log.retry_parked(conn, seq)
    if count == 0:
        raise ApiError(404, "not_found", f"No parked event with seq {seq}.", "seq")
    if services.runner is not None:
        services.runner.wake()
    return {"requeued": count}
