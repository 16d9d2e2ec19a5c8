"""The behaviour model of the demo shop: who comes when, who buys how often, who stops.

Purchases follow the BG/NBD model (Fader, Hardie and Lee, "Counting your customers the
easy way", Marketing Science 2005): while a customer is active, purchases arrive as a
Poisson process with rate lambda; after each purchase the customer drops out with
probability p. Across customers lambda ~ Gamma(r, alpha) and p ~ Beta(a, b). The default
parameters are the ones that paper estimated on the CDNOW data set (weeks as the time
unit), so a BG/NBD fit on the demo's orders should land near them.

Around the purchases: visits before sign-up, research visits before a purchase, casual
browsing while the customer is active (sessions that may leave a cart behind), visitors
who never sign up, and customers first met in a store. Pure: a seeded `random.Random`,
no clock.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from functools import cache
from typing import Any

from shopkeeper.demo.people import ANONYMOUS, REGISTERED, STORE, Person

MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR
WEEK = 7 * DAY

# Activity kinds (what one entry of a person's plan renders into).
BROWSE = "browse"
RESEARCH = "research"
SIGNUP = "signup"
PURCHASE = "purchase"
POS_ORDER = "pos order"
CRM_RECORD = "crm record"
CANCEL = "cancel"
REFUND = "refund"
REVIEW = "review"
UNSUBSCRIBE = "unsubscribe"

# Relative shop traffic by local hour: a lunch bump and the evening peak.
_HOURS = (
    1.0,
    0.5,
    0.3,
    0.2,
    0.2,
    0.4,
    1.0,
    2.0,
    3.0,
    3.5,
    4.0,
    4.5,
    5.5,
    5.0,
    4.5,
    4.5,
    4.5,
    5.0,
    6.0,
    7.0,
    8.0,
    8.0,
    6.0,
    3.0,
)
_HOUR_CUM = [sum(_HOURS[: i + 1]) for i in range(24)]
# Offsets used when the system has no time zone database (hours, standard time).
_FALLBACK_OFFSETS = {
    "Asia/Bangkok": 7,
    "Asia/Shanghai": 8,
    "Europe/Bucharest": 2,
    "Europe/Oslo": 1,
    "America/New_York": -5,
    "America/Chicago": -6,
    "America/Denver": -7,
    "America/Los_Angeles": -8,
}


@dataclass(frozen=True, slots=True)
class ModelParams:
    """Every number of the model, with its default; docs/demo.md explains them."""

    days: int = 365
    share_anonymous: float = 0.50  # visitors who never sign up
    share_store: float = 0.10  # first met in a store (the rest sign up online)
    # BG/NBD (CDNOW estimates; rates per week).
    r: float = 0.243
    alpha: float = 4.414
    a: float = 0.793
    b: float = 2.426
    buyer_share: float = 0.75  # of online sign-ups who go on to buy
    signup_at_checkout: float = 0.55  # first purchase in the sign-up visit itself
    first_purchase_days: float = 21.0  # mean wait for the others
    presignup_visits: float = 1.2  # Poisson mean of anonymous visits before sign-up
    signup_other_device: float = 0.45  # sign up on another device than they browsed on
    research_visits: float = 0.9  # Poisson mean of visits shortly before a purchase
    browse_per_month: float = 0.9  # mean casual visits a month while active
    interest_days: float = 75.0  # mean time a sign-up who never buys keeps visiting
    anonymous_more_visits: float = 0.55  # chance of each further anonymous visit
    login_chance: float = 0.4  # a signed-up visitor logs in on a browser not logged in
    cookie_reset: float = 0.03  # a browser comes back with a new anonymous id
    omnichannel: float = 0.2  # online customers who also buy in stores
    store_purchase_share: float = 0.35  # of an omnichannel customer's later purchases
    crm_share: float = 0.3  # online customers who also get a CRM record (loyalty club)
    store_goes_online: float = 0.25  # store customers who later browse online
    cancel_rate: float = 0.025
    refund_rate: float = 0.06
    review_rate: float = 0.08
    coupon_rate: float = 0.18
    cart_factor: float = 1.1  # scales each person's chance of leaving a cart in a visit
    unsubscribe_rate: float = 0.06  # of email opt-ins, later


Plan = list[tuple[int, str, dict[str, Any]]]
# A step of a plan before it is placed in time: (time, activity, details, chained).
Step = tuple[int, str, dict[str, Any], bool]


@cache
def _zone(name: str) -> tzinfo | None:
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo(name)
    except Exception:  # no tz database on this system: fixed offsets below
        return None


def utc_offset_ms(timezone: str, at_ms: int) -> int:
    zone = _zone(timezone)
    if zone is None:
        return _FALLBACK_OFFSETS.get(timezone, 0) * HOUR
    offset = datetime.fromtimestamp(at_ms / 1000, UTC).astimezone(zone).utcoffset()
    return int((offset or timedelta()).total_seconds() * 1000)


def at_local_hour(rng: random.Random, at_ms: int, timezone: str) -> int:
    """The same local day as `at_ms`, at an hour people shop (in that time zone)."""
    offset = utc_offset_ms(timezone, at_ms)
    local_day = (at_ms + offset) // DAY * DAY
    hour = rng.choices(range(24), cum_weights=_HOUR_CUM)[0]
    return local_day + hour * HOUR + rng.randrange(HOUR) - offset


def _exp_ms(rng: random.Random, mean_ms: float) -> int:
    return int(rng.expovariate(1.0 / mean_ms))


def poisson(rng: random.Random, mean: float) -> int:
    # Knuth's method: means here are small.
    limit, k, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        k += 1
        product *= rng.random()
    return k


@dataclass(frozen=True, slots=True)
class Window:
    start_ms: int
    end_ms: int  # activities start before this (sessions end before `now`)


def bgnbd_purchases(
    rng: random.Random, first_ms: int, end_ms: int, params: ModelParams
) -> tuple[list[int], bool]:
    """Purchase times from a first purchase at `first_ms` until `end_ms`, as BG/NBD draws
    them, and whether the customer is still active at `end_ms`."""
    rate = rng.gammavariate(params.r, 1.0 / params.alpha)  # purchases per week
    dropout = rng.betavariate(params.a, params.b)
    times = [first_ms]
    while rng.random() >= dropout:  # still active after this purchase
        if rate <= 0:
            return times, True
        nxt = times[-1] + int(rng.expovariate(rate) * WEEK)
        if nxt >= end_ms:
            return times, True
        times.append(nxt)
    return times, False


class Planner:
    """Draws one person's plan: (time, activity, details) in time order, each placed at
    a plausible local hour. Chained activities (visits before sign-up, sign-up, purchases,
    CRM records) keep their order and stay an hour apart at least; casual and research
    visits fall where they fall (one before a sign-up is simply an anonymous visit)."""

    def __init__(self, rng: random.Random, params: ModelParams, window: Window) -> None:
        self.rng = rng
        self.params = params
        self.window = window

    def arrival(self) -> int:
        # The shop grows: more first visits lately than a year ago.
        span = self.window.end_ms - self.window.start_ms
        return self.window.start_ms + int(span * self.rng.random() ** 0.8)

    def kind(self) -> str:
        roll = self.rng.random()
        if roll < self.params.share_anonymous:
            return ANONYMOUS
        if roll < self.params.share_anonymous + self.params.share_store:
            return STORE
        return REGISTERED

    def plan(self, person: Person, arrival_ms: int) -> Plan:
        if person.kind == ANONYMOUS:
            plan = self._anonymous(arrival_ms)
        elif person.kind == STORE:
            plan = self._store(person, arrival_ms)
        else:
            plan = self._registered(person, arrival_ms)
        return self._placed(plan, person.city.timezone, arrival_ms)

    # -- the three kinds of people --------------------------------------------------------

    def _anonymous(self, arrival_ms: int) -> list[Step]:
        plan: list[Step] = [(arrival_ms, BROWSE, {}, False)]
        t = arrival_ms
        while self.rng.random() < self.params.anonymous_more_visits:
            t += _exp_ms(self.rng, 6 * DAY)
            plan.append((t, BROWSE, {}, False))
        return plan

    def _browsing(self, start: int, stop: int) -> list[Step]:
        """Casual visits between `start` and `stop` at this person's own rate."""
        rate = self.rng.gammavariate(2.0, self.params.browse_per_month / 2.0) / (30 * DAY)
        visits: list[Step] = []
        t = start
        while rate > 0:
            t += int(self.rng.expovariate(rate))
            if t >= stop:
                break
            visits.append((t, BROWSE, {}, False))
        return visits

    def _purchases(
        self, first_ms: int, *, store: bool, omnichannel: bool
    ) -> tuple[list[Step], int]:
        """BG/NBD purchases from `first_ms`, each with its research visits (online), and
        the time the customer stops being active."""
        rng, params = self.rng, self.params
        times, active = bgnbd_purchases(rng, first_ms, self.window.end_ms, params)
        plan: list[Step] = []
        for number, at in enumerate(times):
            in_store = store or (
                omnichannel and number > 0 and rng.random() < params.store_purchase_share
            )
            if in_store:
                plan.append((at, POS_ORDER, {}, True))
                continue
            category = rng.randrange(3)
            for _ in range(poisson(rng, params.research_visits)):
                before = at - int(rng.uniform(0.2, 7.0) * DAY)
                plan.append((before, RESEARCH, {"favourite": category}, False))
            plan.append((at, PURCHASE, {"favourite": category}, True))
        # A customer who dropped out still looks around for a couple of weeks.
        active_until = self.window.end_ms if active else times[-1] + _exp_ms(rng, 14 * DAY)
        return plan, active_until

    def _registered(self, person: Person, arrival_ms: int) -> list[Step]:
        rng, params = self.rng, self.params
        chain: list[Step] = []
        t = arrival_ms
        for _ in range(poisson(rng, params.presignup_visits)):
            chain.append((t, BROWSE, {"device": 0}, True))
            t += _exp_ms(rng, 3 * DAY)
        signup_device = 0
        if chain and len(person.devices) > 1 and rng.random() < params.signup_other_device:
            signup_device = rng.randrange(1, len(person.devices))
        signup_at = t + (_exp_ms(rng, 2 * DAY) if chain else 0)
        buys = rng.random() < params.buyer_share
        at_checkout = buys and rng.random() < params.signup_at_checkout
        first_purchase = (
            signup_at if at_checkout else signup_at + _exp_ms(rng, params.first_purchase_days * DAY)
        )
        plan: list[Step] = []
        if at_checkout:
            chain.append(
                (
                    signup_at,
                    PURCHASE,
                    {"device": signup_device, "signup": True, "favourite": 0},
                    True,
                )
            )
        else:
            chain.append((signup_at, SIGNUP, {"device": signup_device}, True))
        active_until = signup_at + _exp_ms(rng, params.interest_days * DAY)
        if buys and first_purchase < self.window.end_ms:
            omni = rng.random() < params.omnichannel
            purchases, active_until = self._purchases(first_purchase, store=False, omnichannel=omni)
            if at_checkout:
                purchases = [p for p in purchases if p[0] != first_purchase or p[1] != PURCHASE]
            chain.extend(purchases)
        plan.extend(chain)
        plan.extend(self._browsing(signup_at, active_until))
        if rng.random() < params.crm_share:
            crm_at = signup_at + _exp_ms(rng, 20 * DAY)
            plan.append((crm_at, CRM_RECORD, {}, True))
            if rng.random() < 0.5:
                plan.append((crm_at + _exp_ms(rng, 90 * DAY), CRM_RECORD, {"update": True}, True))
        if person.email_opt_in and rng.random() < params.unsubscribe_rate:
            plan.append((signup_at + _exp_ms(rng, 60 * DAY), UNSUBSCRIBE, {}, True))
        return plan

    def _store(self, person: Person, arrival_ms: int) -> list[Step]:
        rng = self.rng
        plan: list[Step] = [(arrival_ms, CRM_RECORD, {}, True)]
        purchases, active_until = self._purchases(arrival_ms + HOUR, store=True, omnichannel=False)
        plan.extend(purchases)
        if rng.random() < 0.4:
            plan.append((arrival_ms + _exp_ms(rng, 120 * DAY), CRM_RECORD, {"update": True}, True))
        if rng.random() < self.params.store_goes_online:
            first_visit = arrival_ms + _exp_ms(rng, 30 * DAY)
            plan.append((first_visit, BROWSE, {"login": True}, True))
            plan.extend(self._browsing(first_visit, max(active_until, first_visit + 30 * DAY)))
        return plan

    # -- placing in time --------------------------------------------------------------------

    def _placed(self, plan: list[Step], timezone: str, arrival_ms: int) -> Plan:
        """Local hours for every activity (on the day of the arrival at the earliest);
        chained ones (flag True, in their order) at least an hour after the previous
        chained one; nothing outside the window."""
        placed: Plan = []
        last_chained = self.window.start_ms
        for at, kind, details, chained in sorted(plan, key=lambda item: item[0]):
            day = max(at, arrival_ms)
            t = max(at_local_hour(self.rng, day, timezone), self.window.start_ms + HOUR)
            if chained:
                t = max(t, last_chained + HOUR)
                last_chained = t
            if t < self.window.end_ms:
                placed.append((t, kind, details))
        return placed
