"""Streaming readers for CSV and JSON Lines: one record at a time, never the whole file.

A file is read as bytes through a counter (for progress), optionally gunzipped (names
ending in .gz), decoded line by line and parsed. What can go wrong with one line (bad
JSON, a wrong number of CSV fields, bytes that are not text in the file's encoding, a
line over 1 MB) becomes a `Record` with an error, and reading goes on; what makes the
whole file unreadable (an unknown format or encoding, a missing header) raises
`ImportFailure`. Error texts never quote the file's values: they may be personal data.

Encodings: a byte order mark decides (UTF-8, UTF-16 or UTF-32, little or big endian);
without one the `encoding` option, else UTF-8. A file that is not UTF-8 in its first
64 KB fails at once with a hint to pass its encoding, rather than rejecting every line.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar
from zlib import error as zlib_error

import msgspec

from shopkeeper.imports.model import FORMATS, ImportFailure

MAX_LINE_BYTES = 1 << 20
_HEAD_BYTES = 1 << 16
_DELIMITERS = (",", ";", "\t", "|")
_DELIMITER_NAMES = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}
_EXTENSIONS = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".jsonl": "jsonl",
               ".ndjson": "jsonl", ".json": "jsonl"}  # fmt: skip
# Longest marks first: the UTF-32 LE mark starts with the UTF-16 LE one.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_json = msgspec.json.Decoder()
_READ_ERRORS = (OSError, EOFError, zlib_error)  # gzip.BadGzipFile is an OSError
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Record:
    """One record of the file: `values` by column, or an `error` saying why the line is
    unusable. `line` is the physical line the record starts on (the header is line 1)."""

    line: int
    values: dict[str, Any] | None
    error: str | None = None


class _BadLine(Exception):
    def __init__(self, line: int, reason: str) -> None:
        self.line = line
        self.reason = reason


class _Counter(io.RawIOBase):
    """Counts the bytes taken from the file (compressed bytes for .gz), for progress."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        size = self.raw.readinto(buffer)  # type: ignore[attr-defined]
        self.count += size or 0
        return int(size or 0)

    def close(self) -> None:
        self.raw.close()
        super().close()


def detect_format(name: str, requested: str | None) -> str:
    if requested is not None:
        value = requested.strip().lower()
        value = "jsonl" if value in ("json", "ndjson", "json-lines", "jsonlines") else value
        if value not in FORMATS:
            raise ImportFailure(f"format must be csv or jsonl, not {requested!r}")
        return value
    lowered = name.lower()
    if lowered.endswith(".gz"):
        lowered = lowered[:-3]
    for extension, found in _EXTENSIONS.items():
        if lowered.endswith(extension):
            return found
    raise ImportFailure(
        f"cannot tell the format of {name!r} from its name; give it as csv or jsonl "
        "(--format in the CLI, format in the API)"
    )


def check_encoding(name: str | None) -> str | None:
    if name is None or not name.strip():
        return None
    try:
        return codecs.lookup(name.strip()).name
    except LookupError:
        raise ImportFailure(
            f"unknown encoding {name!r} (for example utf-8, cp1252, latin-1)"
        ) from None


