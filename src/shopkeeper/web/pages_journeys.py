"""Journeys: the list with key figures and the playbook catalogue, a journey's page (its
graph with counts on every step, results against the holdout, switching it on, pausing
and archiving it, recent enrollments), and the YAML editor with its check as you type
(an htmx fragment: the mistake and where it is, or the graph and who would enter now).

Every change goes through the journey service (or playbooks.enable) with the logged-in
user as the actor of its audit entry; every refusal is shown on the page, never a 500.
"""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
import yaml
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.engine import Connection
from starlette.datastructures import FormData

from shopkeeper.journeys import definition as d
from shopkeeper.journeys import playbooks, service, store
from shopkeeper.journeys.definition import JourneyInvalid
from shopkeeper.segments import service as segments
from shopkeeper.storage import tables as t
from shopkeeper.web.journey_graph import journey_graph
from shopkeeper.web.ui import CsrfForm, PageNotFound, Session, form_text, now_ms, render, services

router = APIRouter(include_in_schema=False)

DAY_MS = 86_400_000
ENROLLMENTS_SHOWN = 20
PREVIEW_SAMPLE = 5
# /journeys/new is the editor, so no journey made here may have that key.
RESERVED_KEYS = frozenset({"new"})
MAX_DEFINITION_CHARS = 200_000
STARTER = """\
name: Welcome series
description: A welcome email an hour after sign-up.
entry:
  event: Signed Up
reentry: once
steps:
  - id: wait_1h
    type: wait
    duration: 1h
  - id: welcome
    type: send
    channel: email
    template: welcome
"""

_NOTICES = {
    "enabled": "Playbook enabled as a draft, with its templates. Read it, adjust the "
    "templates, then switch it on.",
    "created": "Journey saved as a draft.",
    "active": "Journey switched on: people enter from now on.",
    "paused": "Journey paused: nobody new enters, and people in it wait where they are.",
    "archived": "Journey archived: everyone still in it was stopped.",
    "draft": "Journey set back to draft.",
}
_STATUS_WORDS = {"draft": "Draft", "active": "Active", "paused": "Paused", "archived": "Archived"}


def _not_found(key: str) -> PageNotFound:
    return PageNotFound(f"There is no journey “{key}”.")


def _text(form: FormData, name: str = "definition") -> str:
    value = form.get(name)
    # Browsers send a textarea's line breaks as CRLF; YAML marks count lines by LF.
    return value.replace("\r\n", "\n").replace("\r", "\n") if isinstance(value, str) else ""


# -- the list and the playbooks ------------------------------------------------------------


def _list_page(
    request: Request, session: Session, *, notice: str | None = None, error: str | None = None,
    status: int = 200,
) -> Response:  # fmt: skip
    rows = service.summaries(services(request).db)
    for row in rows:
        sent = row["messages"]
        row["sent"] = sent.get("sent", 0) + sent.get("delivered", 0)
    enabled = {row["playbook"]: row["key"] for row in rows if row["playbook"]}
    groups: dict[str, list[dict[str, Any]]] = {}
    for p in playbooks.PLAYBOOKS:  # groups in the registry's order
        groups.setdefault(p.group, []).append({"p": p, "enabled_as": enabled.get(p.key)})
    return render(
        request,
        "journeys.html",
        {
            "title": "Journeys",
            "journeys": rows,
            "catalogue": list(groups.items()),
            "statuses": _STATUS_WORDS,
            "notice": notice,
            "error": error,
        },
        session=session,
        status=status,
    )


@router.get("/journeys")
def journeys_page(request: Request, session: Session, notice: str | None = None) -> Response:
    return _list_page(request, session, notice=_NOTICES.get(notice or ""))


