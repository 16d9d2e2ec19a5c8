"""The days that date and holiday entries look for: which day it is for a person in their
own time zone, anniversaries (Feb 29 falls on Feb 28 in other years), and each country's
holidays: the `holidays` package's calendars plus the days it lacks that shops care
about (Mother's Day and Father's Day, which fall on different days in different
countries, Black Friday, Cyber Monday, Valentine's Day). Pure: no database, no clock.

A holiday is named by a key (christmas, new_year, mothers_day, fathers_day,
black_friday, cyber_monday, valentines, national_day...) or by a name as the calendar
writes it in English ("Easter Sunday", "Midsummer Day"), compared case-insensitively
and without apostrophes, so "Mother's Day" is the key mothers_day.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import holidays

from shopkeeper.journeys.engine import zone
from shopkeeper.messaging.formatting import is_zone

SUNDAY, THURSDAY = 6, 3


@dataclass(frozen=True)
class Rule:
    """A day in any year: the n-th (1-based, -1 for the last) `weekday` of `month`;
    a fixed `day` of `month`; `offset` days after Easter Sunday; or France's Mother's
    Day (the last Sunday of May, a week later when that is Pentecost)."""

    kind: str  # nth | fixed | easter | france
    month: int = 0
    n: int = 0
    weekday: int = SUNDAY
    day: int = 0
    offset: int = 0


def _nth(month: int, n: int, weekday: int = SUNDAY) -> Rule:
    return Rule("nth", month=month, n=n, weekday=weekday)


def _fixed(month: int, day: int) -> Rule:
    return Rule("fixed", month=month, day=day)


def _easter(offset: int) -> Rule:
    return Rule("easter", offset=offset)


_SECOND_SUNDAY_MAY = _nth(5, 2)
_FIRST_SUNDAY_MAY = _nth(5, 1)
_LAST_SUNDAY_MAY = _nth(5, -1)
_THIRD_SUNDAY_JUNE = _nth(6, 3)
_SECOND_SUNDAY_NOVEMBER = _nth(11, 2)
_SAINT_JOSEPH = _fixed(3, 19)


def _each(rule: Rule, countries: str) -> dict[str, Rule]:
    return {code: rule for code in countries.split()}


# Published customs per country (ISO 3166 alpha-2). Countries not listed have no such
# day here: better no greeting than one on the wrong day.
MOTHERS_DAY: Mapping[str, Rule] = {
    **_each(
        _SECOND_SUNDAY_MAY,
        "US CA AU NZ DE AT CH IT BE NL DK FI EE IS JP CN HK SG MY PH IN ZA BR CL PE CZ SK "
        "HR LV UA TR GR KE",
    ),
    **_each(_FIRST_SUNDAY_MAY, "ES PT LT HU RO"),
    **_each(_LAST_SUNDAY_MAY, "SE DO CO"),
    **_each(_fixed(5, 10), "MX GT SV"),
    **_each(_fixed(3, 21), "EG AE JO LB"),
    # Mothering Sunday: the fourth Sunday of Lent, three weeks before Easter.
    **_each(_easter(-21), "GB IE"),
    "NO": _nth(2, 2),
    "FR": Rule("france"),
    "PL": _fixed(5, 26),
    "AR": _nth(10, 3),
    "RU": _nth(11, -1),
    "TH": _fixed(8, 12),
    "KR": _fixed(5, 8),
    "SI": _fixed(3, 25),
    "BO": _fixed(5, 27),
    "PY": _fixed(5, 15),
    "CR": _fixed(8, 15),
    "PA": _fixed(12, 8),
    "ID": _fixed(12, 22),
}

FATHERS_DAY: Mapping[str, Rule] = {
    **_each(
        _THIRD_SUNDAY_JUNE,
        "US CA GB IE FR NL JP CN HK SG MY PH IN ZA MX AR CL CO PE GR TR CZ SK HU SI KE",
    ),
    **_each(_SECOND_SUNDAY_NOVEMBER, "NO SE FI EE IS"),
    **_each(_nth(9, 1), "AU NZ"),
    **_each(_nth(6, 2), "AT BE"),
    **_each(_SAINT_JOSEPH, "IT ES PT HR"),
    # Vatertag is Ascension Day, 39 days after Easter.
    "DE": _easter(39),
    "DK": _fixed(6, 5),
    "CH": _nth(6, 1),
    "LT": _nth(6, 1),
    "LV": _nth(9, 2),
    "PL": _fixed(6, 23),
    "BR": _nth(8, 2),
    "RO": _nth(5, 2),
    "UA": _nth(9, 3),
    "KR": _fixed(5, 8),
    "TH": _fixed(12, 5),
    "TW": _fixed(8, 8),
}

# The same day in every country.
FIXED: Mapping[str, tuple[int, int]] = {
    "new_year": (1, 1),
    "valentines": (2, 14),
    "christmas_eve": (12, 24),
    "christmas": (12, 25),
}

NAMES: Mapping[str, str] = {
    "new_year": "New Year's Day",
    "valentines": "Valentine's Day",
    "christmas_eve": "Christmas Eve",
    "christmas": "Christmas Day",
    "mothers_day": "Mother's Day",
    "fathers_day": "Father's Day",
    "black_friday": "Black Friday",
    "cyber_monday": "Cyber Monday",
    "national_day": "National Day",
}

# Other ways of writing the keys (after normalize()).
ALIASES: Mapping[str, str] = {
    "new_years_day": "new_year",
    "new_years": "new_year",
    "valentines_day": "valentines",
    "christmas_day": "christmas",
    "mothering_sunday": "mothers_day",
    "mother_day": "mothers_day",
    "father_day": "fathers_day",
}

# The calendar's name of the national day where the generic names below would pick
# another day (or none).
_NATIONAL_DAY: Mapping[str, str] = {
    "NO": "Constitution Day",
    "DK": "Constitution Day",
    "DE": "German Unity Day",
    "CA": "Canada Day",
    "AU": "Australia Day",
    "IE": "Saint Patrick's Day",
    "NL": "King's Day",
    "IT": "Republic Day",
    "PL": "National Independence Day",
    "MX": "Independence Day",
    "JP": "Foundation Day",
    "IN": "Independence Day",
    "US": "Independence Day",
    "PT": "Day of Portugal, Camões, and the Portuguese Communities",
}
_NATIONAL_DAY_NAMES = (
    "National Day",
    "Independence Day",
    "Constitution Day",
    "Republic Day",
    "Unity Day",
)

_NOT_WORD = re.compile(r"[^a-z0-9]+")


def normalize(text: str) -> str:
    """ "Mother's Day" -> "mothers_day": how keys and calendar names are compared."""
    lowered = text.casefold().replace("'", "").replace("\u2019", "")
    return _NOT_WORD.sub("_", lowered).strip("_")


def key_of(holiday: str) -> str:
    key = normalize(holiday)
    return ALIASES.get(key, key)


# -- dates by rule --------------------------------------------------------------------


def easter(year: int) -> dt.date:
    """Easter Sunday in the Gregorian calendar (the anonymous Gregorian algorithm, as
    published by Meeus)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    ell = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * ell) // 451
    month, day = divmod(h + ell - 7 * m + 114, 31)
    return dt.date(year, month, day + 1)


