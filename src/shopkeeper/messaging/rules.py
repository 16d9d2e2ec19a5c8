"""The shop's sending rules as a marketer sets them: frequency caps and quiet hours.

The server's settings (SHOPKEEPER_CAP_*, SHOPKEEPER_QUIET_HOURS_*) are the defaults; what
is saved from the UI or the API (`meta` key `messaging.rules`, JSON) overrides them until
reset. Delivery reads the rules once per batch, so a change applies to the next batch in
every process without a restart.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shopkeeper.config import Settings
from shopkeeper.messaging.policy import Caps
from shopkeeper.storage import tables as t
from shopkeeper.storage.db import Database

META_KEY = "messaging.rules"
CAP_FIELDS = ("cap_per_channel_day", "cap_per_channel_week", "cap_all_day", "cap_all_week")
MAX_CAP = 1000
ACTIONS = ("defer", "skip")


class RulesInvalid(ValueError):
    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Rules:
    cap_per_channel_day: int
    cap_per_channel_week: int
    cap_all_day: int
    cap_all_week: int
    quiet_hours_start: int
    quiet_hours_end: int
    quiet_hours_action: str
    # Whether these come from the UI/API (True) or the server's settings.
    saved: bool = False

    @property
    def caps(self) -> Caps:
        return Caps(
            self.cap_per_channel_day,
            self.cap_per_channel_week,
            self.cap_all_day,
            self.cap_all_week,
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def defaults(settings: Settings) -> Rules:
    return Rules(
        settings.cap_per_channel_day,
        settings.cap_per_channel_week,
        settings.cap_all_day,
        settings.cap_all_week,
        settings.quiet_hours_start,
        settings.quiet_hours_end,
        settings.quiet_hours_action,
    )


def load(conn: Connection, settings: Settings) -> Rules:
    """The rules in force: the saved ones, else the server's settings. A saved value
    that no longer reads (edited by hand) falls back to the setting for that field."""
    base = defaults(settings)
    raw = conn.execute(sa.select(t.meta.c.value).where(t.meta.c.key == META_KEY)).scalar()
    if raw is None:
        return base
    try:
        saved = json.loads(raw)
        return validate(saved if isinstance(saved, dict) else {}, base, saved=True)
    except (ValueError, RulesInvalid):
        return base


def validate(values: Mapping[str, Any], base: Rules, *, saved: bool = True) -> Rules:
    """`base` with the given fields changed; RulesInvalid names the first bad field."""
    merged = base.as_dict()
    for name in CAP_FIELDS:
        if name in values:
            merged[name] = _whole(values[name], name, 0, MAX_CAP)
    for name in ("quiet_hours_start", "quiet_hours_end"):
        if name in values:
            merged[name] = _whole(values[name], name, 0, 23)
    if "quiet_hours_action" in values:
        action = values["quiet_hours_action"]
        if action not in ACTIONS:
            raise RulesInvalid("Say defer or skip.", "quiet_hours_action")
        merged["quiet_hours_action"] = action
    unknown = sorted(set(values) - set(CAP_FIELDS) - {
        "quiet_hours_start", "quiet_hours_end", "quiet_hours_action", "saved"
    })  # fmt: skip
    if unknown:
        raise RulesInvalid(f"There is no rule {unknown[0]!r}.", unknown[0])
    merged["saved"] = saved
    return Rules(**merged)


def _whole(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise RulesInvalid(f"Give a whole number from {low} to {high}.", name)
    return value


def save(conn: Connection, db: Database, rules: Rules) -> None:
    values = {k: v for k, v in rules.as_dict().items() if k != "saved"}
    conn.execute(
        db.upsert(t.meta, ["key"], ["value"]).values(key=META_KEY, value=json.dumps(values))
    )


def reset(conn: Connection) -> None:
    """Back to the server's settings."""
    conn.execute(t.meta.delete().where(t.meta.c.key == META_KEY))
