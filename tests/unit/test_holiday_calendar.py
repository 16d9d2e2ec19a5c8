"""The holiday calendar of holiday entries and the day arithmetic of date entries,
checked against published dates and, where it has the day, the `holidays` package and
dateutil (independent sources of truth)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import holidays
import pytest
from dateutil.easter import easter as dateutil_easter

from shopkeeper.journeys.entries_holidays import (
    FATHERS_DAY,
    MOTHERS_DAY,
    anniversary,
    attribute_day,
    date_due,
    dates_anywhere,
    easter,
    holiday_dates,
    holiday_name,
    key_of,
    nth_weekday,
)

D = dt.date


def one(holiday: str, country: str | None, year: int) -> dt.date:
    days = holiday_dates(holiday, country, year)
    assert len(days) == 1, days
    return next(iter(days))


@pytest.mark.parametrize(
    ("holiday", "country", "day"),
    [
        # Norway: morsdag, the second Sunday of February.
        ("mothers_day", "NO", D(2026, 2, 8)),
        ("mothers_day", "NO", D(2025, 2, 9)),
        ("mothers_day", "NO", D(2027, 2, 14)),
        # The United States: the second Sunday of May.
        ("mothers_day", "US", D(2026, 5, 10)),
        ("mothers_day", "US", D(2025, 5, 11)),
        # The United Kingdom: Mothering Sunday, three weeks before Easter Sunday.
        ("mothers_day", "GB", D(2026, 3, 15)),
        ("mothers_day", "GB", D(2025, 3, 30)),
        ("mothers_day", "GB", D(2024, 3, 10)),
        # Sweden: the last Sunday of May.
        ("mothers_day", "SE", D(2026, 5, 31)),
        ("mothers_day", "SE", D(2025, 5, 25)),
        # France: the last Sunday of May, the first of June when that is Pentecost.
        ("mothers_day", "FR", D(2026, 5, 31)),
        ("mothers_day", "FR", D(2025, 5, 25)),
        ("mothers_day", "FR", D(2024, 5, 26)),
        ("mothers_day", "FR", D(2020, 6, 7)),
        ("mothers_day", "MX", D(2026, 5, 10)),
        ("mothers_day", "ES", D(2026, 5, 3)),
        # Father's Day.
        ("fathers_day", "US", D(2026, 6, 21)),
        ("fathers_day", "GB", D(2026, 6, 21)),
        ("fathers_day", "SE", D(2026, 11, 8)),
        ("fathers_day", "NO", D(2026, 11, 8)),
        ("fathers_day", "NO", D(2025, 11, 9)),
        ("fathers_day", "DE", D(2026, 5, 14)),  # Ascension Day
        ("fathers_day", "AU", D(2026, 9, 6)),
        ("fathers_day", "IT", D(2026, 3, 19)),
        # The US Thanksgiving is the fourth Thursday of November: 2026-11-26.
        ("black_friday", "NO", D(2026, 11, 27)),
        ("black_friday", None, D(2025, 11, 28)),
        ("cyber_monday", "DE", D(2026, 11, 30)),
        ("cyber_monday", "US", D(2025, 12, 1)),
        ("valentines", "NO", D(2026, 2, 14)),
        ("christmas", "JP", D(2026, 12, 25)),
        ("new_year", None, D(2027, 1, 1)),
        ("national_day", "NO", D(2026, 5, 17)),
        ("national_day", "SE", D(2026, 6, 6)),
        ("national_day", "US", D(2026, 7, 4)),
        ("national_day", "DE", D(2026, 10, 3)),
        # Names as the calendar writes them, in any case, with or without apostrophes.
        ("Mother's Day", "US", D(2026, 5, 10)),
        ("MOTHERING SUNDAY", "GB", D(2026, 3, 15)),
        ("Black Friday", "SE", D(2026, 11, 27)),
        ("Easter Sunday", "NO", D(2026, 4, 5)),
        ("midsummer day", "SE", D(2026, 6, 20)),
        ("Halloween", "US", D(2026, 10, 31)),
    ],
)
def test_published_dates(holiday: str, country: str | None, day: dt.date) -> None:
    assert one(holiday, country, day.year) == day


def test_the_us_thanksgiving_agrees_with_the_holidays_package() -> None:
    for year in range(2015, 2040):
        us = holidays.country_holidays("US", years=year)
        thanksgiving = next(d for d, n in us.items() if n == "Thanksgiving Day")
        assert one("black_friday", None, year) == thanksgiving + dt.timedelta(days=1)
        assert one("cyber_monday", None, year) == thanksgiving + dt.timedelta(days=4)


def test_easter_agrees_with_dateutil_and_the_holidays_package() -> None:
    for year in range(1900, 2200):
        assert easter(year) == dateutil_easter(year), year
    for year in range(2000, 2050):
        no = holidays.country_holidays("NO", years=year, language="en_US")
        assert easter(year) == next(d for d, n in no.items() if n == "Easter Sunday")


@pytest.mark.parametrize("country", ["US", "FI"])
def test_mothers_and_fathers_days_agree_with_the_package_where_it_has_them(
    country: str,
) -> None:
    compared: set[tuple[str, int]] = set()
    for year in range(2015, 2040):
        every = holidays.country_holidays(country).supported_categories
        calendar = holidays.country_holidays(
            country, years=year, categories=every, language="en_US"
        )
        by_name = {name: day for day, names in calendar.items() for name in names.split("; ")}
        for key, name in (("mothers_day", "Mother's Day"), ("fathers_day", "Father's Day")):
            if name in by_name:  # the package lists them from some year on only
                assert one(key, country, year) == by_name[name], (key, year)
                compared.add((key, year))
    assert len(compared) >= 20


def test_ascension_day_and_fathers_day_in_germany_agree_with_the_package() -> None:
    for year in range(2015, 2040):
        de = holidays.country_holidays("DE", years=year, language="en_US")
        assert one("fathers_day", "DE", year) == next(
            d for d, n in de.items() if n == "Ascension Day"
        )


def test_countries_without_a_known_custom_get_no_day() -> None:
    assert holiday_dates("mothers_day", "ZZ", 2026) == frozenset()
    assert holiday_dates("mothers_day", None, 2026) == frozenset()
    assert holiday_dates("Easter Sunday", "ZZ", 2026) == frozenset()
    assert holiday_dates("No Such Day", "NO", 2026) == frozenset()
    assert set(MOTHERS_DAY) & {"NO", "SE", "GB", "FR", "US"} == {"NO", "SE", "GB", "FR", "US"}
    assert {"NO", "SE", "FI", "DE", "AU"} <= set(FATHERS_DAY)


def test_a_holiday_of_several_days_is_entered_on_its_first() -> None:
    # China's National Day holiday is three days in the calendar.
    assert holiday_dates("national_day", "CN", 2026) == {D(2026, 10, 1)}


def test_dates_anywhere_covers_every_country() -> None:
    anywhere = dates_anywhere("mothers_day", 2026)
    assert {D(2026, 2, 8), D(2026, 3, 15), D(2026, 5, 10), D(2026, 5, 31)} <= anywhere
    assert D(2026, 7, 1) not in anywhere
    assert dates_anywhere("christmas", 2026) == {D(2026, 12, 25)}
    assert D(2026, 5, 17) in dates_anywhere("national_day", 2026)


def test_keys_and_names() -> None:
    assert key_of("Mother's Day") == key_of("mothers day") == "mothers_day"
    assert key_of("Valentine\u2019s Day") == "valentines"
    assert key_of("Christmas Day") == "christmas"
    assert holiday_name("mothers_day", "NO", D(2026, 2, 8)) == "Mother's Day"
    assert holiday_name("national_day", "NO", D(2026, 5, 17)) == "Constitution Day"
    assert holiday_name("easter sunday", "NO", D(2026, 4, 5)) == "Easter Sunday"


def test_nth_weekday() -> None:
    assert nth_weekday(2026, 11, 4, 3) == D(2026, 11, 26)
    assert nth_weekday(2026, 5, -1, 6) == D(2026, 5, 31)
    assert nth_weekday(2026, 12, -1, 6) == D(2026, 12, 27)
    assert nth_weekday(2026, 2, 1, 6) == D(2026, 2, 1)


def test_anniversaries_of_february_29() -> None:
    leap = D(2000, 2, 29)
    assert anniversary(leap, 2026) == D(2026, 2, 28)
    assert anniversary(leap, 2028) == D(2028, 2, 29)
    utc = dt.UTC
    assert date_due("2000-02-29", D(2026, 2, 28), utc, offset_days=0, annual=True)
    assert not date_due("2000-02-29", D(2026, 3, 1), utc, offset_days=0, annual=True)
    assert date_due("2000-02-29", D(2028, 2, 29), utc, offset_days=0, annual=True)
    assert not date_due("2000-02-29", D(2028, 2, 28), utc, offset_days=0, annual=True)


def test_date_attributes_in_the_persons_time_zone() -> None:
    oslo, la = ZoneInfo("Europe/Oslo"), ZoneInfo("America/Los_Angeles")
    # A date is the same day everywhere; a time falls on the person's own calendar.
    assert attribute_day("1990-12-01", la) == D(1990, 12, 1)
    assert attribute_day("2026-03-02T23:30:00Z", oslo) == D(2026, 3, 3)
    assert attribute_day("2026-03-02T23:30:00Z", la) == D(2026, 3, 2)
    assert attribute_day("2026-03-02T23:30:00", la) == D(2026, 3, 2)
    assert attribute_day("not a date", oslo) is None
    assert attribute_day(19901201, oslo) is None
    # Seven days before the birthday, and 30 days after an order.
    assert date_due("1990-12-01", D(2026, 11, 24), oslo, offset_days=-7, annual=True)
    assert not date_due("1990-12-01", D(2026, 12, 1), oslo, offset_days=-7, annual=True)
    assert date_due("2026-10-24T15:00:00Z", D(2026, 11, 23), oslo, offset_days=30, annual=False)
    assert not date_due("2025-10-24T15:00:00Z", D(2026, 11, 23), oslo, offset_days=30, annual=False)
    # Not before the date itself.
    assert not date_due("2030-12-01", D(2026, 12, 1), oslo, offset_days=0, annual=True)