def check_delimiter(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    value = _DELIMITER_NAMES.get(value.lower(), value)
    if len(value) != 1 or value in '"\r\n':
        raise ImportFailure(f"the delimiter must be one character (or tab), not {value!r}")
    return value


def _is_wide(encoding: str) -> bool:
    """UTF-16 and UTF-32 cannot be split into lines at b"\\n" bytes; every other codec
    Python offers for text files (ASCII, Latin, cp125x, Shift-JIS, GB18030...) can."""
    return encoding.startswith(("utf-16", "utf-32", "utf_16", "utf_32"))


class _Lines:
    """Text lines of the file with their numbers; decoding problems and overlong lines
    are raised per line (_BadLine) and the iterator stays usable."""

    def __init__(self, stream: io.BufferedReader, encoding: str, wide: bool) -> None:
        self.stream = stream
        self.encoding = encoding
        self.number = 0
        self._pushed: list[str] = []
        self._text = (
            io.TextIOWrapper(stream, encoding=encoding, newline="", errors="strict")
            if wide
            else None
        )

    def __iter__(self) -> _Lines:
        return self

    def push_back(self, line: str) -> None:
        self._pushed.append(line)
        self.number -= 1

    def __next__(self) -> str:
        if self._pushed:
            self.number += 1
            return self._pushed.pop()
        if self._text is not None:
            return self._next_wide(self._text)
        raw = self.stream.readline(MAX_LINE_BYTES)
        if not raw:
            raise StopIteration
        self.number += 1
        if len(raw) >= MAX_LINE_BYTES and not raw.endswith(b"\n"):
            while True:  # skip the rest of the line, then carry on with the next one
                more = self.stream.readline(MAX_LINE_BYTES)
                if not more or more.endswith(b"\n"):
                    break
            raise _BadLine(self.number, "the line is longer than 1 MB")
        try:
            return raw.decode(self.encoding)
        except UnicodeDecodeError as exc:
            raise _BadLine(
                self.number,
                f"byte {exc.start + 1} of the line is not {self.encoding} text (if the file "
                "is in another encoding, give it with --encoding)",
            ) from None

    def _next_wide(self, text: io.TextIOWrapper[io.BufferedReader]) -> str:
        try:
            line = text.readline(MAX_LINE_BYTES // 2)
        except UnicodeDecodeError:
            # A wide codec cannot resynchronise after bad bytes: the rest is unreadable.
            raise ImportFailure(
                f"line {self.number + 1} is not {self.encoding} text; the file is damaged "
                "or in another encoding"
            ) from None
        if not line:
            raise StopIteration
        self.number += 1
        if len(line) >= MAX_LINE_BYTES // 2 and not line.endswith(("\n", "\r")):
            while True:
                more = text.readline(MAX_LINE_BYTES // 2)
                if not more or more.endswith(("\n", "\r")):
                    break
            raise _BadLine(self.number, "the line is longer than 1 MB")
        return line


def _read_failure(name: str, exc: BaseException) -> ImportFailure:
    """One line for a file that cannot be read, without quoting its bytes (the gzip
    module's messages show the first ones)."""
    if isinstance(exc, gzip.BadGzipFile):
        return ImportFailure(f"cannot read {name}: it is not a gzip file")
    if isinstance(exc, EOFError | zlib_error):
        return ImportFailure(f"cannot read {name}: the compressed data is cut short or damaged")
    if isinstance(exc, OSError) and exc.strerror:
        return ImportFailure(f"cannot read {name}: {exc.strerror}")
    return ImportFailure(f"cannot read {name}: {type(exc).__name__}")


def _sniff_delimiter(header: str) -> str:
    """The candidate that splits the header line into the most columns (quoted parts do
    not count); a comma when none does (a one-column file)."""
    counts = dict.fromkeys(_DELIMITERS, 0)
    quoted = False
    for char in header:
        if char == '"':
            quoted = not quoted
        elif not quoted and char in counts:
            counts[char] += 1
    best = max(_DELIMITERS, key=lambda d: counts[d])  # ties: the earlier candidate
    return best if counts[best] else ","


class RecordFile:
    """An open import file. Iterate `records()` once; `bytes_read` grows as it goes."""

    def __init__(
        self,
        path: Path,
        *,
        name: str | None = None,
        format: str | None = None,
        encoding: str | None = None,
        delimiter: str | None = None,
    ) -> None:
        self.name = name or path.name
        self.format = detect_format(self.name, format)
        fallback = check_encoding(encoding)
        self.delimiter = check_delimiter(delimiter)
        self.columns: list[str] | None = None
        try:
            self.bytes_total: int | None = path.stat().st_size
            raw = path.open("rb", buffering=0)
        except OSError as exc:
            raise _read_failure(self.name, exc) from None
        self._counter = _Counter(raw)
        stream: io.BufferedReader = io.BufferedReader(self._counter, _HEAD_BYTES)
        if self.name.lower().endswith(".gz"):
            stream = io.BufferedReader(gzip.GzipFile(fileobj=stream, mode="rb"), _HEAD_BYTES)
        self._stream = stream
        try:
            self.encoding = self._choose_encoding(fallback)
        except BaseException:
            self.close()
            raise

    @property
    def bytes_read(self) -> int:
        return self._counter.count

    def close(self) -> None:
        self._stream.close()
        self._counter.close()

    def __enter__(self) -> RecordFile:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _choose_encoding(self, fallback: str | None) -> str:
        try:
            head = self._stream.peek(_HEAD_BYTES)
        except _READ_ERRORS as exc:
            raise _read_failure(self.name, exc) from None
        for bom, encoding in _BOMS:
            if head.startswith(bom):
                self._stream.read(len(bom))
                return encoding
        if fallback is not None:
            return fallback
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as exc:
            # A multi-byte character cut at the end of the peeked block is fine.
            if exc.reason != "unexpected end of data":
                raise ImportFailure(
                    f"{self.name} is not UTF-8 text (byte {exc.start + 1} of the file); "
                    "give its encoding, for example --encoding cp1252"
                ) from None
        return "utf-8"

    def records(self) -> Iterator[Record]:
        """The records, in file order. For CSV the header is read here, at once, so that
        `columns` is known before the first record is asked for."""
        lines = _Lines(self._stream, self.encoding, _is_wide(self.encoding))
        if self.format == "csv":
            header, reader = self._guarded(lambda: self._header(lines))
            self.columns = [name for name in header if name]
            return self._guard(self._csv(lines, header, reader))
        return self._guard(self._jsonl(lines))

    def _guarded(self, read: Callable[[], _T]) -> _T:
        try:
            return read()
        except _READ_ERRORS as exc:
            raise _read_failure(self.name, exc) from None

    def _guard(self, records: Iterator[Record]) -> Iterator[Record]:
        """A damaged or truncated file (a broken .gz) stops the import with one line."""
        try:
            yield from records
        except _READ_ERRORS as exc:
            raise _read_failure(self.name, exc) from None

    def _header(self, lines: _Lines) -> tuple[list[str], Any]:
        while True:
            try:
                first = next(lines)
            except StopIteration:
                raise ImportFailure(f"{self.name} is empty: it needs a header line") from None
            except _BadLine as bad:
                raise ImportFailure(f"{self.name} line {bad.line}: {bad.reason}") from None
            if first.strip():
                break
        lines.push_back(first)
        delimiter = self.delimiter or _sniff_delimiter(first)
        self.delimiter = delimiter
        reader = csv.reader(lines, delimiter=delimiter, quotechar='"', doublequote=True)
        try:
            header = next(reader)
        except (csv.Error, _BadLine) as exc:
            raise ImportFailure(f"{self.name}: the header line is not valid CSV ({exc})") from None
        names = [name.strip().lstrip("\ufeff").strip() for name in header]
        seen: dict[str, int] = {}
        for index, column in enumerate(names, start=1):
            key = column.casefold()
            if column and key in seen:
                raise ImportFailure(
                    f"{self.name}: columns {seen[key]} and {index} have the same name"
                )
            seen[key] = index
        if not any(names):
            raise ImportFailure(f"{self.name}: the header line names no columns")
        return names, reader

    def _csv(self, lines: _Lines, header: list[str], reader: Any) -> Iterator[Record]:
        width = len(header)
        while True:
            start = lines.number + 1
            try:
                row = next(reader)
            except StopIteration:
                return
            except _BadLine as bad:
                yield Record(bad.line, None, bad.reason)
                continue
            except csv.Error as exc:
                if "field limit" in str(exc):
                    # Almost always a quote that is never closed: say which lines it ate.
                    reason = (
                        "a field runs on for more than 128 KB (a quote that is not closed?); "
                        f"lines {start} to {lines.number} are skipped"
                    )
                else:
                    reason = f"not valid CSV ({exc})"
                yield Record(start, None, reason)
                continue
            if not any(field.strip() for field in row):
                continue  # blank lines and rows of empty fields (spreadsheet leftovers)
            if len(row) != width and not (
                len(row) > width and not any(field.strip() for field in row[width:])
            ):
                yield Record(start, None, f"the line has {len(row)} fields; the header has {width}")
                continue
            # Longer rows end in empty fields here (checked above).
            values = {name: value for name, value in zip(header, row, strict=False) if name}
            yield Record(start, values)

    def _jsonl(self, lines: _Lines) -> Iterator[Record]:
        first = True
        while True:
            try:
                text = next(lines)
            except StopIteration:
                return
            except _BadLine as bad:
                yield Record(bad.line, None, bad.reason)
                continue
            stripped = text.strip()
            if not stripped:
                continue
            if first and stripped.startswith("["):
                raise ImportFailure(
                    f"{self.name} holds a JSON array; imports read JSON Lines (one object per line)"
                )
            first = False
            try:
                value = _json.decode(stripped)
            except msgspec.DecodeError as exc:
                yield Record(lines.number, None, f"not valid JSON ({exc})")
                continue
            if not isinstance(value, dict):
                yield Record(lines.number, None, "the line is not a JSON object")
                continue
            yield Record(lines.number, value)