@router.post("/journeys/playbooks/{key}/enable")
def enable_playbook(request: Request, session: Session, _form: CsrfForm, key: str) -> Response:
    if playbooks.find(key) is None:
        raise PageNotFound("There is no such playbook.")
    try:
        journey_key = playbooks.enable(
            services(request).db, now_ms(request), actor=session.actor, key=key, status="draft"
        )
    except service.JourneyConflict as exc:
        return _list_page(request, session, error=str(exc), status=409)
    except JourneyInvalid as exc:
        return _list_page(request, session, error=exc.message, status=400)
    return RedirectResponse(f"/journeys/{journey_key}?notice=enabled", status_code=303)


# -- a journey's page ------------------------------------------------------------------------


def _names(conn: Connection, ids: list[int]) -> dict[int, str]:
    p = t.profiles
    rows = conn.execute(
        sa.select(p.c.id, p.c.display_name, p.c.traits).where(p.c.id.in_(ids))
    ).all()
    out = {}
    for row in rows:
        email = (row.traits or {}).get("email")
        out[int(row.id)] = row.display_name or (email if isinstance(email, str) else "")
    return out


def _uplift(found: dict[str, Any] | None) -> dict[str, str] | None:
    """Percentage points for people: the difference and its 95% interval."""
    if found is None:
        return None

    def points(value: float) -> str:
        return f"{value * 100:+.1f} pp"

    return {
        "treated": f"{found['treated_rate'] * 100:.1f}%",
        "holdout": f"{found['holdout_rate'] * 100:.1f}%",
        "difference": points(found["difference"]),
        "low": points(found["low"]),
        "high": points(found["high"]),
        "relative": f"{found['relative'] * 100:+.0f}%" if found["relative"] is not None else "",
    }


def _journey_page(
    request: Request, session: Session, key: str, *, notice: str | None = None,
    error: str | None = None, status: int = 200,
) -> Response:  # fmt: skip
    db = services(request).db
    try:
        detail = service.detail(db, key)
        enrollments = service.enrollments(db, key, None, ENROLLMENTS_SHOWN, 0)
    except service.JourneyNotFound:
        raise _not_found(key) from None
    with db.read() as conn:
        names = _names(conn, [e["profile_id"] for e in enrollments])
    for row in enrollments:
        row["name"] = names.get(row["profile_id"]) or f"Customer no. {row['profile_id']}"
    ended = f"{detail['completed']:,} completed · {detail['exited']:,} left"
    try:
        graph = journey_graph(
            service.read(detail["definition"]).definition, detail["step_counts"],
            entry=detail["entry"], entered=detail["entered"], ended=ended,
        )  # fmt: skip
    except JourneyInvalid as exc:
        # Saved under older rules that no longer accept it: the page still opens.
        graph = None
        error = error or f"This version cannot be drawn: {exc.message}"
    source = detail["source"] or yaml.safe_dump(
        detail["definition"], sort_keys=False, allow_unicode=True
    )
    return render(
        request,
        "journey.html",
        {
            "title": detail["name"],
            "j": detail,
            "graph": graph,
            "uplift": _uplift(detail["uplift"]),
            "enrollments": enrollments,
            "source": source,
            "statuses": _STATUS_WORDS,
            "notice": notice,
            "error": error,
        },
        session=session,
        status=status,
    )


@router.get("/journeys/new")
def new_journey(request: Request, session: Session) -> Response:
    return _editor(request, session, {"key": "", "definition": STARTER})


@router.get("/journeys/{key}")
def journey_page(
    request: Request, session: Session, key: str, notice: str | None = None
) -> Response:
    text = _NOTICES.get(notice or "")
    if notice == "saved":
        try:
            version = service.get(services(request).db, key).version
        except service.JourneyNotFound:
            raise _not_found(key) from None
        text = (
            f"Saved as version {version}. People already in the journey finish on the "
            "version they entered."
        )
    return _journey_page(request, session, key, notice=text)


