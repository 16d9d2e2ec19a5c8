"""The pure rules of delivery: quiet hours, frequency caps, channel choice and
send-time optimisation."""

from __future__ import annotations

import pytest

from shopkeeper.messaging.policy import Caps, cap_reason, quiet_until
from shopkeeper.messaging.reach import PushAddress, Reach, choose_channel, consented
from shopkeeper.messaging.sendtime import best_hour, next_at_hour
from shopkeeper.segments.audiences.fields import ProfileData
from shopkeeper.timeutil import parse_iso_ms

UTC_NOON = parse_iso_ms("2026-11-23T12:00:00Z")


@pytest.mark.parametrize(
    ("at", "zone", "until"),
    [
        # 21:30 in Oslo (UTC+1 in November): quiet until 08:00 there, 07:00 UTC.
        ("2026-11-23T20:30:00Z", "Europe/Oslo", "2026-11-24T07:00:00Z"),
        # 02:00 in Oslo: the same night's end.
        ("2026-11-24T01:00:00Z", "Europe/Oslo", "2026-11-24T07:00:00Z"),
        # 13:00 in Oslo: not quiet.
        ("2026-11-23T12:00:00Z", "Europe/Oslo", None),
        # 21:00 exactly starts the quiet hours; 08:00 exactly ends them.
        ("2026-11-23T21:00:00Z", "UTC", "2026-11-24T08:00:00Z"),
        ("2026-11-24T08:00:00Z", "UTC", None),
        # 04:00 UTC is 20:00 the day before in Los Angeles: not quiet yet.
        ("2026-11-24T04:00:00Z", "America/Los_Angeles", None),
        # An unknown zone counts as UTC.
        ("2026-11-23T23:00:00Z", "Nowhere/Atlantis", "2026-11-24T08:00:00Z"),
    ],
)
def test_quiet_hours_in_the_persons_time_zone(at: str, zone: str, until: str | None) -> None:
    expected = parse_iso_ms(until) if until else None
    assert quiet_until(parse_iso_ms(at), zone, 21, 8) == expected


def test_daytime_quiet_hours_and_none() -> None:
    # 12 to 14 (a lunch break) does not wrap midnight.
    assert quiet_until(UTC_NOON, "UTC", 12, 14) == parse_iso_ms("2026-11-23T14:00:00Z")
    assert quiet_until(UTC_NOON, "UTC", 13, 14) is None
    assert quiet_until(UTC_NOON, "UTC", 5, 5) is None


def test_caps_name_the_one_that_is_reached() -> None:
    caps = Caps(per_channel_day=2, per_channel_week=5, all_day=3, all_week=8)
    assert cap_reason("email", {"email": 1, "*": 1}, {"email": 1, "*": 1}, caps) is None
    assert cap_reason("email", {"email": 2, "*": 2}, {"email": 2, "*": 2}, caps) == (
        "frequency cap: 2 email messages today (limit 2)"
    )
    assert cap_reason("sms", {"email": 2, "sms": 1, "*": 3}, {"*": 3}, caps) == (
        "frequency cap: 3 messages today (limit 3)"
    )
    assert cap_reason("web_push", {"*": 0}, {"web_push": 5, "*": 5}, caps) == (
        "frequency cap: 5 web push messages in 7 days (limit 5)"
    )
    assert cap_reason("email", {"*": 0}, {"*": 0}, caps, journey_day=1) is None
    journey = Caps(journey_day=1)
    assert cap_reason("email", {}, {}, journey, journey_day=1) == (
        "frequency cap: 1 messages of this journey today (limit 1)"
    )
    assert cap_reason("email", {"email": 99, "*": 99}, {"*": 99}, Caps()) is None


def reach(
    *,
    email: bool = True,
    phone: bool = False,
    push: bool = False,
    consents: dict[tuple[str, str], bool] | None = None,
    traits: dict[str, object] | None = None,
    engagement: dict[str, tuple[int, int]] | None = None,
) -> Reach:
    identities = {}
    if email:
        identities["email"] = "ana@example.com"
    if phone:
        identities["phone"] = "+4791234567"
    return Reach(
        ProfileData(1, traits=traits or {}, identities=identities),
        consents or {},
        [PushAddress("mobile", "token-1")] if push else [],
        engagement or {},
    )


def choose(r: Reach, channel: str = "best", fallback: tuple[str, ...] = (), **kw: bool):  # type: ignore[no-untyped-def]
    return choose_channel(
        r, channel, fallback, transactional=kw.get("transactional", False), default_region="NO"
    )


def test_consent_is_explicit_and_falls_back_to_every_channel() -> None:
    assert not consented(reach(), "email")
    assert consented(reach(consents={("*", "marketing"): True}), "email")
    assert not consented(
        reach(consents={("*", "marketing"): True, ("email", "marketing"): False}), "email"
    )
    assert consented(reach(consents={("push", "marketing"): True}), "mobile_push")
    assert consented(reach(), "in_app")


def test_a_named_channel_then_its_fallbacks() -> None:
    r = reach(phone=True, consents={("sms", "marketing"): True})
    assert choose(r, "email", ("sms",)) == ("sms", "")
    channel, reason = choose(r, "email")
    assert channel is None
    assert reason == "no consent for email"
    assert choose(r, "email", transactional=True) == ("email", "")
    assert choose(reach(email=False), "email")[1] == "no email address"


def test_best_prefers_the_stated_preference_then_what_they_open() -> None:
    everything = {("*", "marketing"): True}
    both = reach(push=True, consents=everything)
    assert choose(both) == ("mobile_push", "")  # push before email by default
    assert choose(reach(push=True, consents=everything, traits={"preferred_channel": "email"})) == (
        "email",
        "",
    )
    engaged = reach(
        push=True, consents=everything, engagement={"email": (10, 6), "mobile_push": (10, 1)}
    )
    assert choose(engaged) == ("email", "")
    no_push = reach(
        push=True, consents={("email", "marketing"): True, ("push", "marketing"): False}
    )
    assert choose(no_push) == ("email", "")
    assert choose(reach(push=True, consents=everything), "best", ("email",)) == ("email", "")


def test_best_hour_is_learned_in_the_persons_zone() -> None:
    # Three opens around 19:xx in Oslo (18:xx UTC), one at 07:xx.
    moments = [parse_iso_ms(f"2026-11-{d}T18:{m}:00Z") for d, m in (("01", "05"), ("02", "40"),
                                                                    ("05", "59"))]  # fmt: skip
    moments.append(parse_iso_ms("2026-11-06T06:30:00Z"))
    assert best_hour(moments, "Europe/Oslo") == 19
    assert best_hour(moments, "UTC") == 18
    assert best_hour(moments[:2], "UTC") is None  # too few to learn from
    # Next 19:00 in Oslo after 12:00 UTC on the 23rd is 18:00 UTC the same day.
    assert next_at_hour(UTC_NOON, "Europe/Oslo", 19) == parse_iso_ms("2026-11-23T18:00:00Z")
    # Within the hour itself: now.
    assert next_at_hour(UTC_NOON, "UTC", 12) == UTC_NOON
    assert next_at_hour(UTC_NOON, "UTC", 11) == parse_iso_ms("2026-11-24T11:00:00Z")
