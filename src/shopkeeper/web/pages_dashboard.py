"""The dashboard: customers, live events, sales for 30 days, conversion, the RFM grid,
the pipeline."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from shopkeeper.admin import audit
from shopkeeper.analytics import kpis
from shopkeeper.ingest import log as event_log
from shopkeeper.segments.builtins import rfm_key
from shopkeeper.segments.scores.rfm import SEGMENT_RULES
from shopkeeper.segments.scores.rfm_job import RfmGrid, recompute_rfm, rfm_grid
from shopkeeper.web import format as fmt
from shopkeeper.web.charts import Bar, bar_chart, sparkline
from shopkeeper.web.ui import (
    CsrfForm,
    PageNotFound,
    Session,
    is_htmx,
    now_ms,
    render,
    services,
    ui_state,
)

router = APIRouter(include_in_schema=False)

WINDOW_DAYS = 30
# The 30-day numbers scan whole tables; a few seconds old is fresh enough for them.
_SLOW_TTL_MS = 20_000
PARKED_SHOWN = 20


def _live(request: Request) -> dict[str, Any]:
    svc = services(request)
    now = now_ms(request)
    with svc.db.read() as conn:
        per_minute = kpis.events_per_minute(conn, now, 60)
        status = event_log.status_counts(conn, now)
    return {
        "per_minute": per_minute,
        "last_minute": per_minute[-2],
        "last_hour": sum(per_minute),
        "spark": sparkline(per_minute, label="Events received per minute, last 60 minutes"),
        "pipeline": status,
        "worker_here": svc.runner is not None,
    }


def _sales_chart(report: kpis.SalesReport) -> Any:
    bars = [
        Bar(
            label=fmt.day(d.day_ms).rsplit(" ", 1)[0],
            value=d.revenue,
            tooltip=(
                f"{fmt.day(d.day_ms)}: {fmt.money(d.revenue, report.currency)} from "
                f"{d.orders} order{'' if d.orders == 1 else 's'}"
            ),
        )
        for d in report.days
    ]
    top = max((d.revenue for d in report.days), default=0)
    return bar_chart(
        bars,
        label=f"Revenue per day for the last {WINDOW_DAYS} days",
        top_label=f"highest {fmt.money(top, report.currency)}" if top else None,
    )


def _span(bounds: tuple[int, int]) -> str:
    return str(bounds[0]) if bounds[0] == bounds[1] else f"{bounds[0]}-{bounds[1]}"


def _rfm(grid: RfmGrid) -> dict[str, Any]:
    """The grid as the template draws it: rows of recency 5 down to 1, each with its
    cells of frequency 1 to 5, and the legend of named segments with their totals."""
    rules = {rule.name: rule for rule in SEGMENT_RULES}
    rows = []
    for start in range(0, len(grid.cells), 5):
        cells = grid.cells[start : start + 5]
        rows.append(
            (
                cells[0].recency,
                [{"cell": c, "css": rfm_key(c.segment)} for c in cells],
            )
        )
    legend = [
        {
            "name": total.name,
            "css": rfm_key(total.name),
            "description": rules[total.name].description,
            "recency": _span(rules[total.name].recency),
            "frequency": _span(rules[total.name].frequency),
            "customers": total.customers,
            "revenue": total.revenue,
        }
        for total in grid.segments
    ]
    return {"grid": grid, "rows": rows, "legend": legend}


_NOTICES = {
    "rfm": "RFM scores recomputed for every customer.",
}


@router.get("/")
def dashboard(request: Request, session: Session, notice: str | None = None) -> Response:
    svc = services(request)
    cache = ui_state(request).cache
    now = now_ms(request)

    def summary() -> kpis.CustomerSummary:
        with svc.db.read() as conn:
            return kpis.customer_summary(conn, now, WINDOW_DAYS)

    def sales() -> kpis.SalesReport:
        with svc.db.read() as conn:
            return kpis.sales_by_day(
                conn,
                now,
                days=WINDOW_DAYS,
                shop_currency=svc.settings.shop_currency,
                rates=svc.settings.exchange_rates,
            )

    def rfm() -> RfmGrid:
        with svc.db.read() as conn:
            return rfm_grid(conn)

    customers = cache.get("summary", _SLOW_TTL_MS, now, summary)
    report = cache.get("sales", _SLOW_TTL_MS, now, sales)
    grid = cache.get("rfm", _SLOW_TTL_MS, now, rfm)
    with svc.db.read() as conn:
        parked = event_log.parked(conn, PARKED_SHOWN)
    return render(
        request,
        "dashboard.html",
        {
            "title": "Dashboard",
            "customers": customers,
            "sales": report,
            "sales_chart": _sales_chart(report),
            "window_days": WINDOW_DAYS,
            "parked": parked,
            "rfm": _rfm(grid),
            "notice": _NOTICES.get(notice or ""),
            **_live(request),
        },
        session=session,
    )


@router.get("/dashboard/live")
def live(request: Request, session: Session) -> Response:
    return render(request, "_live.html", _live(request), session=session)


def _retry(request: Request, session: Session, seq: int | None) -> int:
    svc = services(request)
    now = now_ms(request)
    with svc.db.write() as conn:
        count = event_log.retry_parked(conn, seq)
        if count:
            audit.record(
                conn,
                at_ms=now,
                actor=session.actor,
                action="pipeline.retry",
                target=f"event {seq}" if seq is not None else "all parked events",
                details={"requeued": count},
            )
    if count and svc.runner is not None:
        svc.runner.wake()
    return count


@router.post("/dashboard/parked/{seq}/retry")
def retry_one(request: Request, session: Session, _form: CsrfForm, seq: str) -> Response:
    if not seq.isdigit() or len(seq) > 18:
        raise PageNotFound("There is no such parked event.")
    count = _retry(request, session, int(seq))
    if is_htmx(request):
        return render(request, "_retried.html", {"seq": seq, "count": count}, session=session)
    return RedirectResponse("/#pipeline", status_code=303)


@router.post("/dashboard/parked/retry")
def retry_all(request: Request, session: Session, _form: CsrfForm) -> Response:
    _retry(request, session, None)
    return RedirectResponse("/#pipeline", status_code=303)


@router.post("/dashboard/rfm/recompute")
def recompute(request: Request, session: Session, _form: CsrfForm) -> Response:
    """RFM scores for everyone now, instead of at the next hourly run."""
    svc = services(request)
    now = now_ms(request)
    summary = recompute_rfm(svc.db, now)
    with svc.db.write() as conn:
        audit.record(
            conn,
            at_ms=now,
            actor=session.actor,
            action="scores.rfm_recompute",
            details={
                "customers": summary.customers,
                "changed": summary.changed,
                "cleared": summary.cleared,
            },
        )
    ui_state(request).cache.clear()
    return RedirectResponse("/?notice=rfm#rfm", status_code=303)
