"""Money, numbers and dates in the reader's language, for message templates (Babel).

The filters take whatever the data holds (numbers, numeric strings, epoch milliseconds,
ISO strings, datetimes) and print nothing for what is missing or unreadable: a product
without a price prints no price rather than failing a whole send. Locale, currency and
time zone come from the render in progress (budget.current()).
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Mapping
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_datetime, format_time
from babel.numbers import format_currency, format_decimal

from shopkeeper.messaging import budget

FALLBACK_LOCALE = "en"
# Amounts beyond this are typos, and "1e999999" would print a million digits.
_MAX_AMOUNT = Decimal(10) ** 15
_MAX_DIGITS = 10
# Years Python's datetime can hold, in epoch milliseconds (with a margin).
_MAX_EPOCH_MS = 253_402_300_799_000
# Norwegian: Bokmål is what "no" means in practice, and either reads the other.
_ALIASES = {"no": "nb", "nb": "no"}


def normalize_tag(tag: object) -> str:
    """A locale tag compared loosely: "nb_NO " -> "nb-no"; anything else -> ""."""
    if not isinstance(tag, str):
        return ""
    return tag.strip().replace("_", "-").lower()


def locale_chain(tag: object) -> list[str]:
    """The tag and its shorter forms, most specific first: zh-Hant-TW -> zh-hant-tw,
    zh-hant, zh; nb-NO -> nb-no, nb, no."""
    parts = [part for part in normalize_tag(tag).split("-") if part]
    chain = ["-".join(parts[:end]) for end in range(len(parts), 0, -1)]
    alias = _ALIASES.get(parts[0]) if parts else None
    if alias is not None:
        chain.append(alias)
    return chain


@functools.lru_cache(maxsize=256)
def babel_locale(tag: str) -> Locale:
    """The closest locale Babel knows (de-XX -> de), else English."""
    for candidate in locale_chain(tag):
        try:
            return Locale.parse(candidate, sep="-")
        except (UnknownLocaleError, ValueError, TypeError):
            continue
    return Locale.parse(FALLBACK_LOCALE)


@functools.lru_cache(maxsize=256)
def zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        return UTC


def is_zone(name: object) -> bool:
    if not isinstance(name, str) or not name.strip():
        return False
    try:
        ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        return False
    return True


def to_decimal(value: object) -> Decimal | None:
    """A finite number below a quadrillion from a number or numeric string; None for
    anything else."""
    number = _decimal(value)
    if number is None or abs(number) >= _MAX_AMOUNT:
        return None
    return number


def _decimal(value: object) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value)) if math.isfinite(value) else None
    if isinstance(value, str):
        text = value.strip()
        if not text or len(text) > 40:
            return None
        try:
            number = Decimal(text)
        except InvalidOperation:
            return None
        return number if number.is_finite() else None
    return None


def to_moment(value: object) -> datetime | date | None:
    """A datetime (aware) or a date from epoch milliseconds, an ISO string, a datetime
    (naive means UTC) or a date; None for anything else."""
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            value = int(text)
        else:
            try:
                if len(text) == 10:
                    return date.fromisoformat(text)
                return to_moment(datetime.fromisoformat(text))
            except ValueError:
                return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value) or abs(value) > _MAX_EPOCH_MS:
            return None
        return datetime.fromtimestamp(value / 1000, UTC)
    return None


def _currency_code(value: object) -> str | None:
    if isinstance(value, str) and len(value.strip()) == 3 and value.strip().isalpha():
        return value.strip().upper()
    return None


def _digits(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return max(0, min(value, _MAX_DIGITS))
    return None


# -- filters -----------------------------------------------------------------------------


def money(amount: object, currency: object = None) -> str:
    number = to_decimal(amount)
    if number is None:
        return ""
    state = budget.current()
    code = _currency_code(currency) or _currency_code(state.currency) or "USD"
    return _money(number, code, state.locale_tag)


@functools.lru_cache(maxsize=4096)
def _money(amount: Decimal, code: str, tag: str) -> str:
    # Babel takes tens of microseconds per amount; a broadcast prints the same prices
    # in the same few locales over and over.
    return str(format_currency(amount, code, locale=babel_locale(tag)))


def number(value: object, digits: object = None) -> str:
    amount = to_decimal(value)
    if amount is None:
        return ""
    locale = babel_locale(budget.current().locale_tag)
    places = _digits(digits)
    if places is None:
        return str(format_decimal(amount, locale=locale))
    pattern = copy.copy(locale.decimal_formats[None])
    pattern.frac_prec = (places, places)
    return str(pattern.apply(amount, locale))


def percent(value: object, digits: object = 0) -> str:
    """0.155 -> "16 %" (the locale's way); digits=1 -> "15,5 %"."""
    amount = to_decimal(value)
    if amount is None:
        return ""
    locale = babel_locale(budget.current().locale_tag)
    places = _digits(digits) or 0
    pattern = copy.copy(locale.percent_formats[None])
    pattern.frac_prec = (places, places)
    return str(pattern.apply(amount, locale))


def _local(value: object) -> tuple[datetime | date | None, tzinfo]:
    return to_moment(value), zone(budget.current().timezone)


def format_date_filter(value: object, format: str = "medium") -> str:
    moment, tz = _local(value)
    if moment is None:
        return ""
    day = moment.astimezone(tz).date() if isinstance(moment, datetime) else moment
    return str(format_date(day, format, locale=babel_locale(budget.current().locale_tag)))


def format_datetime_filter(value: object, format: str = "medium") -> str:
    moment, tz = _local(value)
    if moment is None:
        return ""
    if not isinstance(moment, datetime):
        # A bare date is that day's start where the reader is.
        moment = datetime(moment.year, moment.month, moment.day, tzinfo=tz)
    locale = babel_locale(budget.current().locale_tag)
    return str(format_datetime(moment, format, tzinfo=tz, locale=locale))


def format_time_filter(value: object, format: str = "short") -> str:
    moment, tz = _local(value)
    if not isinstance(moment, datetime):
        return ""
    locale = babel_locale(budget.current().locale_tag)
    return str(format_time(moment, format, tzinfo=tz, locale=locale))


def pick_text(options: object, fallback: object = "") -> Any:
    """The template global `t`: `t({"en": "Hi", "nb": "Hei"})` picks by the reader's
    locale (nb-NO -> nb), then the "" key, then `fallback`."""
    if not isinstance(options, Mapping):
        return fallback
    by_tag = {normalize_tag(key): value for key, value in options.items()}
    for tag in [*locale_chain(budget.current().locale_tag), ""]:
        if tag in by_tag:
            return by_tag[tag]
    return fallback


FILTERS = {
    "money": money,
    "number": number,
    "percent": percent,
    "date": format_date_filter,
    "datetime": format_datetime_filter,
    "time": format_time_filter,
}
