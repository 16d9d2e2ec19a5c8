"""Plain values the profile reducers work on. No database, no HTTP, no clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class EventView:
    """One message from the event log, as the reducers see it.

    `timestamp` is the fixed-width ISO-8601 UTC form of `timestamp_ms` (see timeutil).
    `properties` holds the track/page/screen properties; `traits` the identify/group
    traits; both are empty dicts when absent.
    """

    type: str  # identify, track, page, screen, group, alias
    event: str | None  # track event name, or page/screen name
    timestamp_ms: int
    timestamp: str
    message_id: str
    source_name: str = ""
    source_kind: str = ""
    properties: dict[str, Any] = field(default_factory=dict)
    traits: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ReducerConfig:
    shop_currency: str = "USD"
    # Units of the shop currency per unit of each other currency.
    exchange_rates: dict[str, float] = field(default_factory=dict)
    session_timeout_ms: int = 30 * 60 * 1000
    # How many recent viewed products / categories / searches a profile keeps.
    recent_limit: int = 50
    # How many orders a profile keeps by id (to apply Order Updated / Cancelled / Refunded).
    orders_limit: int = 500


@dataclass(frozen=True, slots=True)
class ConsentChange:
    channel: str  # email, sms, whatsapp, push, in_app, or "*" for all channels
    purpose: str  # "marketing" unless the message names another purpose
    granted: bool
    at_ms: int
    via: str  # how it was given: "trait:<name>", "context.consent", "event:<name>"
