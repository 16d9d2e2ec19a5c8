"""Admin API for imports: upload a file (it is imported in the background), then follow
its progress and result."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from shopkeeper.admin import audit
from shopkeeper.admin.auth import Admin
from shopkeeper.errors import ApiError
from shopkeeper.imports.model import FORMATS, ImportFailure, ImportOptions
from shopkeeper.imports.service import get_import, list_imports, start_import
from shopkeeper.imports.upload import Upload, boundary_of, too_large_message

if TYPE_CHECKING:
    from shopkeeper.bootstrap import Services

router = APIRouter(prefix="/api/imports", tags=["Imports"])

_OPTION_FIELDS = ("format", "encoding", "delimiter", "mapping")


class ImportRowError(BaseModel):
    line: int
    reason: str


class ImportOut(BaseModel):
    id: int
    kind: str
    filename: str
    status: str
    actor: str | None
    created_at: str
    finished_at: str | None
    bytes_total: int | None
    bytes_read: int
    progress: float | None
    rows_read: int
    imported: int
    duplicates: int
    rejected: int
    errors: list[ImportRowError]
    options: dict[str, Any]
    message: str | None


class ImportsOut(BaseModel):
    imports: list[ImportOut]


_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "A CSV or JSON Lines file (optionally .gz), up to "
                            "max_upload_bytes (100 MB by default).",
                        },
                        "format": {"type": "string", "enum": list(FORMATS)},
                        "encoding": {
                            "type": "string",
                            "description": "When the file has no byte order mark; default utf-8.",
                        },
                        "delimiter": {
                            "type": "string",
                            "description": "CSV delimiter; default: guessed from the header.",
                        },
                        "mapping": {
                            "type": "string",
                            "description": 'A JSON object, target -> column, e.g. {"user_id": '
                            '"Customer No", "ignore": ["Password"]}. See docs/imports.md.',
                        },
                    },
                }
            }
        },
    }
}


def _services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def _options(fields: dict[str, str]) -> ImportOptions:
    unknown = sorted(set(fields) - set(_OPTION_FIELDS))
    if unknown:
        raise ApiError(
            422,
            "invalid_field",
            f"Unknown form field {unknown[0]!r}; the fields are file, {', '.join(_OPTION_FIELDS)}.",
            unknown[0],
        )
    mapping: Any = {}
    if fields.get("mapping", "").strip():
        try:
            mapping = msgspec.json.decode(fields["mapping"])
        except msgspec.DecodeError:
            raise ApiError(
                422, "invalid_mapping", "mapping is not valid JSON.", "mapping"
            ) from None
        if not isinstance(mapping, dict):
            raise ApiError(422, "invalid_mapping", "mapping must be a JSON object.", "mapping")
    return ImportOptions(
        format=fields.get("format") or None,
        encoding=fields.get("encoding") or None,
        delimiter=fields.get("delimiter") or None,
        mapping=mapping,
    )


@router.post(
    "/{kind}",
    status_code=202,
    response_model=ImportOut,
    openapi_extra=_UPLOAD_BODY,
    responses={
        400: {"description": "Malformed form data"},
        413: {"description": "The file is over max_upload_bytes"},
        415: {"description": "Not multipart/form-data"},
        422: {"description": "Bad kind, option or mapping"},
    },
    summary="Upload a customers, orders or products file; it is imported in the background",
)
async def upload_import(
    request: Request, admin: Admin, kind: Literal["customers", "orders", "products"]
) -> JSONResponse:
    services = _services(request)
    limit = services.settings.max_upload_bytes
    boundary = boundary_of(request.headers.get("content-type", ""))
    declared = request.headers.get("content-length", "")
    # The form's other fields and the part headers add a little on top of the file.
    if declared.isdigit() and int(declared) > limit + 1024 * 1024:
        raise ApiError(413, "too_large", too_large_message(limit), "file")
    upload = Upload(boundary, limit)
    try:
        async for chunk in request.stream():
            upload.write(chunk)
        upload.finish()
        options = _options(upload.fields)
        assert upload.path is not None
        assert upload.filename is not None
        import_id = await run_in_threadpool(
            start_import,
            services,
            kind,
            upload.path,
            upload.filename,
            options,
            audit.key_actor(admin),
            delete_after=True,
        )
    except ImportFailure as exc:
        upload.discard()  # start_import removed it already; harmless
        raise ApiError(422, "invalid_import", str(exc)) from None
    except BaseException:
        upload.discard()
        raise
    with services.db.read() as conn:
        found = get_import(conn, import_id)
    return JSONResponse(found, status_code=202)


@router.get("", response_model=ImportsOut, summary="Recent imports, newest first")
def list_recent_imports(
    request: Request,
    _admin: Admin,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    with _services(request).db.read() as conn:
        return {"imports": list_imports(conn, limit)}


@router.get(
    "/{import_id}",
    response_model=ImportOut,
    responses={404: {"description": "No import with that id"}},
    summary="One import's progress and result",
)
def get_one_import(request: Request, _admin: Admin, import_id: int) -> dict[str, Any]:
    with _services(request).db.read() as conn:
        found = get_import(conn, import_id)
    if found is None:
        raise ApiError(404, "not_found", f"No import with id {import_id}.", "import_id")
    return found
