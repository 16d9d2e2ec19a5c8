"""Consent changes read from identify traits, the consent context and consent events."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from shopkeeper.profiles.consents import (
    CONSENT_EVENTS,
    extract_consents,
    merge_consents,
    parse_bool,
)
from shopkeeper.profiles.model import ConsentChange, EventView
from shopkeeper.timeutil import ms_to_iso

AT = 1_772_000_000_000


def ev(
    type: str = "identify",
    event: str | None = None,
    *,
    traits: dict[str, Any] | None = None,
    props: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
) -> EventView:
    return EventView(
        type=type,
        event=event,
        timestamp_ms=AT,
        timestamp=ms_to_iso(AT),
        message_id="m1",
        properties=props or {},
        traits=traits or {},
        context=context or {},
    )


def changes(e: EventView) -> set[tuple[str, str, bool, str]]:
    found = extract_consents(e)
    assert all(change.at_ms == AT for change in found)
    return {(c.channel, c.purpose, c.granted, c.via) for c in found}


def test_consent_object_in_traits() -> None:
    traits = {
        "consent": {
            "email": True,
            "SMS": {"granted": "no", "purpose": "Transactional"},
            "push": {"marketing": "yes", "reminders": 0, "junk": "maybe"},
            "in-app": "1",
            "fax": True,
            "whatsapp": "maybe",
        }
    }
    assert changes(ev(traits=traits)) == {
        ("email", "marketing", True, "trait:consent"),
        ("sms", "transactional", False, "trait:consent"),
        ("push", "marketing", True, "trait:consent"),
        ("push", "reminders", False, "trait:consent"),
        ("in_app", "marketing", True, "trait:consent"),
    }


def test_consents_spelling_and_every_channel() -> None:
    assert changes(ev(traits={"consents": {"all": False}})) == {
        ("*", "marketing", False, "trait:consents")
    }


@pytest.mark.parametrize(
    ("trait", "value", "expected"),
    [
        ("email_opt_in", True, ("email", True)),
        ("emailOptIn", "false", ("email", False)),
        ("sms_consent", "yes", ("sms", True)),
        ("smsConsent", 0, ("sms", False)),
        ("whatsapp_subscribed", 1, ("whatsapp", True)),
        ("pushSubscribed", "No", ("push", False)),
        ("in_app_opt_in", True, ("in_app", True)),
        ("inAppOptIn", False, ("in_app", False)),
        ("accepts_marketing", True, ("email", True)),
        ("acceptsMarketing", "false", ("email", False)),
        ("unsubscribed", True, ("email", False)),
        ("unsubscribed_from_emails", "true", ("email", False)),
        ("sms_opt_out", True, ("sms", False)),
    ],
)
def test_flag_traits(trait: str, value: Any, expected: tuple[str, bool]) -> None:
    channel, granted = expected
    assert changes(ev(traits={trait: value})) == {(channel, "marketing", granted, f"trait:{trait}")}


@pytest.mark.parametrize(
    "traits",
    [
        {"unsubscribed": False},  # never having opted out is not an opt-in
        {"email_opt_out": "false"},
        {"email_opt_in": "maybe"},
        {"email_opt_in": 2},
        {"email_opt_in": None},
        {"email_opt_in": []},
        {"sms_consent": {"granted": True}},
        {"consent": "yes"},
        {"consent": {"email": {"granted": "perhaps"}}},
        {"email_marketing_consent": {"state": "pending"}},
        {"email_marketing_consent": "subscribed"},
        {"newsletter": True},
    ],
)
def test_values_that_are_not_booleans_are_ignored(traits: dict[str, Any]) -> None:
    assert extract_consents(ev(traits=traits)) == []


def test_shopify_marketing_consent_objects() -> None:
    traits = {
        "email_marketing_consent": {"state": "subscribed", "opt_in_level": "single_opt_in"},
        "smsMarketingConsent": {"marketingState": "NOT_SUBSCRIBED"},
    }
    assert changes(ev(traits=traits)) == {
        ("email", "marketing", True, "trait:email_marketing_consent"),
        ("sms", "marketing", False, "trait:smsMarketingConsent"),
    }


def test_traits_count_only_on_identify() -> None:
    assert extract_consents(ev("group", traits={"email_opt_in": True})) == []
    track = ev("track", "Signed Up", props={"email_opt_in": True},
               context={"traits": {"email_opt_in": True}})  # fmt: skip
    assert extract_consents(track) == []


def test_a_revocation_beats_a_grant_in_the_same_message() -> None:
    found = extract_consents(ev(traits={"email_opt_in": True, "unsubscribed": True}))
    assert found == [ConsentChange("email", "marketing", False, AT, "trait:unsubscribed")]
    found = extract_consents(ev(traits={"unsubscribed": True, "email_opt_in": True}))
    assert found == [ConsentChange("email", "marketing", False, AT, "trait:unsubscribed")]


@pytest.mark.parametrize("kind", ["track", "page", "identify", "screen"])
def test_context_consent_on_any_message(kind: str) -> None:
    context = {
        "consent": {
            "categoryPreferences": {
                "Advertising": True,
                "Analytics": "false",
                " C0004 ": 1,
                "Broken": "?",
            }
        }
    }
    assert changes(ev(kind, "x", context=context)) == {
        ("*", "advertising", True, "context.consent"),
        ("*", "analytics", False, "context.consent"),
        ("*", "c0004", True, "context.consent"),
    }


@pytest.mark.parametrize("context", [{"consent": True}, {"consent": {"categoryPreferences": []}}])
def test_malformed_consent_context_is_ignored(context: dict[str, Any]) -> None:
    assert extract_consents(ev("track", "x", context=context)) == []


@pytest.mark.parametrize(
    ("event", "props", "expected"),
    [
        ("Unsubscribed", {}, {("email", "marketing", False)}),
        ("Subscribed", {"channel": "SMS"}, {("sms", "marketing", True)}),
        ("Subscribed", {"channel": "postal"}, set()),  # an unknown channel grants nothing
        ("Unsubscribed", {"channel": "postal"}, {("email", "marketing", False)}),
        ("Consent Granted", {}, set()),  # a grant must name its channel
        ("Consent Granted", {"channel": ["push", "in_app", "bogus"], "purpose": "Alerts"},
         {("push", "alerts", True), ("in_app", "alerts", True)}),
        ("Consent Revoked", {}, {("*", "marketing", False)}),
        ("Consent Withdrawn", {"channel": "whatsapp"}, {("whatsapp", "marketing", False)}),
        ("Email Unsubscribed", {"channel": "sms"}, {("email", "marketing", False)}),
        ("Email Marked as Spam", {}, {("email", "marketing", False)}),
        ("SMS Unsubscribed", {"purpose": 5}, {("sms", "marketing", False)}),
        ("SMS Subscribed", {}, {("sms", "marketing", True)}),
        ("Push Notification Unsubscribed", {}, {("push", "marketing", False)}),
        ("Order Completed", {"channel": "email"}, set()),
    ],
)  # fmt: skip
def test_consent_events(event: str, props: dict[str, Any], expected: set[Any]) -> None:
    found = changes(ev("track", event, props=props))
    assert {(c, p, g) for c, p, g, _ in found} == expected
    assert {via for *_, via in found} <= {f"event:{event}"}


def test_every_consent_event_yields_a_change_with_a_channel() -> None:
    for event in CONSENT_EVENTS:
        found = extract_consents(ev("track", event, props={"channel": "email"}))
        assert len(found) == 1, event
        assert found[0].granted == CONSENT_EVENTS[event][0]


@pytest.mark.parametrize(
    ("value", "parsed"),
    [(True, True), (False, False), ("TRUE", True), (" no ", False), ("Yes", True),
     (1, True), (0, False), (1.0, True), ("0", False), (2, None), ("on", None), (None, None),
     ([], None), (float("nan"), None)],
)  # fmt: skip
def test_parse_bool(value: Any, parsed: bool | None) -> None:
    assert parse_bool(value) is parsed


def test_merge_consents_newest_wins() -> None:
    a = {
        ("email", "marketing"): {"granted": True, "updated_at": 200},
        ("sms", "marketing"): {"granted": True, "updated_at": 100},
    }
    b = {
        ("email", "marketing"): {"granted": False, "updated_at": 100},
        ("sms", "marketing"): {"granted": False, "updated_at": 300},
        ("push", "marketing"): {"granted": True, "updated_at": 50},
    }
    merged = merge_consents(a, b)
    assert merged == {
        ("email", "marketing"): {"granted": True, "updated_at": 200},
        ("sms", "marketing"): {"granted": False, "updated_at": 300},
        ("push", "marketing"): {"granted": True, "updated_at": 50},
    }
    assert len(a) == 2  # inputs untouched


def test_merge_consents_ties() -> None:
    key = ("email", "marketing")
    grant = {"granted": True, "updated_at": 100, "via": "a"}
    revoke = {"granted": False, "updated_at": 100, "via": "b"}
    assert merge_consents({key: grant}, {key: revoke})[key] is revoke
    assert merge_consents({key: revoke}, {key: grant})[key] is revoke
    other_grant = {"granted": True, "updated_at": 100, "via": "b"}
    assert merge_consents({key: grant}, {key: other_grant})[key] is grant


@dataclass
class Stored:
    granted: bool
    updated_at: int


def test_merge_consents_reads_objects_too() -> None:
    key = ("sms", "marketing")
    old, new = Stored(True, 1), Stored(False, 2)
    assert merge_consents({key: old}, {key: new}) == {key: new}
    assert merge_consents({key: new}, {key: old}) == {key: new}
