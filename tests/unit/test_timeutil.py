from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shopkeeper.timeutil import ms_to_iso, parse_iso_ms


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("1970-01-01T00:00:00Z", 0),
        ("2026-11-23T08:00:00.123Z", 1_795_420_800_123),
        ("2026-11-23T09:00:00.123+01:00", 1_795_420_800_123),
        ("2026-11-23T08:00:00", 1_795_420_800_000),  # no zone: UTC
        ("2026-11-23", 1_795_392_000_000),
        ("2024-02-29T23:59:59.999999Z", 1_709_251_199_999),
    ],
)
def test_parse_iso(text: str, ms: int) -> None:
    assert parse_iso_ms(text) == ms


def test_iso_round_trip_is_fixed_width_and_ordered() -> None:
    start = datetime(1999, 12, 31, 23, 59, 58, 999000, tzinfo=UTC)
    previous = ""
    for step in range(0, 400 * 86_400_000, 77_777_777):
        moment = start + timedelta(milliseconds=step)
        ms = int(moment.timestamp() * 1000)
        text = ms_to_iso(ms)
        assert text == moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
        assert len(text) == 24
        assert text > previous
        assert parse_iso_ms(text) == ms
        previous = text


def test_not_a_date() -> None:
    with pytest.raises(ValueError, match="not an ISO-8601"):
        parse_iso_ms("yesterday")
