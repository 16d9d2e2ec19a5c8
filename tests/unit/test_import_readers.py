"""The streaming readers: encodings and byte order marks, quoted fields, embedded line
breaks, delimiters, bad lines reported (not fatal), unusable files refused in one line."""

from __future__ import annotations

import codecs
import gzip
import hashlib
from pathlib import Path
from typing import Any

import pytest

from shopkeeper.imports.model import ImportFailure
from shopkeeper.imports.readers import MAX_LINE_BYTES, Record, RecordFile


def read(path: Path, **options: Any) -> tuple[list[Record], RecordFile]:
    with RecordFile(path, **options) as file:
        records = list(file.records())
    return records, file


def good(records: list[Record]) -> list[tuple[int, dict[str, Any] | None]]:
    return [(r.line, r.values) for r in records]


def test_csv_with_quoted_delimiters_quotes_and_line_breaks(tmp_path: Path) -> None:
    path = tmp_path / "customers.csv"
    path.write_bytes(b'id,name,note\r\n1,"Silva, Ana","said ""hi""\r\nthen left"\r\n\r\n2,Bo,\r\n')
    records, file = read(path)
    assert good(records) == [
        (2, {"id": "1", "name": "Silva, Ana", "note": 'said "hi"\r\nthen left'}),
        (5, {"id": "2", "name": "Bo", "note": ""}),
    ]
    assert (file.delimiter, file.encoding, file.columns) == (",", "utf-8", ["id", "name", "note"])
    assert file.bytes_read == file.bytes_total == len(path.read_bytes())


@pytest.mark.parametrize(
    ("bom", "encoding"),
    [
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
    ],
)
def test_byte_order_marks_decide_the_encoding(tmp_path: Path, bom: bytes, encoding: str) -> None:
    text = 'Customer ID;Navn\n7;Åse Ødegård\n8;"李, 小龙"\n'
    path = tmp_path / "kunder.csv"
    path.write_bytes(bom + text.encode(encoding))
    records, file = read(path)
    assert file.encoding == encoding
    assert file.delimiter == ";"
    # The mark is not part of the first column's name.
    assert file.columns == ["Customer ID", "Navn"]
    assert good(records) == [
        (2, {"Customer ID": "7", "Navn": "Åse Ødegård"}),
        (3, {"Customer ID": "8", "Navn": "李, 小龙"}),
    ]


def test_a_file_in_another_encoding_needs_the_option(tmp_path: Path) -> None:
    path = tmp_path / "legacy.csv"
    path.write_bytes("id,name\n1,José Müller\n".encode("cp1252"))
    with pytest.raises(ImportFailure) as refused:
        read(path)
    assert str(refused.value) == (
        "legacy.csv is not UTF-8 text (byte 14 of the file); give its encoding, for example "
        "--encoding cp1252"
    )
    records, file = read(path, encoding="cp1252")
    assert file.encoding == "cp1252"
    assert good(records) == [(2, {"id": "1", "name": "José Müller"})]


