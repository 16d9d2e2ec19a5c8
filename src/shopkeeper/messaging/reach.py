"""How a person can be reached: their address on each channel, whether they consented,
and which channel to use when a step asks for the best one.

`Reach` is read from the database per decision (`load_reach`) or for a batch of people
(`load_reach_many`, a fixed number of queries); `addresses`,
`consented` and `choose_channel` are pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shopkeeper.identity.identifiers import normalize_email
from shopkeeper.messaging.channels.base import (
    EMAIL,
    IN_APP,
    MOBILE_PUSH,
    ONSITE,
    SMS,
    WEB_PUSH,
    WEBHOOK,
    WHATSAPP,
)
from shopkeeper.segments.audiences.fields import ProfileData, phone_of
from shopkeeper.storage import tables as t

# The consent channel each message channel needs (profiles.consents names).
CONSENT_CHANNEL = {
    EMAIL: "email",
    SMS: "sms",
    WHATSAPP: "whatsapp",
    WEB_PUSH: "push",
    MOBILE_PUSH: "push",
}
# Channels a person is always reachable on once known to the shop: shown when they
# open the app or the site, never sent to them.
PASSIVE = (IN_APP, ONSITE)
# The order "best" tries when the person states no preference and has no history.
DEFAULT_ORDER = (MOBILE_PUSH, WEB_PUSH, EMAIL, SMS, WHATSAPP, IN_APP)
MARKETING = "marketing"


@dataclass(frozen=True)
class PushAddress:
    kind: str  # web or mobile
    address: str
    keys: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Reach:
    profile: ProfileData
    # (channel, purpose) -> granted, as recorded (channel "*" for every channel).
    consents: Mapping[tuple[str, str], bool]
    push: Sequence[PushAddress] = ()
    # channel -> (messages sent, messages opened or clicked), from the person's history.
    engagement: Mapping[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def exists(self) -> bool:
        return self.profile.exists


def load_reach(conn: Connection, profile_id: int) -> Reach:
    return load_reach_many(conn, [profile_id])[profile_id]


def load_reach_many(conn: Connection, profile_ids: Sequence[int]) -> dict[int, Reach]:
    """Reach for each of these people, in five queries whatever their number (one per
    table). A profile merged since is read as its survivor (under the asked-for id)."""
    asked = sorted(set(profile_ids))
    if not asked:
        return {}
    p = t.profiles
    rows = {
        int(r.id): r
        for r in conn.execute(
            sa.select(p.c.id, p.c.traits, p.c.computed, p.c.merged_into).where(p.c.id.in_(asked))
        )
    }
    # Merged since the message was queued: the person is the survivor now.
    survivor_of = {
        pid: int(rows[pid].merged_into)
        for pid in asked
        if pid in rows and rows[pid].merged_into is not None
    }
    missing = sorted(set(survivor_of.values()) - set(rows))
    if missing:
        for found in conn.execute(
            sa.select(p.c.id, p.c.traits, p.c.computed, p.c.merged_into).where(p.c.id.in_(missing))
        ):
            rows[int(found.id)] = found
    live = sorted(
        {
            pid
            for pid in (survivor_of.get(a, a) for a in asked)
            if pid in rows and rows[pid].merged_into is None
        }
    )
    identities: dict[int, dict[str, str]] = {pid: {} for pid in live}
    consents: dict[int, dict[tuple[str, str], bool]] = {pid: {} for pid in live}
    push: dict[int, list[PushAddress]] = {pid: [] for pid in live}
    engagement: dict[int, dict[str, tuple[int, int]]] = {pid: {} for pid in live}
    if live:
        ids = t.identities
        for ident in conn.execute(
            sa.select(ids.c.profile_id, ids.c.type, ids.c.value)
            .where(ids.c.profile_id.in_(live))
            # Oldest first, so the most recently seen value of each type wins.
            .order_by(ids.c.last_seen_at.asc(), ids.c.value)
        ):
            identities[int(ident.profile_id)][ident.type] = ident.value
        c = t.consents
        for r in conn.execute(
            sa.select(c.c.profile_id, c.c.channel, c.c.purpose, c.c.granted).where(
                c.c.profile_id.in_(live)
            )
        ):
            consents[int(r.profile_id)][(r.channel, r.purpose)] = bool(r.granted)
        s = t.push_subscriptions
        for r in conn.execute(
            sa.select(s.c.profile_id, s.c.kind, s.c.address, s.c["keys"])
            .where(s.c.profile_id.in_(live))
            .order_by(s.c.updated_at.desc())
        ):
            push[int(r.profile_id)].append(PushAddress(r.kind, r.address, dict(r[3] or {})))
        m = t.messages
        engaged = sa.case(
            (sa.or_(m.c.opened_at.is_not(None), m.c.clicked_at.is_not(None)), 1), else_=0
        )
        for r in conn.execute(
            sa.select(
                m.c.profile_id,
                m.c.channel,
                sa.func.count().label("sent"),
                sa.func.sum(engaged).label("engaged"),
            )
            .where(m.c.profile_id.in_(live), m.c.sent_at.is_not(None))
            .group_by(m.c.profile_id, m.c.channel)
        ):
            engagement[int(r.profile_id)][r.channel] = (int(r.sent), int(r.engaged or 0))
    out: dict[int, Reach] = {}
    for pid in asked:
        person = survivor_of.get(pid, pid)
        if person not in identities:
            out[pid] = Reach(ProfileData(person, exists=False), {})
            continue
        row = rows[person]
        profile = ProfileData(
            person,
            traits=dict(row.traits or {}),
            computed=dict(row.computed or {}),
            identities=identities[person],
        )
        out[pid] = Reach(profile, consents[person], push[person], engagement[person])
    return out


def address(
    reach: Reach, channel: str, default_region: str | None
) -> tuple[str, dict[str, str]] | None:
    """The address to send to on a channel, with web push keys; None when there is none."""
    data = reach.profile
    if not data.exists:
        return None
    if channel == EMAIL:
        email = data.identities.get("email") or normalize_email(data.traits.get("email"))
        return (email, {}) if email else None
    if channel in (SMS, WHATSAPP):
        phone = phone_of(data, default_region)
        return (phone, {}) if phone else None
    if channel in (WEB_PUSH, MOBILE_PUSH):
        kind = "web" if channel == WEB_PUSH else "mobile"
        for sub in reach.push:
            if sub.kind == kind:
                return sub.address, dict(sub.keys)
        return None
    if channel in PASSIVE:
        return (f"profile:{data.profile_id}", {})
    if channel == WEBHOOK:
        return None  # webhooks carry their own URL
    return None


def consented(reach: Reach, channel: str, purpose: str = MARKETING) -> bool:
    """Whether the person agreed to marketing on this channel: an explicit grant for the
    channel, else one for every channel. No record is no consent."""
    wanted = CONSENT_CHANNEL.get(channel)
    if wanted is None:
        return True  # in-app, on-site and webhooks reach no one's inbox or phone
    granted = reach.consents.get((wanted, purpose))
    if granted is None:
        granted = reach.consents.get(("*", purpose))
    return bool(granted)


def preferred(reach: Reach) -> str | None:
    traits: Mapping[str, Any] = reach.profile.traits
    value = traits.get("preferred_channel") or traits.get("preferredChannel")
    if not isinstance(value, str):
        return None
    value = value.strip().lower().replace("-", "_")
    return {"push": MOBILE_PUSH, "text": SMS, "inapp": IN_APP}.get(value, value)


def choose_channel(
    reach: Reach,
    channel: str,
    fallback: Sequence[str],
    *,
    transactional: bool,
    default_region: str | None,
) -> tuple[str | None, str]:
    """The channel to send on, or None with the reason nobody can be reached.

    A named channel is used when the person is reachable and consented there, else the
    fallback chain in order. "best" orders the reachable, consented channels by the
    person's stated preference, then by their own open and click rate per channel
    (channels never tried come after those that worked), then the default order.
    """
    candidates = [channel, *fallback] if channel != "best" else _best_order(reach, fallback)
    reasons = []
    for candidate in candidates:
        if address(reach, candidate, default_region) is None:
            reasons.append(f"no {candidate.replace('_', ' ')} address")
            continue
        if not transactional and not consented(reach, candidate):
            reasons.append(f"no consent for {candidate.replace('_', ' ')}")
            continue
        return candidate, ""
    return None, "; ".join(reasons) or "no channel"


def _best_order(reach: Reach, fallback: Sequence[str]) -> list[str]:
    pool = [c for c in DEFAULT_ORDER]
    pool += [c for c in fallback if c not in pool]

    def rate(channel: str) -> float:
        sent, engaged = reach.engagement.get(channel, (0, 0))
        return engaged / sent if sent else -1.0

    # Stable sort: default order breaks ties.
    ranked = sorted(pool, key=lambda c: -rate(c))
    pref = preferred(reach)
    if pref in ranked:
        ranked.remove(pref)
        ranked.insert(0, pref)
    if fallback:
        # An explicit fallback chain after "best" narrows the choice to those channels.
        allowed = set(fallback)
        if pref:
            allowed.add(pref)
        ranked = [c for c in ranked if c in allowed]
    return ranked
