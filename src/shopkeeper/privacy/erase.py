"""Erasing a person: every row that holds their data goes, in one transaction, and their
identifiers go on the suppression list so that their next events are dropped instead of
re-creating them.

What goes: the profile and the profiles merged into it (their tombstones), their
identities, consents, every event applied to any of them, every pending or parked event
carrying one of their identifiers (see person.py), and the merge records naming any of
them. What stays: aggregates without a person in them (product_stats), and the audit
entry, which names the profile id and counts only.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shopkeeper.admin import audit
from shopkeeper.identity.identifiers import IdentifierExtractor, JunkFilter
from shopkeeper.privacy import suppression
from shopkeeper.privacy.person import ProfileNotFound, find_person
from shopkeeper.storage import tables as t
from shopkeeper.storage.db import Database

__all__ = ["EraseSummary", "ProfileNotFound", "erase_profile"]

log = logging.getLogger(__name__)

_ATTEMPTS = 3
_CHUNK = 500


@dataclass(frozen=True, slots=True)
class EraseSummary:
    """Counts only: the answer and the audit entry must not hold the person's data."""

    profile_id: int
    absorbed_profile_ids: list[int]
    profiles_deleted: int
    identities_deleted: int
    identities_suppressed: int
    # All events deleted; `unapplied_events_deleted` of them were pending or parked.
    events_deleted: int
    unapplied_events_deleted: int
    consents_deleted: int
    merges_deleted: int

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def erase_profile(
    db: Database,
    profile_id: int,
    now_ms: int,
    actor: str,
    *,
    extractor: IdentifierExtractor | None = None,
) -> EraseSummary:
    """Erase the person whose profile is `profile_id` (an absorbed id names its
    survivor). Raises ProfileNotFound. `extractor` should be built from the installation's
    settings (junk identifiers, phone region) as the pipeline's is; the default reads
    identifiers with the built-in rules."""
    extractor = extractor or IdentifierExtractor(JunkFilter())
    for attempt in range(_ATTEMPTS):
        try:
            with db.write() as conn:
                return _erase(db, conn, profile_id, now_ms, actor, extractor)
        except sa.exc.OperationalError as exc:
            # A deadlock with a pipeline worker on PostgreSQL: nothing was written; again.
            if attempt == _ATTEMPTS - 1:
                raise
            log.info(
                "erase of profile %s conflicted (attempt %d): %s", profile_id, attempt + 1, exc
            )
    raise AssertionError("unreachable")


def _erase(
    db: Database,
    conn: Connection,
    profile_id: int,
    now_ms: int,
    actor: str,
    extractor: IdentifierExtractor,
) -> EraseSummary:
    person = find_person(conn, profile_id, extractor, lock=not db.is_sqlite)
    lineage = list(person.lineage)
    suppressed = suppression.suppress(
        db, conn, person.identifiers, now_ms, f"erased profile {person.profile_id}"
    )
    applied = _delete(conn, t.events.delete().where(t.events.c.profile_id.in_(lineage)))
    unapplied = _delete_seqs(conn, person.unapplied_seqs)
    identities = _delete(conn, t.identities.delete().where(t.identities.c.profile_id.in_(lineage)))
    consents = _delete(conn, t.consents.delete().where(t.consents.c.profile_id.in_(lineage)))
    merges = _delete(
        conn,
        t.merges.delete().where(
            sa.or_(t.merges.c.survivor_id.in_(lineage), t.merges.c.other_id.in_(lineage))
        ),
    )
    _leave_segments(conn, lineage, now_ms)
    _delete(conn, t.profile_scores.delete().where(t.profile_scores.c.profile_id.in_(lineage)))
    _delete(conn, t.lead_rule_matches.delete().where(t.lead_rule_matches.c.profile_id.in_(lineage)))
    profiles = _delete(conn, t.profiles.delete().where(t.profiles.c.id.in_(lineage)))
    summary = EraseSummary(
        profile_id=person.profile_id,
        absorbed_profile_ids=lineage[1:],
        profiles_deleted=profiles,
        identities_deleted=identities,
        identities_suppressed=suppressed,
        events_deleted=applied + unapplied,
        unapplied_events_deleted=unapplied,
        consents_deleted=consents,
        merges_deleted=merges,
    )
    audit.record(
        conn,
        at_ms=now_ms,
        actor=actor,
        action="profile.erase",
        target=f"profile {person.profile_id}",
        details=summary.as_dict(),
    )
    return summary


def _leave_segments(conn: Connection, lineage: Sequence[int], now_ms: int) -> None:
    """The person leaves every segment: an exit in the history (by profile id only, so
    audience syncs send the removal) and no member rows."""
    members = conn.execute(
        sa.select(t.segment_members.c.segment_id, t.segment_members.c.profile_id).where(
            t.segment_members.c.profile_id.in_(lineage)
        )
    ).all()
    if not members:
        return
    conn.execute(
        t.segment_history.insert(),
        [
            {"segment_id": seg, "profile_id": pid, "at": now_ms, "entered": False}
            for seg, pid in members
        ],
    )
    conn.execute(t.segment_members.delete().where(t.segment_members.c.profile_id.in_(lineage)))


def _delete(conn: Connection, statement: sa.Delete) -> int:
    return int(conn.execute(statement).rowcount)


def _delete_seqs(conn: Connection, seqs: Sequence[int]) -> int:
    deleted = 0
    for start in range(0, len(seqs), _CHUNK):
        chunk = list(seqs[start : start + _CHUNK])
        deleted += _delete(conn, t.events.delete().where(t.events.c.seq.in_(chunk)))
    return deleted