@router.post("/journeys/{key}/status")
def set_status(request: Request, session: Session, form: CsrfForm, key: str) -> Response:
    svc = services(request)
    wanted = form_text(form, "status", 20)
    now = now_ms(request)
    try:
        journey, stop = service.set_status(svc.db, now, actor=session.actor, key=key, status=wanted)
    except service.JourneyNotFound:
        raise _not_found(key) from None
    except service.JourneyConflict as exc:
        return _journey_page(request, session, key, error=str(exc), status=409)
    except JourneyInvalid as exc:
        return _journey_page(request, session, key, error=exc.message, status=400)
    if stop and svc.journeys is not None:
        # As the API does: archiving ends every enrollment still in flight.
        svc.journeys.stop_journey(journey.id, "the journey was archived", now)
    return RedirectResponse(f"/journeys/{key}?notice={journey.status}", status_code=303)


# -- the editor --------------------------------------------------------------------------------


def _editor(
    request: Request, session: Session, values: dict[str, str], *,
    journey: store.Journey | None = None, errors: dict[str, Any] | None = None, status: int = 200,
) -> Response:  # fmt: skip
    return render(
        request,
        "journey_editor.html",
        {
            "title": f"Edit {journey.name}" if journey else "New journey",
            "journey": journey,
            "values": values,
            "errors": errors or {},
            "action": f"/journeys/{journey.key}/edit" if journey else "/journeys",
        },
        session=session,
        status=status,
    )


_PATH_PART = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]")


def line_of(text: str, path: str | None) -> int | None:
    """The line of the YAML text that a JourneyInvalid path (steps[2].then, or
    steps.<id>) points at, as deep as the text goes; None when it cannot be found."""
    if not path:
        return None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    line = None
    for name, index in _PATH_PART.findall(path):
        found = None
        if isinstance(node, yaml.MappingNode) and name:
            found = next((v for k, v in node.value if getattr(k, "value", None) == name), None)
        elif isinstance(node, yaml.SequenceNode) and index and int(index) < len(node.value):
            found = node.value[int(index)]
        elif isinstance(node, yaml.SequenceNode) and name:
            # steps.<id>: the step whose id is that.
            for item in node.value:
                if isinstance(item, yaml.MappingNode) and any(
                    getattr(k, "value", None) == "id" and getattr(v, "value", None) == name
                    for k, v in item.value
                ):
                    found = item
        if found is None:
            break
        node = found
        line = node.start_mark.line + 1
    return line


def check_error(text: str, exc: JourneyInvalid) -> dict[str, Any]:
    line = line_of(text, exc.path)
    out: dict[str, Any] = {"message": exc.message, "path": exc.path, "line": line}
    lines = text.split("\n")
    if line is not None and 1 <= line <= len(lines):
        out["excerpt"] = lines[line - 1]
    return out


def _check(db: Any, text: str) -> tuple[d.Definition | None, dict[str, Any] | None]:
    if len(text) > MAX_DEFINITION_CHARS:
        return None, {"message": f"A definition is at most {MAX_DEFINITION_CHARS:,} characters."}
    try:
        parsed = service.read(text)
        with db.read() as conn:
            service.check_references(conn, parsed.definition, for_activation=False)
    except JourneyInvalid as exc:
        return None, check_error(text, exc)
    return parsed.definition, None


def who_would_enter(request: Request, definition: d.Definition) -> dict[str, Any]:
    """Who the entry holds for right now: a segment's members, or the people who did
    the entry event in the last 24 hours."""
    db = services(request).db
    entry = definition.entry
    if isinstance(entry, d.SegmentEntry | d.BroadcastEntry):
        try:
            found = segments.members(db, entry.segment, PREVIEW_SAMPLE, 0)
        except segments.SegmentNotFound:
            return {"kind": "missing", "segment": entry.segment}
        kind = "broadcast" if isinstance(entry, d.BroadcastEntry) else f"segment_{entry.on}"
        return {
            "kind": kind, "segment": entry.segment, "count": found["total"],
            "sample": found["members"],
        }  # fmt: skip
    if isinstance(entry, d.EventEntry):
        now = now_ms(request)
        e = t.events
        with db.read() as conn:
            count = conn.execute(
                sa.select(sa.func.count(sa.distinct(e.c.profile_id))).where(
                    e.c.event == entry.event, e.c.type == "track", e.c.status == t.APPLIED,
                    e.c.timestamp > now - DAY_MS, e.c.timestamp <= now,
                    e.c.profile_id.is_not(None),
                )
            ).scalar_one()  # fmt: skip
        return {
            "kind": "event",
            "event": entry.event,
            "count": int(count),
            "where": entry.where_text,
        }
    return {"kind": "other", "entry": service.entry_text(definition)}


