"""Segments: the list with sizes and 7-day trends, the built-in catalogue, the builder
with its live preview (a JSON endpoint the page's script calls as the marketer types),
and a segment's page: definition, size over time, entries and exits, members, why a
customer is or is not in it, the CSV export and the audience syncs.

Every change goes through the segment service (or the audience store) with the logged-in
user as the actor of its audit entry; every refusal is shown on the page, never a 500.
"""

from __future__ import annotations

import itertools
import logging
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.datastructures import FormData

from shopkeeper.admin import audit
from shopkeeper.errors import ApiError
from shopkeeper.profiles import view
from shopkeeper.segments import service, store
from shopkeeper.segments.audiences import store as audience_store
from shopkeeper.segments.audiences.destinations import DestinationRefused, check_url
from shopkeeper.segments.audiences.export import open_csv_stream
from shopkeeper.segments.audiences.export_api import builder_for_export
from shopkeeper.segments.audiences.fields import DEFAULT_FIELDS, UnknownField, parse_fields
from shopkeeper.segments.audiences.members import member_count, segment_by_key
from shopkeeper.segments.builtins import BUILTINS, find_builtin
from shopkeeper.segments.membership import refresh_segment
from shopkeeper.segments.store import SegmentError
from shopkeeper.web import format as fmt
from shopkeeper.web.charts import Bar, bar_chart
from shopkeeper.web.ui import (
    SECURITY_HEADERS,
    CsrfForm,
    PageNotFound,
    Session,
    form_text,
    int_param,
    is_htmx,
    now_ms,
    render,
    services,
)

router = APIRouter(include_in_schema=False)
log = logging.getLogger(__name__)

MEMBERS_PAGE = 50
HISTORY_SHOWN = 20
PREVIEW_SAMPLE = 10
# Longer conditions are refused rather than cut (a cut condition would mean something else).
MAX_CONDITION_CHARS = 20_000
# /segments/new is the builder, so no segment made here may have that key.
RESERVED_KEYS = frozenset({"new"})
CHART_MIN_DAYS = 14
DAY_MS = 86_400_000

_NOTICES = {
    "created": "Segment saved. Its members were counted just now.",
    "updated": "Changes saved.",
    "enabled": "Built-in segment enabled. Change it like any other segment.",
    "refreshed": "Refreshed: everyone was checked against the condition just now.",
    "deleted": "Segment deleted.",
    "audience_added": "Audience sync added. Its first run sends every member.",
    "audience_deleted": "Audience sync deleted.",
}

# -- shared pieces ---------------------------------------------------------------------


def condition_error(text: str, exc: SegmentError) -> dict[str, Any]:
    """A mistake in a condition as the page shows it: the message, and where a place is
    known, the line it is on with a caret under the column (tabs kept, so the caret lines
    up in a monospace block)."""
    out: dict[str, Any] = {"message": exc.message, "line": exc.line, "column": exc.column}
    if exc.line is not None and exc.column is not None:
        lines = text.split("\n")
        if 1 <= exc.line <= len(lines):
            line = lines[exc.line - 1]
            before = line[: max(exc.column - 1, 0)]
            out["excerpt"] = line
            out["caret"] = "".join("\t" if ch == "\t" else " " for ch in before) + "^"
    return out


def _condition_text(form: FormData) -> str:
    value = form.get("condition")
    # Browsers send a textarea's line breaks as CRLF; the language counts lines by LF.
    return value.replace("\r\n", "\n").replace("\r", "\n") if isinstance(value, str) else ""


def _segment_or_404(request: Request, key: str) -> store.Segment:
    try:
        return service.get(services(request).db, key)
    except service.SegmentNotFound:
        raise PageNotFound(f"There is no segment “{key}”. It may have been deleted.") from None


def _every(minutes: int) -> str:
    if minutes % 1440 == 0:
        days = minutes // 1440
        return "every day" if days == 1 else f"every {days} days"
    if minutes % 60 == 0:
        hours = minutes // 60
        return "every hour" if hours == 1 else f"every {hours} hours"
    return "every minute" if minutes == 1 else f"every {minutes} minutes"


