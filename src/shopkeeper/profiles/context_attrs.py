"""Attributes read from any message's context and source: where, in which language and
on which kind of device the customer shows up, and through which sources."""

from __future__ import annotations

import functools
from typing import Any

from shopkeeper.profiles.model import EventView
from shopkeeper.profiles.values import as_text, set_earliest, set_latest

_CITY_LIMIT = 100
# BCP 47 tags are short; anything longer is not a locale.
_LOCALE_LIMIT = 35
_TIMEZONE_LIMIT = 64
_USER_AGENT_LIMIT = 1000

# context.device.type as the Segment and RudderStack SDKs (and people) fill it in.
_DEVICE_KINDS = {
    "ios": "mobile",
    "android": "mobile",
    "mobile": "mobile",
    "phone": "mobile",
    "smartphone": "mobile",
    "iphone": "mobile",
    "tablet": "tablet",
    "ipad": "tablet",
    "ipados": "tablet",
    "desktop": "desktop",
    "macos": "desktop",
    "mac": "desktop",
    "windows": "desktop",
    "linux": "desktop",
}

# Names GeoIP services and people use that are not in the phonenumbers name tables.
_COUNTRY_ALIASES = {
    "usa": "US",
    "united states of america": "US",
    "uk": "GB",
    "great britain": "GB",
    "england": "GB",
    "czechia": "CZ",
    "north macedonia": "MK",
    "türkiye": "TR",
    "turkiye": "TR",
}


@functools.cache
def _country_names() -> dict[str, str]:
    """Country names in many languages -> alpha-2, from the phonenumbers package.

    Its geodata module is generated data rather than documented API, so any surprise in
    its shape leaves only the aliases above instead of failing the pipeline.
    """
    names: dict[str, str] = {}
    try:
        from phonenumbers.geodata.locale import LOCALE_DATA

        for region, by_language in LOCALE_DATA.items():
            if len(region) != 2:
                continue
            # English first, so a name shared across languages resolves the English way.
            for language in ["en", *sorted(by_language)]:
                name = by_language.get(language)
                for _ in range(5):  # "*xx" means "same as language xx"
                    if not isinstance(name, str) or not name.startswith("*"):
                        break
                    name = by_language.get(name[1:])
                if isinstance(name, str) and name:
                    names.setdefault(name.casefold(), region.upper())
    except Exception:  # see the docstring: degrade, never fail
        names = {}
    names.update(_COUNTRY_ALIASES)
    return names


@functools.lru_cache(maxsize=1024)
def country_code(value: str) -> str | None:
    """ISO 3166 alpha-2 from a code in any case or a country name; None if unknown."""
    text = value.strip()
    if len(text) == 2 and text.isascii() and text.isalpha():
        return text.upper()
    if not text or len(text) > 60:
        return None
    return _country_names().get(text.casefold())


def locale_region(locale: str) -> str | None:
    """The region of a locale tag: nb-NO -> NO, zh-Hant-TW -> TW, es-419 -> None."""
    for part in locale.replace("_", "-").split("-")[1:]:
        if len(part) == 2 and part.isascii() and part.isalpha():
            return part.upper()
    return None


@functools.lru_cache(maxsize=512)
def classify_user_agent(user_agent: str) -> str:
    """mobile, tablet or desktop from a User-Agent string.

    Android without "Mobile" is a tablet: Google asks phone browsers to send "Mobile"
    and tablet browsers not to. iPads on iPadOS 13+ claim to be Macs and stay desktop.
    """
    if "iPad" in user_agent or "Tablet" in user_agent or "tablet" in user_agent:
        return "tablet"
    if "Mobi" in user_agent or "iPhone" in user_agent or "iPod" in user_agent:
        return "mobile"
    if "Android" in user_agent:
        return "tablet"
    return "desktop"


def device_type(context: dict[str, Any]) -> str | None:
    device = context.get("device")
    if isinstance(device, dict):
        kind = device.get("type")
        if isinstance(kind, str):
            mapped = _DEVICE_KINDS.get(kind.strip().lower())
            if mapped == "mobile" and kind.strip().lower() == "ios":
                model = device.get("model")
                if isinstance(model, str) and model.startswith("iPad"):
                    return "tablet"
            if mapped is not None:
                return mapped
    hints = context.get("userAgentData")
    if isinstance(hints, dict) and hints.get("mobile") is True:
        return "mobile"
    user_agent = context.get("userAgent")
    if isinstance(user_agent, str) and user_agent.strip():
        return classify_user_agent(user_agent[:_USER_AGENT_LIMIT])
    return None


def _add_sorted(c: dict[str, Any], key: str, value: str) -> None:
    values: list[str] = c.setdefault(key, [])
    if value not in values:
        values.append(value)
        values.sort()


def apply_context(c: dict[str, Any], ev: EventView) -> None:
    at = ev.timestamp
    context = ev.context
    if context:
        location = context.get("location")
        geo_changed = False
        if isinstance(location, dict):
            raw_country = location.get("country")
            if isinstance(raw_country, str):
                code = country_code(raw_country)
                if code is not None:
                    geo_changed = set_latest(c, "_geo_country", code, at)
            city = as_text(location.get("city"), _CITY_LIMIT)
            if city is not None:
                set_latest(c, "city", city, at)
        locale = as_text(context.get("locale"), _LOCALE_LIMIT)
        locale_changed = locale is not None and set_latest(c, "locale", locale, at)
        if geo_changed or locale_changed:
            # Where someone is (GeoIP) beats the region of the language they read.
            known = c.get("locale")
            country = c.get("_geo_country") or (locale_region(known) if known else None)
            if country is not None:
                c["country"] = country
        timezone = as_text(context.get("timezone"), _TIMEZONE_LIMIT)
        if timezone is not None:
            set_latest(c, "timezone", timezone, at)
        device = device_type(context)
        if device is not None:
            _add_sorted(c, "device_types", device)
            set_latest(c, "last_device_type", device, at)
    if ev.source_name or ev.source_kind:
        name, kind = ev.source_name, ev.source_kind
        if at < c.get("_at", {}).get("first_source", "~"):
            set_earliest(c, "first_source", {"name": name, "kind": kind}, at)
        last = c.get("last_source")
        if last is None or last["name"] != name or last["kind"] != kind:
            last = {"name": name, "kind": kind}
        set_latest(c, "last_source", last, at)
        if kind:
            _add_sorted(c, "source_kinds", kind)