@router.post("/journeys/validate")
def validate(request: Request, session: Session, form: CsrfForm) -> Response:
    """The editor's check as you type: always 200 (a mistake is the normal state of a
    definition being typed), the fragment says what is wrong or what it would do."""
    text = _text(form)
    context: dict[str, Any] = {"error": None}
    if not text.strip():
        context["empty"] = True
    else:
        definition, error = _check(services(request).db, text)
        context["error"] = error
        if definition is not None:
            context.update(
                definition=definition,
                entry=service.entry_text(definition),
                graph=journey_graph(definition, None, entry=service.entry_text(definition)),
                who=who_would_enter(request, definition),
            )
    return render(request, "journey_check.html", context, session=session)


def _save_errors(text: str, exc: JourneyInvalid | service.JourneyConflict) -> dict[str, Any]:
    if isinstance(exc, service.JourneyConflict):
        return {"key": str(exc)}
    if exc.path == "key":
        return {"key": exc.message}
    return {"definition": check_error(text, exc)}


@router.post("/journeys")
def create(request: Request, session: Session, form: CsrfForm) -> Response:
    values = {"key": form_text(form, "key", 200), "definition": _text(form)}
    if values["key"] in RESERVED_KEYS:
        errors: dict[str, Any] = {"key": f"“{values['key']}” is taken by the page address."}
        return _editor(request, session, values, errors=errors, status=400)
    if len(values["definition"]) > MAX_DEFINITION_CHARS:
        errors = {"definition": {"message": "A definition is at most 200,000 characters."}}
        return _editor(request, session, values, errors=errors, status=400)
    try:
        journey = service.create(
            services(request).db, now_ms(request), actor=session.actor, key=values["key"],
            definition=values["definition"], status="draft",
        )  # fmt: skip
    except (JourneyInvalid, service.JourneyConflict) as exc:
        status = 409 if isinstance(exc, service.JourneyConflict) else 400
        errors = _save_errors(values["definition"], exc)
        return _editor(request, session, values, errors=errors, status=status)
    return RedirectResponse(f"/journeys/{journey.key}?notice=created", status_code=303)


@router.get("/journeys/{key}/edit")
def edit(request: Request, session: Session, key: str) -> Response:
    try:
        detail = service.detail(services(request).db, key)
        journey = service.get(services(request).db, key)
    except service.JourneyNotFound:
        raise _not_found(key) from None
    source = detail["source"] or yaml.safe_dump(
        detail["definition"], sort_keys=False, allow_unicode=True
    )
    return _editor(request, session, {"key": key, "definition": source}, journey=journey)


@router.post("/journeys/{key}/edit")
def update(request: Request, session: Session, form: CsrfForm, key: str) -> Response:
    db = services(request).db
    try:
        journey = service.get(db, key)
    except service.JourneyNotFound:
        raise _not_found(key) from None
    values = {"key": key, "definition": _text(form)}
    try:
        service.update(
            db, now_ms(request), actor=session.actor, key=key, definition=values["definition"]
        )
    except service.JourneyNotFound:
        raise _not_found(key) from None
    except service.JourneyConflict as exc:
        errors: dict[str, Any] = {"definition": {"message": str(exc)}}
        return _editor(request, session, values, journey=journey, errors=errors, status=409)
    except JourneyInvalid as exc:
        errors = _save_errors(values["definition"], exc)
        return _editor(request, session, values, journey=journey, errors=errors, status=400)
    return RedirectResponse(f"/journeys/{key}?notice=saved", status_code=303)
