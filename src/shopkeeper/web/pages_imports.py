"""Imports: upload a file of customers, orders or products and watch it go in."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import UploadFile

from shopkeeper.imports import service as imports
from shopkeeper.imports.model import ImportFailure, ImportOptions
from shopkeeper.web.ui import CsrfForm, PageNotFound, Session, form_text, render, services

router = APIRouter(include_in_schema=False)

KINDS = {
    "customers": (
        "Customers",
        "A customer list from your CRM or newsletter tool: email, name, phone, customer ID.",
    ),
    "orders": (
        "Orders",
        "Orders from your shop till or another system: order ID, customer, date, amounts "
        "and products.",
    ),
    "products": (
        "Products",
        "Your catalog: product ID, name, price, stock, category, brand, pictures.",
    ),
}


def _page(
    request: Request,
    session: Session,
    *,
    error: str | None = None,
    kind: str = "customers",
    status: int = 200,
) -> Response:
    svc = services(request)
    with svc.db.read() as conn:
        recent = imports.list_imports(conn, 50)
    return render(
        request,
        "imports.html",
        {
            "title": "Imports",
            "imports": recent,
            "kinds": KINDS,
            "kind": kind,
            "error": error,
            "max_mb": svc.settings.max_upload_bytes // (1024 * 1024),
        },
        session=session,
        status=status,
    )


@router.get("/imports")
def imports_page(request: Request, session: Session) -> Response:
    return _page(request, session)


def _save_upload(upload: UploadFile, limit: int) -> Path:
    """Copy the upload to a file of our own (the import runs after this request ends
    and deletes it when done); refuses files over the limit."""
    handle, name = tempfile.mkstemp(prefix="shopkeeper-upload-")
    path = Path(name)
    copied = 0
    try:
        with os.fdopen(handle, "wb") as out:
            while chunk := upload.file.read(1024 * 1024):
                copied += len(chunk)
                if copied > limit:
                    raise ImportFailure(
                        f"The file is larger than {limit // (1024 * 1024)} MB. Import it with "
                        "`shopkeeper import` on the server, which has no size limit."
                    )
                out.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


@router.post("/imports")
def upload(request: Request, session: Session, form: CsrfForm) -> Response:
    svc = services(request)
    kind = form_text(form, "kind", 40)
    if kind not in KINDS:
        return _page(request, session, error="Choose what the file holds.", status=400)
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        return _page(request, session, error="Choose a file to upload.", kind=kind, status=400)
    filename = os.path.basename(upload.filename)[:200] or "upload"
    try:
        path = _save_upload(upload, svc.settings.max_upload_bytes)
        import_id = imports.start_import(
            svc, kind, path, filename, ImportOptions(), session.actor, delete_after=True
        )
    except ImportFailure as exc:
        return _page(request, session, error=str(exc), kind=kind, status=400)
    return RedirectResponse(f"/imports/{import_id}", status_code=303)


def _import(request: Request, raw_id: str) -> dict[str, Any]:
    found = None
    if raw_id.isdigit() and len(raw_id) < 19:
        with services(request).db.read() as conn:
            found = imports.get_import(conn, int(raw_id))
    if found is None:
        raise PageNotFound("There is no import with this number.")
    return found


@router.get("/imports/{raw_id}")
def import_page(request: Request, session: Session, raw_id: str) -> Response:
    item = _import(request, raw_id)
    return render(
        request,
        "import.html",
        {"title": f"Import of {item['filename']}", "item": item, "kinds": KINDS},
        session=session,
    )


@router.get("/imports/{raw_id}/progress")
def import_progress(request: Request, session: Session, raw_id: str) -> Response:
    item = _import(request, raw_id)
    return render(request, "_import_status.html", {"item": item}, session=session)
