"""Message templates in the database: one per key and channel, with a variant per locale
("" for the default variant). Saving validates everything a marketer can get wrong (the
key, the channel, the locale, the parts each channel needs, Jinja syntax with the line)
and raises TemplateInvalid naming the field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from shopkeeper.catalog.products import ProductError, locale_key
from shopkeeper.messaging import templates
from shopkeeper.messaging.channels import base
from shopkeeper.storage import tables as t
from shopkeeper.timeutil import ms_to_iso

KEY_PATTERN = re.compile(r"^[a-z0-9_\-]{1,100}$")
_PART_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
MAX_PARTS = 20
# Characters per part: an email's HTML with inline styles fits many times over.
MAX_PART_CHARS = 256 * 1024
LOCALE_LIMIT = 40

# Each channel's parts: every group must have at least one non-empty part.
REQUIRED_PARTS: dict[str, tuple[tuple[str, ...], ...]] = {
    base.EMAIL: (("subject",), ("text", "html")),
    base.SMS: (("body",),),
    base.WHATSAPP: (("body",),),
    base.WEB_PUSH: (("title",), ("body",)),
    base.MOBILE_PUSH: (("title",), ("body",)),
    base.IN_APP: (("title", "body"),),
    base.ONSITE: (("title", "body"),),
    base.WEBHOOK: (("payload",),),
}

_mt = t.message_templates


class TemplateInvalid(ValueError):
    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


def _check_key(key: object) -> str:
    if not isinstance(key, str) or not KEY_PATTERN.match(key):
        raise TemplateInvalid(
            "a template key is 1 to 100 lowercase letters, digits, '_' or '-'", "key"
        )
    return key


def _check_channel(channel: object) -> str:
    if channel not in base.CHANNELS:
        raise TemplateInvalid(
            f"unknown channel {channel!r}; channels are {', '.join(base.CHANNELS)}", "channel"
        )
    return str(channel)


def normalize_locale(locale: object) -> str:
    """ "" (the default variant) or a tidy BCP 47 tag: "nb_no" -> "nb-NO"."""
    if locale is None or (isinstance(locale, str) and not locale.strip()):
        return ""
    if isinstance(locale, str) and len(locale.strip()) <= LOCALE_LIMIT:
        try:
            return locale_key(locale)
        except ProductError:
            pass
    raise TemplateInvalid(
        f"{locale!r} is not a locale; use a tag such as en, nb-NO or zh-Hant-TW, "
        "or nothing for the default variant",
        "locale",
    )


def _check_parts(channel: str, parts: object) -> dict[str, str]:
    if not isinstance(parts, Mapping):
        raise TemplateInvalid("parts must be an object of part name to template", "parts")
    if len(parts) > MAX_PARTS:
        raise TemplateInvalid(f"a template has at most {MAX_PARTS} parts", "parts")
    clean: dict[str, str] = {}
    for name, source in parts.items():
        if not isinstance(name, str) or not _PART_NAME.match(name):
            raise TemplateInvalid(
                f"{name!r} is not a part name: lowercase letters, digits and '_'", "parts"
            )
        if not isinstance(source, str):
            raise TemplateInvalid(f"{name} must be text", f"parts.{name}")
        if len(source) > MAX_PART_CHARS:
            raise TemplateInvalid(
                f"{name} is {len(source):,} characters long; at most {MAX_PART_CHARS:,}",
                f"parts.{name}",
            )
        if source.strip():
            clean[name] = source
    for group in REQUIRED_PARTS[channel]:
        if not any(name in clean for name in group):
            wanted = " or ".join(group)
            raise TemplateInvalid(f"a {channel} template needs {wanted}", f"parts.{group[0]}")
    problems = templates.check(clean)
    if problems:
        first = problems[0]
        where = f"{first.part}, line {first.line}" if first.line is not None else first.part
        raise TemplateInvalid(f"{where}: {first.message}", f"parts.{first.part}")
    return clean


def _row_out(row: Any) -> dict[str, Any]:
    return {
        "key": row.key,
        "channel": row.channel,
        "locale": row.locale,
        "parts": dict(row.parts or {}),
        "updated_at": ms_to_iso(row.updated_at),
    }


def save_template(
    conn: Connection,
    key: str,
    channel: str,
    locale: str | None,
    parts: Mapping[str, str],
    now_ms: int,
) -> dict[str, Any]:
    """Create or replace one variant. Empty parts are dropped. Returns the stored variant.
    Raises TemplateInvalid."""
    key = _check_key(key)
    channel = _check_channel(channel)
    tag = normalize_locale(locale)
    clean = _check_parts(channel, parts)
    values = {"key": key, "channel": channel, "locale": tag, "parts": clean, "updated_at": now_ms}
    insert = sqlite.insert if conn.dialect.name == "sqlite" else postgresql.insert
    statement = insert(_mt).values(values)
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=["key", "channel", "locale"],
            set_={"parts": statement.excluded.parts, "updated_at": statement.excluded.updated_at},
        )
    )
    return {**values, "updated_at": ms_to_iso(now_ms)}


def get_variants(conn: Connection, key: str, channel: str) -> dict[str, dict[str, str]]:
    """{locale: parts} of one template ("" is the default variant); empty when none."""
    rows = conn.execute(
        sa.select(_mt.c.locale, _mt.c.parts)
        .where(_mt.c.key == key, _mt.c.channel == channel)
        .order_by(_mt.c.locale)
    )
    return {row.locale: dict(row.parts or {}) for row in rows}


def get_variant(conn: Connection, key: str, channel: str, locale: str) -> dict[str, Any] | None:
    row = conn.execute(
        sa.select(_mt).where(
            _mt.c.key == key, _mt.c.channel == channel, _mt.c.locale == normalize_locale(locale)
        )
    ).first()
    return _row_out(row) if row is not None else None


def list_templates(conn: Connection) -> list[dict[str, Any]]:
    """Every template: {key, channel, locales (sorted, "" first), updated_at (newest)}."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    rows = conn.execute(
        sa.select(_mt.c.key, _mt.c.channel, _mt.c.locale, _mt.c.updated_at).order_by(
            _mt.c.key, _mt.c.channel, _mt.c.locale
        )
    )
    for row in rows:
        entry = found.setdefault(
            (row.key, row.channel),
            {"key": row.key, "channel": row.channel, "locales": [], "updated_at": 0},
        )
        entry["locales"].append(row.locale)
        entry["updated_at"] = max(entry["updated_at"], int(row.updated_at))
    return [{**entry, "updated_at": ms_to_iso(entry["updated_at"])} for entry in found.values()]


def delete_template(conn: Connection, key: str, channel: str, locale: str | None = None) -> int:
    """Delete one variant (locale given; "" is the default variant) or, with locale
    None, the whole template. Returns how many variants went."""
    query = _mt.delete().where(_mt.c.key == key, _mt.c.channel == channel)
    if locale is not None:
        query = query.where(_mt.c.locale == normalize_locale(locale))
    return int(conn.execute(query).rowcount or 0)
