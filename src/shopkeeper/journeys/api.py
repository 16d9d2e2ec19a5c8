"""Admin API for journeys: save (JSON or YAML), validate, switch on and off, enroll a
person through the API, and read results, steps and enrollments."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from shopkeeper.admin import audit
from shopkeeper.admin.auth import Admin
from shopkeeper.errors import ApiError
from shopkeeper.journeys import service, store
from shopkeeper.journeys.definition import JourneyInvalid
from shopkeeper.profiles.api import profile_id_for_ref

if TYPE_CHECKING:
    from shopkeeper.bootstrap import Services

router = APIRouter(tags=["Journeys"])

KeyParam = Annotated[str, Path(description="The journey's key", examples=["abandoned_cart"])]
_DEFINITION = WithJsonSchema(
    {
        "anyOf": [{"type": "object"}, {"type": "string"}],
        "description": "The journey definition as a JSON object, or as YAML text "
        "(docs/journeys.md)",
    }
)


def _services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def _error(exc: Exception) -> ApiError:
    if isinstance(exc, JourneyInvalid):
        return ApiError(422, "invalid_journey", exc.message, exc.path)
    if isinstance(exc, service.JourneyNotFound):
        return ApiError(404, "not_found", str(exc), "key")
    if isinstance(exc, service.JourneyConflict):
        return ApiError(409, "conflict", str(exc), "key")
    raise exc


class JourneyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: Annotated[Any, WithJsonSchema({"type": "string", "examples": ["abandoned_cart"]})]
    definition: Annotated[Any, _DEFINITION]
    status: str = Field(default="draft", description="draft or active")


class DefinitionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    definition: Annotated[Any, _DEFINITION]


class StatusIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: str = Field(description="draft, active, paused or archived")


class EnrollIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    profile: str = Field(description="type:value of the person, e.g. email:ana@example.com")
    properties: dict[str, Any] = Field(default_factory=dict)
    key: str | None = Field(
        default=None,
        max_length=200,
        description="Makes the call idempotent: the same key never enrolls twice",
    )


@router.get("/api/journeys", summary="Every journey with its status and key figures")
def list_journeys(request: Request, _admin: Admin) -> dict[str, Any]:
    return {"journeys": service.summaries(_services(request).db)}


@router.post("/api/journeys", status_code=201, summary="Save a journey (JSON or YAML)")
def create_journey(request: Request, admin: Admin, body: JourneyIn) -> dict[str, Any]:
    services = _services(request)
    try:
        journey = service.create(
            services.db,
            services.clock.now_ms(),
            actor=audit.key_actor(admin),
            key=body.key,
            definition=body.definition,
            status=body.status,
        )
    except (JourneyInvalid, service.JourneyConflict) as exc:
        raise _error(exc) from None
    return service.detail(services.db, journey.key)


@router.post("/api/journeys/validate", summary="Check a definition without saving it")
def validate_journey(request: Request, _admin: Admin, body: DefinitionIn) -> dict[str, Any]:
    services = _services(request)
    try:
        parsed = service.read(body.definition)
        with services.db.read() as conn:
            service.check_references(conn, parsed.definition, for_activation=False)
    except JourneyInvalid as exc:
        return {"valid": False, "error": {"message": exc.message, "field": exc.path}}
    return {
        "valid": True,
        "name": parsed.definition.name,
        "entry": service.entry_text(parsed.definition),
        "steps": [
            {"id": s.id, "type": s.type, "targets": s.targets()} for s in parsed.definition.steps
        ],
    }


@router.get("/api/journeys/{key}", summary="A journey: definition, versions, results per step")
def get_journey(request: Request, _admin: Admin, key: KeyParam) -> dict[str, Any]:
    try:
        return service.detail(_services(request).db, key)
    except service.JourneyNotFound as exc:
        raise _error(exc) from None


@router.put(
    "/api/journeys/{key}",
    summary="Change a journey's definition (a new version; enrollments in flight keep theirs)",
)
def update_journey(
    request: Request, admin: Admin, key: KeyParam, body: DefinitionIn
) -> dict[str, Any]:
    services = _services(request)
    try:
        service.update(
            services.db,
            services.clock.now_ms(),
            actor=audit.key_actor(admin),
            key=key,
            definition=body.definition,
        )
    except (JourneyInvalid, service.JourneyNotFound, service.JourneyConflict) as exc:
        raise _error(exc) from None
    return service.detail(services.db, key)


@router.post("/api/journeys/{key}/status", summary="Switch a journey on, pause or archive it")
def set_journey_status(
    request: Request, admin: Admin, key: KeyParam, body: StatusIn
) -> dict[str, Any]:
    services = _services(request)
    now = services.clock.now_ms()
    try:
        journey, stop = service.set_status(
            services.db, now, actor=audit.key_actor(admin), key=key, status=body.status
        )
    except (JourneyInvalid, service.JourneyNotFound, service.JourneyConflict) as exc:
        raise _error(exc) from None
    stopped = 0
    if stop and services.journeys is not None:
        stopped = services.journeys.stop_journey(journey.id, "the journey was archived", now)
    out = service.detail(services.db, key)
    out["stopped"] = stopped
    return out


@router.post(
    "/api/journeys/{key}/enrollments",
    summary="Enroll a person (journeys whose entry is `api`)",
)
def enroll(request: Request, admin: Admin, key: KeyParam, body: EnrollIn) -> dict[str, Any]:
    services = _services(request)
    profile_id = profile_id_for_ref(services, body.profile)
    now = services.clock.now_ms()
    assert services.journeys is not None
    with services.db.write() as conn:
        journey = store.get_journey(conn, key)
        if journey is None:
            raise ApiError(404, "not_found", f'There is no journey "{key}".', "key")
        if journey.status != "active":
            raise ApiError(409, "not_active", f'The journey "{key}" is {journey.status}.', "key")
        row, reason = services.journeys.enroll_by_api(
            conn, journey, profile_id, body.properties, body.key or f"{profile_id}:{now}", now
        )
        if row is None and reason == "this journey is not entered through the API":
            raise ApiError(409, "wrong_entry", reason, "key")
        audit.record(
            conn, at_ms=now, actor=audit.key_actor(admin), action="journey.enroll",
            target=f"journey {key}", details={"profile_id": profile_id, "entered": row is not None},
        )  # fmt: skip
    services.journeys.after_commit()
    return {
        "entered": row is not None,
        "reason": reason or None,
        "enrollment_id": row.enrollment.id if row else None,
    }


@router.get("/api/journeys/{key}/enrollments", summary="People in a journey, newest first")
def list_enrollments(
    request: Request,
    _admin: Admin,
    key: KeyParam,
    status: Annotated[str | None, Query(max_length=20)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    try:
        rows = service.enrollments(_services(request).db, key, status, limit, offset)
    except service.JourneyNotFound as exc:
        raise _error(exc) from None
    return {"enrollments": rows}


# -- playbooks --------------------------------------------------------------------------


class PlaybookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    journey_key: str | None = Field(default=None, description="Save under this key instead")
    status: str = Field(default="draft", description="draft or active")


@router.get("/api/playbooks", summary="Journeys from the field, ready to enable")
def list_playbooks(request: Request, _admin: Admin) -> dict[str, Any]:
    from shopkeeper.journeys.playbooks import PLAYBOOKS

    with _services(request).db.read() as conn:
        used = {j.playbook: j.key for j in store.all_journeys(conn) if j.playbook}
    return {
        "playbooks": [
            {
                "key": p.key,
                "name": p.name,
                "description": p.description,
                "group": p.group,
                "definition": p.definition,
                "templates": sorted(p.templates),
                "coupon_pools": [pool.key for pool in p.pools],
                "enabled_as": used.get(p.key),
            }
            for p in PLAYBOOKS
        ]
    }


@router.post(
    "/api/playbooks/{key}",
    status_code=201,
    summary="Enable a playbook: the journey, its templates and its coupon pool",
)
def enable_playbook(
    request: Request, admin: Admin, key: str, body: PlaybookIn | None = None
) -> dict[str, Any]:
    from shopkeeper.journeys import playbooks

    services = _services(request)
    body = body or PlaybookIn()
    try:
        journey_key = playbooks.enable(
            services.db,
            services.clock.now_ms(),
            actor=audit.key_actor(admin),
            key=key,
            journey_key=body.journey_key,
            status=body.status,
        )
    except (JourneyInvalid, service.JourneyConflict) as exc:
        raise _error(exc) from None
    except LookupError as exc:
        raise ApiError(404, "not_found", str(exc), "key") from None
    return service.detail(services.db, journey_key)
