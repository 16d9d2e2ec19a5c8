"""The person behind a profile, as rows: the live profile and the profiles merged into it,
their identifiers, and the events not applied yet (pending or parked) that carry one of
those identifiers. Export shows exactly this set; erase deletes exactly this set.

Events not applied yet have no profile id, so they are found by content: the identity
extractor reads each one's identifiers (userId, anonymousId, emails and phones in traits,
context.externalIds, device ids...). An identifier such an event carries that no other
profile owns would have joined the person's profile when applied, so it counts as the
person's too, and the search repeats with it (a new device's anonymous id that arrived
with the person's email, then that device's other events).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shopkeeper.identity.identifiers import Identifier, IdentifierExtractor
from shopkeeper.storage import tables as t

# Each pass reads every unapplied event once. Later identifiers still go on the
# suppression list, so the pipeline drops what the last pass did not reach.
_PASSES = 4
_CHUNK = 400


class ProfileNotFound(LookupError):
    pass


@dataclass(frozen=True, slots=True)
class Person:
    profile_id: int
    # The live profile first, then the profiles merged into it.
    lineage: tuple[int, ...]
    identifiers: tuple[Identifier, ...]
    # Pending or parked events carrying one of the identifiers, in log order.
    unapplied_seqs: tuple[int, ...]


def match_events(
    known: set[Identifier], events: Iterable[tuple[int, Sequence[Identifier]]]
) -> tuple[list[int], set[Identifier]]:
    """The events (seq, identifiers) that carry a known identifier, and every identifier
    those events carry. Pure."""
    matched: list[int] = []
    carried: set[Identifier] = set()
    for seq, found in events:
        if any(ident in known for ident in found):
            matched.append(seq)
            carried.update(found)
    return matched, carried


def lineage_of(conn: Connection, profile_id: int, *, lock: bool) -> tuple[int, ...]:
    """The live profile an id names (absorbed ids name their survivor) and the profiles
    merged into it. `lock` (for PostgreSQL) locks their rows FOR UPDATE, so that a pipeline
    worker applying this person's events waits for the caller's transaction (and then
    finds the profile gone) instead of writing beside it."""
    wanted = profile_id
    for _ in range(_PASSES):
        row = conn.execute(
            sa.select(t.profiles.c.id, t.profiles.c.merged_into).where(t.profiles.c.id == wanted)
        ).first()
        if row is None:
            break
        survivor = int(row.merged_into if row.merged_into is not None else row.id)
        query = (
            sa.select(t.profiles.c.id, t.profiles.c.merged_into)
            .where(sa.or_(t.profiles.c.id == survivor, t.profiles.c.merged_into == survivor))
            .order_by(t.profiles.c.id)
        )
        if lock:
            query = query.with_for_update()
        rows = {int(pid): merged_into for pid, merged_into in conn.execute(query)}
        if survivor in rows and rows[survivor] is None:
            return (survivor, *[pid for pid in rows if pid != survivor])
        # Merged into another profile between the two reads: follow it.
        wanted = survivor
    raise ProfileNotFound(f"no profile {profile_id}")


def find_person(
    conn: Connection,
    profile_id: int,
    extractor: IdentifierExtractor,
    *,
    lock: bool = False,
) -> Person:
    lineage = lineage_of(conn, profile_id, lock=lock)
    known = {
        Identifier(type_, value)
        for type_, value in conn.execute(
            sa.select(t.identities.c.type, t.identities.c.value).where(
                t.identities.c.profile_id.in_(lineage)
            )
        )
    }
    matched: list[int] = []
    for _ in range(_PASSES):
        matched, carried = match_events(known, _unapplied(conn, extractor))
        new = carried - known
        new -= _owned_elsewhere(conn, new, lineage)
        if not new:
            break
        known |= new
    return Person(
        profile_id=lineage[0],
        lineage=lineage,
        identifiers=tuple(sorted(known)),
        unapplied_seqs=tuple(sorted(matched)),
    )


def _unapplied(
    conn: Connection, extractor: IdentifierExtractor
) -> Iterator[tuple[int, list[Identifier]]]:
    """Every pending and parked event's identifiers, as the pipeline would read them
    (one query per status, each served by its partial index)."""
    for status in (t.PENDING, t.PARKED):
        result = conn.execute(
            sa.select(t.events.c.seq, t.events.c.type, t.events.c.payload)
            .where(t.events.c.status == status)
            .order_by(t.events.c.seq)
            .execution_options(yield_per=1000)
        )
        for seq, type_, payload in result:
            found = extractor.extract(payload)
            if type_ == "alias":
                found = found + extractor.alias_candidates(payload)
            yield int(seq), found


def _owned_elsewhere(
    conn: Connection, identifiers: set[Identifier], lineage: Sequence[int]
) -> set[Identifier]:
    wanted = sorted(identifiers)
    owned: set[Identifier] = set()
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        for type_, value in conn.execute(
            sa.select(t.identities.c.type, t.identities.c.value).where(
                sa.tuple_(t.identities.c.type, t.identities.c.value).in_(
                    [(ident.type, ident.value) for ident in chunk]
                ),
                t.identities.c.profile_id.notin_(list(lineage)),
            )
        ):
            owned.add(Identifier(type_, value))
    return owned