def test_a_stray_byte_past_the_first_block_rejects_only_its_line(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    filler = b"".join(b"%d,someone\n" % i for i in range(10_000))  # > 64 KB of good UTF-8
    path.write_bytes(b"id,name\n" + filler + b"10000,Jos\xe9\n10001,ok\n")
    records, _ = read(path)
    assert len(records) == 10_002
    assert records[-2] == Record(
        10_002,
        None,
        "byte 10 of the line is not utf-8 text (if the file is in another encoding, give it "
        "with --encoding)",
    )
    assert records[-1] == Record(10_003, {"id": "10001", "name": "ok"})


def test_wrong_field_counts_are_rejected_trailing_empty_fields_are_not(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("a,b,c\n1,2\n1,2,3,4\n1,2,3,,\n,,\n")
    records, _ = read(path)
    assert good(records) == [(2, None), (3, None), (4, {"a": "1", "b": "2", "c": "3"})]
    assert [r.error for r in records[:2]] == [
        "the line has 2 fields; the header has 3",
        "the line has 4 fields; the header has 3",
    ]


def test_delimiter_is_guessed_from_the_header_or_given(tmp_path: Path) -> None:
    path = tmp_path / "tabs.tsv"
    path.write_text('id\tname\t"a,b"\n1\tAna\tx,y\n')
    records, file = read(path)
    assert file.delimiter == "\t"
    assert good(records) == [(2, {"id": "1", "name": "Ana", "a,b": "x,y"})]

    pipes = tmp_path / "pipes.txt"
    pipes.write_text("id|name,full\n1|Ana, Silva\n")
    records, file = read(pipes, delimiter="|")
    assert good(records) == [(2, {"id": "1", "name,full": "Ana, Silva"})]
    with pytest.raises(ImportFailure, match="the delimiter must be one character"):
        read(pipes, delimiter="||")


def test_json_lines_bad_lines_are_reported_and_reading_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "customers.jsonl"
    path.write_bytes(
        codecs.BOM_UTF8
        + b'{"id": 1, "tags": ["a"], "address": {"city": "Oslo"}}\n'
        + b"\n"
        + b'{"id": 2, "name": "unterminated\n'
        + b"[1, 2]\n"
        + b'  {"id": 3}  \r\n'
    )
    records, file = read(path)
    assert file.format == "jsonl"
    assert records == [
        Record(1, {"id": 1, "tags": ["a"], "address": {"city": "Oslo"}}),
        Record(3, None, "not valid JSON (Input data was truncated)"),
        Record(4, None, "the line is not a JSON object"),
        Record(5, {"id": 3}),
    ]


def test_a_json_array_file_is_refused_with_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "customers.json"
    path.write_text('[{"id": 1}]\n')
    with pytest.raises(ImportFailure, match=r"holds a JSON array; imports read JSON Lines"):
        read(path)


def test_gzip_files_are_read_and_progress_counts_compressed_bytes(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv.gz"
    with gzip.open(path, "wb") as out:
        out.write(b"order_id,total\n" + b"".join(b"o%d,%d\n" % (i, i) for i in range(1000)))
    records, file = read(path)
    assert file.format == "csv"
    assert len(records) == 1000
    assert records[999] == Record(1001, {"order_id": "o999", "total": "999"})
    assert file.bytes_read == file.bytes_total == path.stat().st_size


def test_an_overlong_line_is_rejected_alone(tmp_path: Path) -> None:
    path = tmp_path / "long.jsonl"
    path.write_bytes(b'{"a": 1}\n{"b": "' + b"x" * MAX_LINE_BYTES + b'"}\n{"c": 3}\n')
    records, _ = read(path)
    assert records == [
        Record(1, {"a": 1}),
        Record(2, None, "the line is longer than 1 MB"),
        Record(3, {"c": 3}),
    ]


@pytest.mark.parametrize(
    ("name", "content", "options", "message"),
    [
        ("x.xlsx", b"id\n", {}, "cannot tell the format of 'x.xlsx' from its name"),
        ("x.csv", b"id\n", {"format": "xml"}, "format must be csv or jsonl, not 'xml'"),
        ("x.csv", b"id\n", {"encoding": "klingon"}, "unknown encoding 'klingon'"),
        ("x.csv", b"", {}, "x.csv is empty: it needs a header line"),
        ("x.csv", b"\n\n", {}, "x.csv is empty: it needs a header line"),
        ("x.csv", b"id,Name,name\n", {}, "x.csv: columns 2 and 3 have the same name"),
        ("x.csv.gz", b"not gzip at all", {}, "cannot read x.csv.gz: it is not a gzip file"),
    ],
)
def test_unusable_files_fail_with_one_line(
    tmp_path: Path, name: str, content: bytes, options: dict[str, str], message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ImportFailure) as refused:
        read(path, **options)
    assert str(refused.value).startswith(message)


def test_a_truncated_gzip_file_keeps_the_rows_before_the_damage(tmp_path: Path) -> None:
    path = tmp_path / "orders.jsonl.gz"
    lines = (b'{"n": %d, "h": "%s"}\n' % (i, hashlib.sha256(b"%d" % i).hexdigest().encode())
             for i in range(20_000))  # fmt: skip
    whole = gzip.compress(b"".join(lines))
    path.write_bytes(whole[: len(whole) // 2])
    seen: list[Record] = []
    with RecordFile(path) as file, pytest.raises(ImportFailure) as refused:
        seen.extend(file.records())
    assert str(refused.value) == (
        "cannot read orders.jsonl.gz: the compressed data is cut short or damaged"
    )
    assert len(seen) > 100
    assert seen[0] == Record(1, {"n": 0, "h": hashlib.sha256(b"0").hexdigest()})


def test_an_unclosed_quote_costs_the_lines_it_swallows_and_says_which(tmp_path: Path) -> None:
    path = tmp_path / "quotes.csv"
    rows = "".join(f"{i},name {i}\n" for i in range(3, 20_000))
    path.write_text('id,name\n1,"never closed\n' + rows)
    records, _ = read(path)
    first_after = records[1].line
    assert records[0] == Record(
        2,
        None,
        "a field runs on for more than 128 KB (a quote that is not closed?); lines 2 to "
        f"{first_after - 1} are skipped",
    )
    assert records[1] == Record(
        first_after, {"id": str(first_after), "name": f"name {first_after}"}
    )
    assert records[-1] == Record(19_999, {"id": "19999", "name": "name 19999"})
    assert len(records) == 19_999 - first_after + 2


def test_format_option_wins_over_the_name(tmp_path: Path) -> None:
    path = tmp_path / "export.txt"
    path.write_text('{"id": "7"}\n')
    records, _ = read(path, format="jsonl")
    assert records == [Record(1, {"id": "7"})]