# -- the list and the built-in catalogue ---------------------------------------------------


def _list_page(
    request: Request,
    session: Session,
    *,
    notice: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    svc = services(request)
    rows = service.summaries(svc.db, now_ms(request))
    enabled = {row["builtin"]: row["key"] for row in rows if row["builtin"]}
    catalogue = [
        (
            group,
            [
                {
                    "key": b.key,
                    "name": b.name,
                    "description": b.description,
                    "condition": b.condition,
                    "realtime": b.realtime,
                    "refresh": _every(b.refresh_minutes),
                    "enabled_as": enabled.get(b.key),
                }
                for b in items
            ],
        )
        for group, items in itertools.groupby(BUILTINS, key=lambda b: b.group)
    ]
    for row in rows:
        row["refresh"] = _every(row["refresh_minutes"])
    return render(
        request,
        "segments.html",
        {
            "title": "Segments",
            "segments": rows,
            "catalogue": catalogue,
            "notice": notice,
            "error": error,
        },
        session=session,
        status=status,
    )


@router.get("/segments")
def segments_page(request: Request, session: Session, notice: str | None = None) -> Response:
    return _list_page(request, session, notice=_NOTICES.get(notice or ""))


@router.post("/segments/builtins/{builtin}/enable")
def enable_builtin(request: Request, session: Session, _form: CsrfForm, builtin: str) -> Response:
    found = find_builtin(builtin)
    if found is None:
        raise PageNotFound("There is no such built-in segment.")
    svc = services(request)
    try:
        service.create(
            svc.db,
            now_ms(request),
            actor=session.actor,
            key=found.key,
            name=found.name,
            condition=found.condition,
            description=found.description,
            realtime=found.realtime,
            refresh_minutes=found.refresh_minutes,
            builtin=found.key,
        )
    except SegmentError as exc:
        return _list_page(request, session, error=exc.message, status=409)
    return RedirectResponse(f"/segments/{found.key}?notice=enabled", status_code=303)


# -- the builder -------------------------------------------------------------------------------


def _builder(
    request: Request,
    session: Session,
    values: dict[str, Any],
    *,
    segment: store.Segment | None = None,
    errors: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    editing = segment is not None
    return render(
        request,
        "segment_builder.html",
        {
            "title": f"Edit {segment.name}" if segment is not None else "New segment",
            "segment": segment,
            "editing": editing,
            "values": values,
            "errors": errors or {},
            "action": f"/segments/{segment.key}/edit" if segment is not None else "/segments",
        },
        session=session,
        status=status,
    )


def _form_values(form: FormData) -> dict[str, Any]:
    return {
        "key": form_text(form, "key", 200),
        "name": form_text(form, "name", 300),
        "description": form_text(form, "description", 6000),
        "condition": _condition_text(form),
        "realtime": form.get("realtime") in ("on", "true", "1"),
        "refresh_minutes": form_text(form, "refresh_minutes", 20),
    }


def _minutes(raw: str) -> Any:
    """The refresh interval as a number when it reads as one; otherwise the text, which the
    service refuses with its own message."""
    return int(raw) if raw.isdigit() and len(raw) < 10 else raw


def _check(values: dict[str, Any], *, new: bool) -> dict[str, Any]:
    """Every mistake in the form at once (the service stops at the first)."""
    errors: dict[str, Any] = {}
    checks: list[tuple[str, Any]] = [
        ("refresh_minutes", lambda: store.check_refresh(_minutes(values["refresh_minutes"]))),
    ]
    if new:
        checks.append(("key", lambda: store.check_key(values["key"])))
    for name, check in checks:
        try:
            check()
        except SegmentError as exc:
            errors[name] = {"message": exc.message}
    if new and values["key"] in RESERVED_KEYS:
        errors["key"] = {
            "message": f"“{values['key']}” is taken by the page address; choose another key."
        }
    if not values["name"]:
        errors["name"] = {"message": "Give the segment a name."}
    if len(values["condition"]) > MAX_CONDITION_CHARS:
        errors["condition"] = {
            "message": f"A condition is at most {MAX_CONDITION_CHARS:,} characters."
        }
    else:
        try:
            store.read_condition(values["condition"])
        except SegmentError as exc:
            errors["condition"] = condition_error(values["condition"], exc)
    return errors


def _service_error(values: dict[str, Any], exc: SegmentError) -> dict[str, Any]:
    known = {"key", "name", "description", "condition", "refresh_minutes"}
    name = exc.field if exc.field in known else "condition"
    if name == "condition":
        return {name: condition_error(values["condition"], exc)}
    return {name: {"message": exc.message}}


@router.get("/segments/new")
def new_segment(request: Request, session: Session) -> Response:
    values = {
        "key": "",
        "name": "",
        "description": "",
        "condition": "",
        "realtime": True,
        "refresh_minutes": "60",
    }
    return _builder(request, session, values)


@router.post("/segments")
def create_segment(request: Request, session: Session, form: CsrfForm) -> Response:
    values = _form_values(form)
    errors = _check(values, new=True)
    if errors:
        return _builder(request, session, values, errors=errors, status=400)
    try:
        service.create(
            services(request).db,
            now_ms(request),
            actor=session.actor,
            key=values["key"],
            name=values["name"],
            condition=values["condition"],
            description=values["description"] or None,
            realtime=values["realtime"],
            refresh_minutes=_minutes(values["refresh_minutes"]),
        )
    except SegmentError as exc:
        errors = _service_error(values, exc)
        return _builder(request, session, values, errors=errors, status=400)
    return RedirectResponse(f"/segments/{values['key']}?notice=created", status_code=303)


@router.post("/segments/preview")
def preview(request: Request, session: Session, form: CsrfForm) -> Response:
    """The builder's live preview: the count and a sample of the profiles the condition
    holds for, or the mistake with its line and column. JSON for the page's script; a
    mistake is the normal state of a condition being typed, so it is answered with 200
    (a 4xx would be logged as a failed request in the browser's console at every key)."""
    text = _condition_text(form)
    key = form_text(form, "key", 200) or None
    headers = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
    if len(text) > MAX_CONDITION_CHARS:
        error = {"message": f"A condition is at most {MAX_CONDITION_CHARS:,} characters."}
        return JSONResponse({"error": error}, headers=headers)
    try:
        found = service.preview(
            services(request).db, text, now_ms(request), key=key, sample=PREVIEW_SAMPLE
        )
    except SegmentError as exc:
        return JSONResponse({"error": condition_error(text, exc)}, headers=headers)
    except Exception:
        # A condition the language accepts but the database cannot run (reported as a
        # bug): the page says so instead of failing silently at every key.
        log.exception("preview of a segment condition failed: %r", text[:500])
        error = {
            "message": "Shopkeeper could not count this condition; "
            "the details are in the server's log."
        }
        return JSONResponse({"error": error}, headers=headers)
    return JSONResponse(
        {"count": found.count, "sample": found.sample, "condition": found.condition},
        headers=headers,
    )


@router.get("/segments/{key}/edit")
def edit_segment(request: Request, session: Session, key: str) -> Response:
    segment = _segment_or_404(request, key)
    values = {
        "key": segment.key,
        "name": segment.name,
        "description": segment.description or "",
        "condition": segment.condition,
        "realtime": segment.realtime,
        "refresh_minutes": str(segment.refresh_minutes),
    }
    return _builder(request, session, values, segment=segment)


@router.post("/segments/{key}/edit")
def update_segment(request: Request, session: Session, form: CsrfForm, key: str) -> Response:
    segment = _segment_or_404(request, key)
    values = {**_form_values(form), "key": segment.key}
    errors = _check(values, new=False)
    if errors:
        return _builder(request, session, values, segment=segment, errors=errors, status=400)
    changes = {
        "name": values["name"],
        "description": values["description"] or None,
        "condition": values["condition"],
        "realtime": values["realtime"],
        "refresh_minutes": _minutes(values["refresh_minutes"]),
    }
    try:
        service.update(services(request).db, now_ms(request), key, changes, actor=session.actor)
    except service.SegmentNotFound:
        raise PageNotFound(f"There is no segment “{key}”. It may have been deleted.") from None
    except SegmentError as exc:
        errors = _service_error(values, exc)
        return _builder(request, session, values, segment=segment, errors=errors, status=400)
    return RedirectResponse(f"/segments/{key}?notice=updated", status_code=303)


# -- a segment's page ----------------------------------------------------------------------


def _size_chart(points: list[dict[str, Any]], now: int) -> Any:
    """One bar per UTC day: the last size recorded that day (the size carries over days
    without a point), from the first point to today, at least two weeks wide."""
    per_day: dict[int, int] = {}
    for point in points:
        at = fmt.to_ms(point["at"])
        if at is not None:
            per_day[at - at % DAY_MS] = int(point["size"])
    if not per_day:
        return None
    today = now - now % DAY_MS
    first = min(min(per_day), today)
    start = min(first, today - (CHART_MIN_DAYS - 1) * DAY_MS)
    bars = []
    size: int | None = None
    for day in range(start, today + DAY_MS, DAY_MS):
        size = per_day.get(day, size)
        label = fmt.day(day).rsplit(" ", 1)[0]
        if size is None:
            bars.append(Bar(label=label, value=0, tooltip=f"{fmt.day(day)}: not counted yet"))
        else:
            members = f"{fmt.number(size)} member{'' if size == 1 else 's'}"
            bars.append(Bar(label=label, value=size, tooltip=f"{fmt.day(day)}: {members}"))
    top = max(bar.value for bar in bars)
    return bar_chart(
        bars,
        label="Members per day",
        top_label=f"highest {fmt.number(top)}" if top else None,
    )


def _segment_page(
    request: Request,
    session: Session,
    key: str,
    *,
    notice: str | None = None,
    error: str | None = None,
    explanation: dict[str, Any] | None = None,
    audience_form: dict[str, Any] | None = None,
    audience_errors: dict[str, str] | None = None,
    page: str | None = None,
    status: int = 200,
) -> Response:
    svc = services(request)
    now = now_ms(request)
    try:
        detail = service.detail(svc.db, key, now)
    except service.SegmentNotFound:
        raise PageNotFound(f"There is no segment “{key}”. It may have been deleted.") from None
    page_no = int_param(page, 1, low=1, high=1_000_000)
    members = service.members(svc.db, key, MEMBERS_PAGE, (page_no - 1) * MEMBERS_PAGE)
    changes = service.history(svc.db, key, HISTORY_SHOWN, None)
    with svc.db.read() as conn:
        ref = segment_by_key(conn, key)
        syncs = audience_store.list_syncs(conn, ref.id) if ref is not None else []
        last_runs = {
            sync.id: next(iter(audience_store.runs(conn, sync.id, limit=1)), None) for sync in syncs
        }
    total = members["total"]
    return render(
        request,
        "segment.html",
        {
            "title": detail["name"],
            "s": detail,
            "refresh": _every(detail["refresh_minutes"]),
            "chart": _size_chart(detail["sizes"], now),
            "members": members["members"],
            "members_total": total,
            "page": page_no,
            "pages": max(1, -(-total // MEMBERS_PAGE)),
            "changes": changes["changes"],
            "syncs": syncs,
            "last_runs": last_runs,
            "notice": notice,
            "error": error,
            "explanation": explanation,
            "audience_form": audience_form
            or {"fields": ",".join(DEFAULT_FIELDS[1:]), "interval_minutes": "60"},
            "audience_errors": audience_errors or {},
            "default_fields": ", ".join(DEFAULT_FIELDS),
        },
        session=session,
        status=status,
    )


@router.get("/segments/{key}")
def segment_page(
    request: Request,
    session: Session,
    key: str,
    notice: str | None = None,
    page: str | None = None,
) -> Response:
    return _segment_page(request, session, key, notice=_NOTICES.get(notice or ""), page=page)


@router.post("/segments/{key}/refresh")
def refresh(request: Request, session: Session, _form: CsrfForm, key: str) -> Response:
    svc = services(request)
    now = now_ms(request)
    result = refresh_segment(svc.db, key, now)
    if result is None:
        raise PageNotFound(f"There is no segment “{key}”. It may have been deleted.")
    with svc.db.write() as conn:
        audit.record(
            conn,
            at_ms=now,
            actor=session.actor,
            action="segment.refresh",
            target=f"segment {key}",
            details={"size": result.size, "entered": result.entered, "exited": result.exited},
        )
    return RedirectResponse(f"/segments/{key}?notice=refreshed", status_code=303)


@router.post("/segments/{key}/delete")
def delete(request: Request, session: Session, _form: CsrfForm, key: str) -> Response:
    try:
        service.delete(services(request).db, now_ms(request), key, actor=session.actor)
    except service.SegmentNotFound:
        raise PageNotFound(f"There is no segment “{key}”. It may have been deleted.") from None
    except service.SegmentInUse as exc:
        return _segment_page(request, session, key, error=str(exc), status=409)
    return RedirectResponse("/segments?notice=deleted", status_code=303)


def find_profile(request: Request, text: str) -> int | None:
    """The live profile a person typed: `type:value`, an email, a customer ID, a phone
    number, a browser ID or a customer number."""
    text = text.strip()
    if not text:
        return None
    kind, sep, rest = text.partition(":")
    if sep and kind.strip().lower() in view.REF_TYPES and rest.strip():
        candidates = [(kind.strip().lower(), rest.strip())]
    elif "@" in text:
        candidates = [("email", text)]
    else:
        candidates = [("user_id", text), ("anonymous_id", text), ("phone", text)]
        if text.isdigit() and len(text) < 19:
            candidates.append(("profile", text))
    with services(request).db.read() as conn:
        for type_, value in candidates:
            try:
                found = view.resolve(conn, type_, value)
            except view.BadRef:
                continue
            if found is not None:
                return found
    return None


@router.post("/segments/{key}/explain")
def explain(request: Request, session: Session, form: CsrfForm, key: str) -> Response:
    """Why a customer is in the segment or not: each clause with the value seen."""
    _segment_or_404(request, key)
    typed = form_text(form, "profile", 500)
    result: dict[str, Any] = {"typed": typed}
    profile_id = find_profile(request, typed) if typed else None
    if not typed:
        result["problem"] = "Type an email, a customer ID or a customer number."
    elif profile_id is None:
        result["problem"] = f"No customer is known by “{typed}”."
    else:
        try:
            found = service.explain_membership(
                services(request).db, profile_id, now_ms(request), key=key
            )
        except (SegmentError, LookupError) as exc:
            result["problem"] = exc.message if isinstance(exc, SegmentError) else str(exc)
        else:
            with services(request).db.read() as conn:
                shown = view.customer_view(conn, profile_id)
            result.update(found)
            result["name"] = (shown or {}).get("display_name") or f"Customer no. {profile_id}"
    if is_htmx(request):
        return render(request, "_explain.html", {"explanation": result}, session=session)
    return _segment_page(request, session, key, explanation=result)


@router.get("/segments/{key}/export.csv")
def export_csv(
    request: Request,
    session: Session,
    key: str,
    fields: str | None = None,
    hashed: str | None = None,
) -> Response:
    """The CSV export of the admin API, for the logged-in user (audited with their name)."""
    svc = services(request)
    platform: Literal["meta", "google"] | None = (
        "meta" if hashed == "meta" else "google" if hashed == "google" else None
    )
    with svc.db.read() as conn:
        segment = segment_by_key(conn, key)
        if segment is None:
            raise PageNotFound(f"There is no segment “{key}”. It may have been deleted.")
        members = member_count(conn, segment.id)
    try:
        builder = builder_for_export(
            (fields or "").strip()[:2000] or None, platform, svc.settings.default_phone_region
        )
    except ApiError as exc:
        return _segment_page(request, session, key, error=exc.message, status=400)
    stream = open_csv_stream(svc.db, segment.id, builder)
    try:
        with svc.db.write() as conn:
            audit.record(
                conn,
                at_ms=now_ms(request),
                actor=session.actor,
                action="segment.export",
                target=f"segment {segment.id}",
                details={"fields": builder.headers, "hashed": platform, "members": members},
            )
    except BaseException:
        stream.close()
        raise
    suffix = f"-{platform}" if platform else ""
    return StreamingResponse(
        stream,
        media_type="text/csv; charset=utf-8",
        headers={
            **SECURITY_HEADERS,
            "Content-Disposition": f'attachment; filename="segment-{segment.key}{suffix}.csv"',
        },
    )


# -- audience syncs ------------------------------------------------------------------------


def _audience_values(form: FormData) -> dict[str, Any]:
    return {
        "name": form_text(form, "name", 300),
        "url": form_text(form, "url", 2100),
        "fields": form_text(form, "fields", 2000),
        "interval_minutes": form_text(form, "interval_minutes", 20),
        "authorization": form_text(form, "authorization", 4100),
    }


def _audience_errors(request: Request, values: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
    errors: dict[str, str] = {}
    fields: list[str] = []
    if not values["name"] or len(values["name"]) > 200:
        errors["name"] = "Give the sync a name (at most 200 characters)."
    try:
        check_url(values["url"], allow_private=services(request).settings.webhook_allow_private)
    except DestinationRefused as exc:
        errors["url"] = str(exc)
    try:
        fields = [spec.name for spec in parse_fields(values["fields"] or None)]
    except UnknownField as exc:
        errors["fields"] = str(exc)
    minutes = _minutes(values["interval_minutes"])
    if not isinstance(minutes, int) or not 1 <= minutes <= 7 * 24 * 60:
        errors["interval_minutes"] = "A whole number of minutes from 1 to 10080 (a week)."
    secret = values["authorization"]
    if len(secret) > 4000 or any(ch in secret for ch in "\r\n\0"):
        errors["authorization"] = "The header value is too long or spans lines."
    return errors, fields


@router.post("/segments/{key}/audiences")
def add_audience(request: Request, session: Session, form: CsrfForm, key: str) -> Response:
    """A webhook sync of this segment (the admin API has the advertising-platform kinds)."""
    svc = services(request)
    values = _audience_values(form)
    errors, fields = _audience_errors(request, values)
    if errors:
        return _segment_page(
            request, session, key, audience_form=values, audience_errors=errors, status=400
        )
    now = now_ms(request)
    with svc.db.write() as conn:
        segment = segment_by_key(conn, key)
        if segment is None:
            raise PageNotFound(f"There is no segment “{key}”. It may have been deleted.")
        headers = {"Authorization": values["authorization"]} if values["authorization"] else {}
        sync_id = audience_store.create(
            conn,
            segment_id=segment.id,
            name=values["name"],
            kind="webhook",
            url=values["url"],
            headers=headers,
            fields=fields,
            interval_minutes=int(values["interval_minutes"]),
            active=True,
            now_ms=now,
        )
        audit.record(
            conn,
            at_ms=now,
            actor=session.actor,
            action="audience.create",
            target=f"audience {sync_id}",
            details={"segment_id": segment.id, "kind": "webhook"},
        )
    return RedirectResponse(f"/segments/{key}?notice=audience_added#audiences", status_code=303)


@router.post("/segments/{key}/audiences/{sync_id}/delete")
def delete_audience(
    request: Request, session: Session, _form: CsrfForm, key: str, sync_id: str
) -> Response:
    svc = services(request)
    if not sync_id.isdigit() or len(sync_id) > 18:
        raise PageNotFound("There is no such audience sync.")
    with svc.db.write() as conn:
        sync = audience_store.get(conn, int(sync_id))
        if sync is None or sync.segment_key != key:
            raise PageNotFound("There is no such audience sync.")
        audience_store.delete(conn, sync.id)
        audit.record(
            conn,
            at_ms=now_ms(request),
            actor=session.actor,
            action="audience.delete",
            target=f"audience {sync.id}",
        )
    return RedirectResponse(f"/segments/{key}?notice=audience_deleted#audiences", status_code=303)
