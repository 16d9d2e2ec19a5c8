"""A multipart/form-data upload streamed to a temporary file as it arrives.

Starlette's `request.form()` would accept a file of any size (spooled to disk) before
the handler could refuse it; this parser counts the file's bytes as they come and stops
at the limit, and never holds more than one network chunk of the file in memory.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from shopkeeper.errors import ApiError

FILE_FIELD = "file"
# The other form fields are short options (format, encoding, a mapping as JSON).
FIELD_LIMIT = 64 * 1024
_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")


class UploadError(ApiError):
    """The upload is unusable: `status` 400 (malformed), 413 (too large), 415 (not
    multipart), 422 (fields); `field` the form field concerned. Answered as it is."""


def boundary_of(content_type: str) -> bytes:
    kind, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise UploadError(
            415,
            "unsupported_media_type",
            "Send the file as multipart/form-data, in a part named 'file'.",
        )
    return boundary


def safe_filename(raw: str) -> str:
    """The file's own name, without any directories a browser or a client put in front
    of it, for reports and for telling the format from the extension."""
    name = _UNSAFE.sub("", raw.replace("\\", "/").rsplit("/", 1)[-1]).strip()
    return name[:200] or "upload"


class Upload:
    """Feed request chunks to `write`, then call `finish`. The file part goes to a
    temporary file (`path`, `filename`); other fields to `fields`. On any error call
    `discard` (the temporary file is removed)."""

    def __init__(self, boundary: bytes, max_file_bytes: int) -> None:
        self.max_file_bytes = max_file_bytes
        self.fields: dict[str, str] = {}
        self.path: Path | None = None
        self.filename: str | None = None
        self.file_bytes = 0
        self._file: Any = None
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._headers: dict[str, bytes] = {}
        self._name: str | None = None
        self._buffer: bytearray | None = None
        self._parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._part_begin,
                "on_header_field": self._header_field_data,
                "on_header_value": self._header_value_data,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
            },
        )

    def write(self, chunk: bytes) -> None:
        try:
            self._parser.write(chunk)
        except MultipartParseError:
            raise UploadError(
                400, "invalid_multipart", "The form data is not valid multipart/form-data."
            ) from None

    def finish(self) -> None:
        try:
            self._parser.finalize()
        except MultipartParseError:
            raise UploadError(
                400, "invalid_multipart", "The form data is not valid multipart/form-data."
            ) from None
        if self._file is not None:  # the body ended inside the file part
            raise UploadError(400, "invalid_multipart", "The form data ends before the file.")
        if self.path is None:
            raise UploadError(422, "missing_field", "The form needs a part named 'file'.", "file")

    def discard(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self.path is not None:
            self.path.unlink(missing_ok=True)
            self.path = None

    # -- parser callbacks ---------------------------------------------------------------

    def _part_begin(self) -> None:
        self._headers = {}
        self._name = None

    def _header_field_data(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._header_field.decode("latin-1").lower()] = bytes(self._header_value)
        self._header_field.clear()
        self._header_value.clear()

    def _headers_finished(self) -> None:
        disposition = self._headers.get("content-disposition", b"")
        _kind, params = parse_options_header(disposition)
        name = params.get(b"name", b"").decode("utf-8", "replace")
        self._name = name
        if name == FILE_FIELD:
            if self.path is not None:
                raise UploadError(422, "invalid_field", "Send one file per import.", "file")
            filename = params.get(b"filename", b"").decode("utf-8", "replace")
            self.filename = safe_filename(filename)
            handle, path = tempfile.mkstemp(prefix="shopkeeper-import-")
            self.path = Path(path)
            self._file = os.fdopen(handle, "wb")
        else:
            if name in self.fields:
                raise UploadError(422, "invalid_field", f"The form has two {name!r} fields.", name)
            self._buffer = bytearray()

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._file is not None:
            self.file_bytes += end - start
            if self.file_bytes > self.max_file_bytes:
                raise UploadError(
                    413,
                    "too_large",
                    too_large_message(self.max_file_bytes),
                    "file",
                )
            self._file.write(data[start:end])
        elif self._buffer is not None:
            self._buffer += data[start:end]
            if len(self._buffer) > FIELD_LIMIT:
                raise UploadError(
                    413, "too_large", f"The field {self._name!r} is over 64 KB.", self._name
                )

    def _part_end(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        elif self._buffer is not None and self._name is not None:
            try:
                self.fields[self._name] = self._buffer.decode("utf-8")
            except UnicodeDecodeError:
                raise UploadError(
                    422, "invalid_field", f"The field {self._name!r} is not UTF-8 text.", self._name
                ) from None
            self._buffer = None


def too_large_message(limit: int) -> str:
    return (
        f"The file is over the {size_text(limit)} upload limit (setting max_upload_bytes); "
        "import larger files with the `shopkeeper import` command."
    )


def size_text(limit: int) -> str:
    if limit >= 1024 * 1024:
        return f"{limit / (1024 * 1024):g} MB"
    return f"{limit / 1024:g} KB"
