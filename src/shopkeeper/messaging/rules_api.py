"""Admin API for the shop's sending rules (frequency caps, quiet hours): read them, change
some of them, or go back to the server's settings."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Body, Request

from shopkeeper.admin import audit
from shopkeeper.admin.auth import Admin
from shopkeeper.errors import ApiError
from shopkeeper.messaging import rules

if TYPE_CHECKING:
    from shopkeeper.bootstrap import Services

router = APIRouter(tags=["Messages"])


def _services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def _answer(services: Services) -> dict[str, Any]:
    with services.db.read() as conn:
        current = rules.load(conn, services.settings)
    return {**current.as_dict(), "defaults": rules.defaults(services.settings).as_dict()}


@router.get("/api/messaging/rules", summary="Frequency caps and quiet hours in force")
def get_rules(request: Request, _admin: Admin) -> dict[str, Any]:
    return _answer(_services(request))


@router.put(
    "/api/messaging/rules",
    summary="Change frequency caps or quiet hours (the fields given; 0 means no cap)",
)
def put_rules(
    request: Request,
    admin: Admin,
    body: dict[str, Any] = Body(  # noqa: B008 (FastAPI's way to take a free JSON object)
        ...,
        examples=[{"cap_all_day": 2, "quiet_hours_start": 22, "quiet_hours_end": 7}],
    ),
) -> dict[str, Any]:
    services = _services(request)
    now = services.clock.now_ms()
    with services.db.write() as conn:
        try:
            changed = rules.validate(body, rules.load(conn, services.settings))
        except rules.RulesInvalid as exc:
            raise ApiError(422, "invalid_rules", str(exc), exc.field) from None
        rules.save(conn, services.db, changed)
        audit.record(
            conn, at_ms=now, actor=audit.key_actor(admin), action="messaging.rules",
            target="sending rules", details=dict(body),
        )  # fmt: skip
    return _answer(services)


@router.delete("/api/messaging/rules", summary="Back to the server's settings")
def reset_rules(request: Request, admin: Admin) -> dict[str, Any]:
    services = _services(request)
    now = services.clock.now_ms()
    with services.db.write() as conn:
        rules.reset(conn)
        audit.record(
            conn, at_ms=now, actor=audit.key_actor(admin), action="messaging.rules_reset",
            target="sending rules", details={},
        )  # fmt: skip
    return _answer(services)