def nth_weekday(year: int, month: int, n: int, weekday: int) -> dt.date:
    """The n-th (1-based; -1: the last) weekday (Monday 0) of a month."""
    if n > 0:
        first = dt.date(year, month, 1)
        return first + dt.timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
    following = dt.date(year + month // 12, month % 12 + 1, 1)
    last = following - dt.timedelta(days=1)
    return last - dt.timedelta(days=(last.weekday() - weekday) % 7)


def by_rule(rule: Rule, year: int) -> dt.date:
    if rule.kind == "nth":
        return nth_weekday(year, rule.month, rule.n, rule.weekday)
    if rule.kind == "fixed":
        return dt.date(year, rule.month, rule.day)
    if rule.kind == "easter":
        return easter(year) + dt.timedelta(days=rule.offset)
    if rule.kind == "france":
        day = nth_weekday(year, 5, -1, SUNDAY)
        pentecost = easter(year) + dt.timedelta(days=49)
        return day + dt.timedelta(days=7) if day == pentecost else day
    raise ValueError(f"unknown rule {rule!r}")


def thanksgiving_us(year: int) -> dt.date:
    return nth_weekday(year, 11, 4, THURSDAY)


# -- calendars ------------------------------------------------------------------------


@functools.lru_cache(maxsize=2048)
def calendar(country: str, year: int) -> tuple[tuple[dt.date, str], ...]:
    """The package's holidays of a country in a year, every category (so that days such
    as Christmas Eve or Halloween are there where it lists them), in English; empty for
    a country it does not know."""
    try:
        found = holidays.country_holidays(country, years=year)
        every = holidays.country_holidays(
            country, years=year, categories=found.supported_categories, language="en_US"
        )
    except (NotImplementedError, KeyError, ValueError):
        return ()
    return tuple(sorted((day, name) for day, names in every.items() for name in names.split("; ")))


def _by_name(country: str, year: int, wanted: str) -> list[dt.date]:
    """Days whose calendar name is `wanted` (normalized), the first of each run of
    consecutive days (a holiday of three days is entered on once)."""
    days = sorted({day for day, name in calendar(country, year) if normalize(name) == wanted})
    return [day for day in days if day - dt.timedelta(days=1) not in days]


def _national_day(country: str, year: int) -> list[dt.date]:
    names = [_NATIONAL_DAY[country]] if country in _NATIONAL_DAY else list(_NATIONAL_DAY_NAMES)
    for name in names:
        days = _by_name(country, year, normalize(name))
        if days:
            return days[:1]
    return []


@functools.lru_cache(maxsize=8192)
def holiday_dates(holiday: str, country: str | None, year: int) -> frozenset[dt.date]:
    """The days of `holiday` in `year` for someone in `country` (None: unknown; only the
    days that are the same everywhere then)."""
    key = key_of(holiday)
    if key in FIXED:
        month, day = FIXED[key]
        return frozenset({dt.date(year, month, day)})
    if key == "black_friday":
        return frozenset({thanksgiving_us(year) + dt.timedelta(days=1)})
    if key == "cyber_monday":
        return frozenset({thanksgiving_us(year) + dt.timedelta(days=4)})
    if country is None:
        return frozenset()
    country = country.upper()
    if key in ("mothers_day", "fathers_day"):
        rules = MOTHERS_DAY if key == "mothers_day" else FATHERS_DAY
        rule = rules.get(country)
        return frozenset({by_rule(rule, year)}) if rule is not None else frozenset()
    if key == "national_day":
        return frozenset(_national_day(country, year))
    return frozenset(_by_name(country, year, key))


def holiday_name(holiday: str, country: str | None, day: dt.date) -> str:
    """How to call the holiday in a message's properties."""
    key = key_of(holiday)
    if key == "national_day" and country:
        for found, name in calendar(country.upper(), day.year):
            if found == day:
                return name
    if key in NAMES:
        return NAMES[key]
    for found, name in calendar(country.upper(), day.year) if country else ():
        if found == day and normalize(name) == key:
            return name
    return holiday


@functools.lru_cache(maxsize=256)
def dates_anywhere(holiday: str, year: int) -> frozenset[dt.date]:
    """Every day `holiday` falls on in some country in `year`: when none of them is near,
    nobody needs to be looked at."""
    key = key_of(holiday)
    if key in ("mothers_day", "fathers_day"):
        rules = MOTHERS_DAY if key == "mothers_day" else FATHERS_DAY
        return frozenset(by_rule(rule, year) for rule in rules.values())
    countries: list[str | None] = [None]
    if key not in FIXED and key not in ("black_friday", "cyber_monday"):
        countries += sorted(holidays.list_supported_countries())
    out: set[dt.date] = set()
    for country in countries:
        out |= holiday_dates(holiday, country, year)
    return frozenset(out)


# -- a person's day -------------------------------------------------------------------


def person_zone(traits: Mapping[str, Any], computed: Mapping[str, Any], default: str) -> dt.tzinfo:
    """The person's time zone: theirs as last seen, else as they set it, else the
    shop's (an unknown name counts as UTC)."""
    for value in (computed.get("timezone"), traits.get("timezone"), default):
        if is_zone(value):
            return zone(str(value).strip())
    return dt.UTC


def _dig(data: Any, path: Sequence[str]) -> Any:
    for part in path:
        if not isinstance(data, Mapping):
            return None
        data = data.get(part)
    return data


def date_attribute(traits: Mapping[str, Any], computed: Mapping[str, Any], attribute: str) -> Any:
    """A date attribute as the wait_date step reads it: a trait, else a computed one
    (`traits.` or `computed.` in front picks one)."""
    path = attribute.split(".")
    if path[0] in ("traits", "computed") and len(path) > 1:
        return _dig(traits if path[0] == "traits" else computed, path[1:])
    value = _dig(traits, path)
    return value if value is not None else _dig(computed, path)


def anniversary(day: dt.date, year: int) -> dt.date:
    """The day's anniversary in `year`; Feb 29 is kept on Feb 28 in other years."""
    if day.month == 2 and day.day == 29:
        try:
            return dt.date(year, 2, 29)
        except ValueError:
            return dt.date(year, 2, 28)
    return dt.date(year, day.month, day.day)


def attribute_day(value: object, timezone: dt.tzinfo) -> dt.date | None:
    """The day a date attribute names for the person: a date ("1990-12-01") as written,
    a time ("2026-03-02T22:30:00Z") on the person's own calendar. None when the value is
    not an ISO date or time."""
    if not isinstance(value, str) or len(value) < 10:
        return None
    text = value.strip()
    if len(text) == 10:
        try:
            return dt.date.fromisoformat(text)
        except ValueError:
            return None
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(timezone).date()


def date_due(
    value: object, today: dt.date, timezone: dt.tzinfo, *, offset_days: int, annual: bool
) -> bool:
    """Whether a date attribute plus offset_days is `today` (each year when annual)."""
    day = attribute_day(value, timezone)
    if day is None:
        return False
    event_day = today - dt.timedelta(days=offset_days)
    if annual:
        return day <= event_day and anniversary(day, event_day.year) == event_day
    return day == event_day
