"""Consent changes carried by a message, per channel and purpose.

Where consent comes from (the `via` of each change):

- identify traits, via "trait:<name as sent>":
    consent / consents      {"email": true, "sms": {"granted": false, "purpose": "..."},
                            "push": {"marketing": true, "transactional": true}}
    <channel>_opt_in, <channel>OptIn, <channel>_consent, <channel>Consent,
    <channel>_subscribed, <channel>Subscribed      booleans for that channel
    accepts_marketing, acceptsMarketing            Shopify: email marketing
    email_marketing_consent, sms_marketing_consent (and camelCase)
                            Shopify: {"state": "subscribed" | "unsubscribed" |
                            "not_subscribed"}; pending/redacted/invalid say nothing
    unsubscribed, unsubscribed_from_emails, <channel>_opt_out, <channel>OptOut
                            true revokes; false says nothing (never having opted out
                            is not an opt-in)
- context.consent.categoryPreferences on any message (Segment Consent Management,
  {"Advertising": true, "Analytics": false}): channel "*", purpose = lower-cased
  category, via "context.consent".
- track events, via "event:<name>" (properties `channel`, a name or a list, and
  `purpose`), see CONSENT_EVENTS.

Channels: email, sms, whatsapp, push, in_app, and "*" for every channel. Purpose is
"marketing" unless the message names another. Booleans may also arrive as "true",
"false", "yes", "no", 1 or 0; anything else is ignored.

Context traits (`context.traits` on track calls) are deliberately not read: browsers
resend cached traits with every event, which would keep re-granting a consent the
customer withdrew elsewhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from shopkeeper.profiles.model import ConsentChange, EventView

CHANNELS = ("email", "sms", "whatsapp", "push", "in_app")
EVERY_CHANNEL = "*"
DEFAULT_PURPOSE = "marketing"
_PURPOSE_LIMIT = 100  # the consents.purpose column

_CHANNEL_NAMES = {
    "email": "email",
    "e-mail": "email",
    "mail": "email",
    "sms": "sms",
    "text": "sms",
    "whatsapp": "whatsapp",
    "whats_app": "whatsapp",
    "push": "push",
    "push_notification": "push",
    "push_notifications": "push",
    "in_app": "in_app",
    "in-app": "in_app",
    "inapp": "in_app",
    "*": EVERY_CHANNEL,
    "all": EVERY_CHANNEL,
}

_TRUE = frozenset({"true", "yes", "1"})
_FALSE = frozenset({"false", "no", "0"})


def _flag_traits() -> dict[str, tuple[str, bool]]:
    """Trait name -> (channel, True when the flag means "opted out")."""
    flags: dict[str, tuple[str, bool]] = {}
    for channel, camel in zip(CHANNELS, ("email", "sms", "whatsapp", "push", "inApp"), strict=True):
        for name in (f"{channel}_opt_in", f"{camel}OptIn", f"{channel}_consent",
                     f"{camel}Consent", f"{channel}_subscribed", f"{camel}Subscribed"):  # fmt: skip
            flags[name] = (channel, False)
        flags[f"{channel}_opt_out"] = (channel, True)
        flags[f"{camel}OptOut"] = (channel, True)
    flags.update(
        accepts_marketing=("email", False),
        acceptsMarketing=("email", False),
        unsubscribed=("email", True),
        unsubscribed_from_emails=("email", True),
    )
    return flags


_FLAG_TRAITS = _flag_traits()

_SHOPIFY_TRAITS = {
    "email_marketing_consent": "email",
    "emailMarketingConsent": "email",
    "sms_marketing_consent": "sms",
    "smsMarketingConsent": "sms",
}
_SHOPIFY_STATES = {"subscribed": True, "unsubscribed": False, "not_subscribed": False}

# Track event -> (granted, channel when the properties name none, channel is fixed).
# Consent Granted names no default channel: granting every channel by accident is worse
# than ignoring the event. Revocations default to every channel for the same reason.
CONSENT_EVENTS: dict[str, tuple[bool, str | None, bool]] = {
    "Subscribed": (True, "email", False),
    "Unsubscribed": (False, "email", False),
    "Consent Granted": (True, None, False),
    "Consent Revoked": (False, EVERY_CHANNEL, False),
    "Consent Withdrawn": (False, EVERY_CHANNEL, False),
    "Email Subscribed": (True, "email", True),
    "Email Unsubscribed": (False, "email", True),
    "Email Marked as Spam": (False, "email", True),
    "SMS Subscribed": (True, "sms", True),
    "SMS Unsubscribed": (False, "sms", True),
    "WhatsApp Subscribed": (True, "whatsapp", True),
    "WhatsApp Unsubscribed": (False, "whatsapp", True),
    "Push Notifications Enabled": (True, "push", True),
    "Push Notifications Disabled": (False, "push", True),
    "Push Notification Unsubscribed": (False, "push", True),
}


def parse_bool(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return True if value == 1 else False if value == 0 else None
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    return None


def channel_of(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    return _CHANNEL_NAMES.get(value.strip().lower().replace(" ", "_"))


def purpose_of(value: object) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip().lower()[:_PURPOSE_LIMIT]


class _Collector:
    """One change per (channel, purpose) and message; a revocation beats a grant, so a
    message that says both never ends up granting."""

    def __init__(self, at_ms: int) -> None:
        self.at_ms = at_ms
        self.changes: dict[tuple[str, str], ConsentChange] = {}

    def add(self, channel: str, purpose: str, granted: bool, via: str) -> None:
        key = (channel, purpose)
        known = self.changes.get(key)
        if known is None or (known.granted and not granted):
            self.changes[key] = ConsentChange(channel, purpose, granted, self.at_ms, via)


def _consent_object(out: _Collector, value: object, via: str) -> None:
    if not isinstance(value, dict):
        return
    for raw_channel, spec in value.items():
        channel = channel_of(raw_channel)
        if channel is None:
            continue
        granted = parse_bool(spec)
        if granted is not None:
            out.add(channel, DEFAULT_PURPOSE, granted, via)
        elif isinstance(spec, dict) and "granted" in spec:
            granted = parse_bool(spec["granted"])
            if granted is not None:
                purpose = purpose_of(spec.get("purpose")) or DEFAULT_PURPOSE
                out.add(channel, purpose, granted, via)
        elif isinstance(spec, dict):
            for raw_purpose, flag in spec.items():
                named, granted = purpose_of(raw_purpose), parse_bool(flag)
                if named is not None and granted is not None:
                    out.add(channel, named, granted, via)


def _from_traits(out: _Collector, traits: dict[str, Any]) -> None:
    for name, value in traits.items():
        if name in ("consent", "consents"):
            _consent_object(out, value, f"trait:{name}")
        elif name in _FLAG_TRAITS:
            channel, means_out = _FLAG_TRAITS[name]
            flag = parse_bool(value)
            if flag is None or (means_out and not flag):
                continue
            out.add(channel, DEFAULT_PURPOSE, not flag if means_out else flag, f"trait:{name}")
        elif name in _SHOPIFY_TRAITS and isinstance(value, dict):
            state = value.get("state", value.get("marketingState"))
            granted = _SHOPIFY_STATES.get(state.lower()) if isinstance(state, str) else None
            if granted is not None:
                out.add(_SHOPIFY_TRAITS[name], DEFAULT_PURPOSE, granted, f"trait:{name}")


def _from_context(out: _Collector, context: dict[str, Any]) -> None:
    consent = context.get("consent")
    if not isinstance(consent, dict):
        return
    preferences = consent.get("categoryPreferences")
    if not isinstance(preferences, dict):
        return
    for category, value in preferences.items():
        purpose, granted = purpose_of(category), parse_bool(value)
        if purpose is not None and granted is not None:
            out.add(EVERY_CHANNEL, purpose, granted, "context.consent")


def _from_event(out: _Collector, name: str, props: dict[str, Any]) -> None:
    granted, default_channel, fixed = CONSENT_EVENTS[name]
    raw = props.get("channel")
    named = raw if isinstance(raw, list) else [raw] if raw is not None else []
    channels = [] if fixed else [c for c in map(channel_of, named) if c is not None]
    if not channels and (fixed or not named or not granted):
        # Fixed-channel events ignore the property; a revocation naming a channel we do
        # not know still revokes its default rather than being dropped.
        channels = [default_channel] if default_channel is not None else []
    purpose = purpose_of(props.get("purpose")) or DEFAULT_PURPOSE
    for channel in channels:
        out.add(channel, purpose, granted, f"event:{name}")


def extract_consents(ev: EventView) -> list[ConsentChange]:
    """The consent changes one message carries, at the message's timestamp."""
    out = _Collector(ev.timestamp_ms)
    if ev.type == "identify" and ev.traits:
        _from_traits(out, ev.traits)
    if ev.context:
        _from_context(out, ev.context)
    if ev.type == "track" and ev.event in CONSENT_EVENTS:
        _from_event(out, ev.event, ev.properties)
    return list(out.changes.values())


K = TypeVar("K")
V = TypeVar("V")


def _field(value: object, name: str) -> Any:
    if isinstance(value, Mapping):
        return value.get(name)
    return getattr(value, name, None)


def _updated_at(value: object) -> int:
    at = _field(value, "updated_at")
    return at if isinstance(at, int) and not isinstance(at, bool) else 0


def merge_consents(a: Mapping[K, V], b: Mapping[K, V]) -> dict[K, V]:
    """Consents of two merged profiles, keyed by (channel, purpose): the newest wins.

    Values are mappings or objects with `updated_at` (ms) and `granted`. On equal times a
    revocation beats a grant (the safe side), else `a` wins. Returns a new dict.
    """
    merged = dict(a)
    for key, theirs in b.items():
        ours = merged.get(key)
        if ours is None:
            merged[key] = theirs
            continue
        ours_at, theirs_at = _updated_at(ours), _updated_at(theirs)
        if theirs_at > ours_at or (
            theirs_at == ours_at
            and _field(ours, "granted") is True
            and _field(theirs, "granted") is False
        ):
            merged[key] = theirs
    return merged
