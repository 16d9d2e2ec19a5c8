"""Admin API for scores: the RFM grid and its recompute, and the lead score rules."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from shopkeeper.admin import audit
from shopkeeper.admin.auth import Admin
from shopkeeper.errors import ApiError
from shopkeeper.segments.scores import lead_store
from shopkeeper.segments.scores.lead import DEFAULT_RULES, RuleError, make_event_rule
from shopkeeper.segments.scores.rfm import SEGMENT_RULES
from shopkeeper.segments.scores.rfm_job import recompute_rfm, rfm_grid
from shopkeeper.timeutil import ms_to_iso

if TYPE_CHECKING:
    from shopkeeper.bootstrap import Services

router = APIRouter(tags=["Scores"])

# Every rule is checked against every applied event: keep the list a person can read.
MAX_RULES = 500

_DESCRIPTIONS = {rule.name: rule.description for rule in SEGMENT_RULES}


def _span(bounds: tuple[int, int]) -> str:
    return str(bounds[0]) if bounds[0] == bounds[1] else f"{bounds[0]}-{bounds[1]}"


class SegmentCountOut(BaseModel):
    name: str
    customers: int


class RfmSummaryOut(BaseModel):
    computed_at: str
    customers: int = Field(description="Live profiles with at least one order")
    changed: int = Field(description="Profiles whose scores were set or changed")
    cleared: int = Field(description="Profiles that lost their scores (no longer customers)")
    segments: list[SegmentCountOut]


class GridCellOut(BaseModel):
    recency: int
    frequency: int
    segment: str
    customers: int
    revenue: float


class SegmentTotalOut(BaseModel):
    name: str
    description: str
    recency: str = Field(description="Recency scores of the segment, e.g. 4-5")
    frequency: str = Field(description="Frequency scores of the segment, e.g. 1")
    customers: int
    revenue: float


class RfmGridOut(BaseModel):
    cells: list[GridCellOut] = Field(
        description="25 cells: recency 5 down to 1, and frequency 1 to 5 within each"
    )
    segments: list[SegmentTotalOut]
    customers: int
    revenue: float = Field(description="Sum of the customers' total revenue")
    currency: str
    last_change_at: str | None = Field(description="When any profile's RFM scores last changed")


_TEXT = WithJsonSchema({"type": "string"})
_WHERE = WithJsonSchema(
    {
        "anyOf": [
            {
                "type": "object",
                "additionalProperties": {
                    "anyOf": [
                        {"type": ["string", "number", "boolean"]},
                        {"type": "array", "items": {"type": ["string", "number", "boolean"]}},
                    ]
                },
            },
            {"type": "null"},
        ]
    }
)


class LeadRuleIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            # Checked by make_event_rule (for its messages), required all the same; a
            # profile rule gives a condition instead of an event.
            "required": ["name", "points"],
            "examples": [
                {
                    "name": "Viewed a sofa",
                    "event": "Product Viewed",
                    "where": {"category": "Sofas"},
                    "points": 5,
                }
            ],
        },
    )

    # Typed loosely and checked by make_event_rule, so that every mistake gets a message
    # that names the field in the same words.
    name: Annotated[Any, _TEXT] = Field(None, description="What the rule rewards (required)")
    event: Annotated[Any, _TEXT] = Field(
        None,
        description='The event that earns the points (required). Page views are "Page Viewed", '
        'app screens "Screen Viewed".',
    )
    where: Annotated[Any, _WHERE] = Field(
        None,
        description='Filters on the event\'s properties: {"category": "Sofas"}, '
        '{"product_id": ["p1", "p2"]}; dotted paths reach nested values and list items '
        "(products.product_id).",
    )
    condition: Annotated[Any, _TEXT] = Field(
        None,
        description="Instead of an event: a condition on the profile in the segment language "
        '(e.g. `job_title contains "Manager" and country = "NO"`); the points are earned when '
        "a profile comes to satisfy it, and again only after it stopped satisfying it",
    )
    points: Annotated[Any, WithJsonSchema({"type": "number"})] = Field(
        None, description="Points per matching event, non-zero, between -1000 and 1000"
    )


class LeadRuleOut(BaseModel):
    id: int | None = Field(description="None for the built-in rules")
    name: str
    event: str | None = Field(description="None for a rule on the profile itself")
    where: dict[str, Any] | None
    condition: str | None = Field(description="The profile condition of a profile rule")
    points: float
    created_at: str | None


class LeadRulesOut(BaseModel):
    rules: list[LeadRuleOut]
    using_defaults: bool = Field(
        description="True while no rule is stored: the built-in rules listed here apply; "
        "adding a rule replaces them all"
    )
    half_life_days: float
    cap: float


def _services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


@router.post(
    "/api/scores/rfm/recompute",
    response_model=RfmSummaryOut,
    summary="Recompute every customer's RFM scores now",
)
def recompute(request: Request, admin: Admin) -> dict[str, Any]:
    services = _services(request)
    now_ms = services.clock.now_ms()
    summary = recompute_rfm(services.db, now_ms)
    with services.db.write() as conn:
        audit.record(
            conn,
            at_ms=now_ms,
            actor=audit.key_actor(admin),
            action="scores.rfm_recompute",
            details={
                "customers": summary.customers,
                "changed": summary.changed,
                "cleared": summary.cleared,
            },
        )
    return {
        "computed_at": ms_to_iso(summary.computed_at),
        "customers": summary.customers,
        "changed": summary.changed,
        "cleared": summary.cleared,
        "segments": [{"name": n, "customers": c} for n, c in summary.segments.items()],
    }


@router.get(
    "/api/scores/rfm",
    response_model=RfmGridOut,
    summary="The R x F grid (customers and revenue per cell) and the named segments",
)
def grid(request: Request, _admin: Admin) -> dict[str, Any]:
    services = _services(request)
    with services.db.read() as conn:
        found = rfm_grid(conn)
    rules = {rule.name: rule for rule in SEGMENT_RULES}
    return {
        "cells": [
            {
                "recency": c.recency,
                "frequency": c.frequency,
                "segment": c.segment,
                "customers": c.customers,
                "revenue": c.revenue,
            }
            for c in found.cells
        ],
        "segments": [
            {
                "name": s.name,
                "description": _DESCRIPTIONS[s.name],
                "recency": _span(rules[s.name].recency),
                "frequency": _span(rules[s.name].frequency),
                "customers": s.customers,
                "revenue": s.revenue,
            }
            for s in found.segments
        ],
        "customers": found.customers,
        "revenue": found.revenue,
        "currency": services.settings.shop_currency,
        "last_change_at": ms_to_iso(found.last_change_at) if found.last_change_at else None,
    }


@router.get(
    "/api/scores/lead-rules",
    response_model=LeadRulesOut,
    summary="The lead score rules in force, and the decay settings",
)
def list_lead_rules(request: Request, _admin: Admin) -> dict[str, Any]:
    services = _services(request)
    with services.db.read() as conn:
        rows = lead_store.rule_rows(conn)
    if not rows:
        rows = [
            {
                "id": None,
                "name": r.name,
                "event": r.event,
                "where": r.where(),
                "condition": None,
                "points": r.points,
                "created_at": None,
            }
            for r in DEFAULT_RULES
        ]
    return {
        "rules": rows,
        "using_defaults": all(row["id"] is None for row in rows),
        "half_life_days": services.settings.lead_score_half_life_days,
        "cap": services.settings.lead_score_cap,
    }


@router.post(
    "/api/scores/lead-rules",
    response_model=LeadRuleOut,
    status_code=201,
    responses={
        422: {"description": "The rule is not valid; the error names the field."},
        409: {"description": "There are already as many rules as allowed."},
    },
    summary="Add an event rule (the built-in rules stop applying once one is stored)",
)
def create_lead_rule(request: Request, admin: Admin, body: LeadRuleIn) -> dict[str, Any]:
    services = _services(request)
    if body.condition is not None:
        return _create_profile_rule(services, admin, body)
    try:
        rule = make_event_rule(body.name, body.event, body.where, body.points)
    except RuleError as exc:
        raise ApiError(422, "invalid_rule", str(exc), exc.field) from None
    now_ms = services.clock.now_ms()
    with services.db.write() as conn:
        _check_room(conn)
        created = lead_store.create_rule(conn, rule, now_ms)
        audit.record(
            conn,
            at_ms=now_ms,
            actor=audit.key_actor(admin),
            action="lead_rule.create",
            target=f"lead rule {created['id']}",
            details={"event": rule.event, "points": rule.points},
        )
    return created


def _check_room(conn: Any) -> None:
    if len(lead_store.rule_rows(conn)) >= MAX_RULES:
        raise ApiError(
            409,
            "limit_reached",
            f"There are already {MAX_RULES} lead score rules; delete some first.",
        )


def _create_profile_rule(services: Services, admin: Any, body: LeadRuleIn) -> dict[str, Any]:
    from shopkeeper.segments import store

    if body.event is not None or body.where is not None:
        raise ApiError(
            422,
            "invalid_rule",
            "A rule has either an event (with where) or a condition on the profile, not both",
            "condition",
        )
    try:
        # The same checks as an event rule's name and points.
        checked = make_event_rule(body.name, "profile", None, body.points)
    except RuleError as exc:
        raise ApiError(422, "invalid_rule", str(exc), exc.field) from None
    if not isinstance(body.condition, str):
        raise ApiError(
            422, "invalid_rule", "condition is text in the segment language", "condition"
        )
    now_ms = services.clock.now_ms()
    with services.db.write() as conn:
        try:
            node, text = store.read_condition(body.condition)
            store.check_references(None, node, store.conditions(conn))
        except store.SegmentError as exc:
            raise ApiError(
                422, "invalid_rule", exc.message, "condition", extra=exc.details()
            ) from None
        _check_room(conn)
        created = lead_store.create_profile_rule(conn, checked.name, text, checked.points, now_ms)
        audit.record(
            conn,
            at_ms=now_ms,
            actor=audit.key_actor(admin),
            action="lead_rule.create",
            target=f"lead rule {created['id']}",
            details={"condition": text, "points": checked.points},
        )
    return created


@router.delete(
    "/api/scores/lead-rules/{rule_id}",
    response_model=LeadRuleOut,
    responses={404: {"description": "No such rule."}},
    summary="Delete a lead score rule (scores already earned stay and decay)",
)
def delete_lead_rule(
    request: Request, admin: Admin, rule_id: Annotated[int, Path(ge=1, le=2**63 - 1)]
) -> dict[str, Any]:
    services = _services(request)
    now_ms = services.clock.now_ms()
    with services.db.write() as conn:
        deleted = lead_store.delete_rule(conn, rule_id)
        if deleted is None:
            raise ApiError(404, "not_found", f"No lead score rule with id {rule_id}.", "rule_id")
        audit.record(
            conn,
            at_ms=now_ms,
            actor=audit.key_actor(admin),
            action="lead_rule.delete",
            target=f"lead rule {rule_id}",
            details={"event": deleted["event"], "points": deleted["points"]},
        )
    return deleted
