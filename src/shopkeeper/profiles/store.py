"""Profiles in the database, for one pipeline transaction.

Profiles are read once per batch (on PostgreSQL with FOR UPDATE: two workers applying
events of the same person queue on the row instead of overwriting each other), changed in
memory by the reducers, and written back once on flush().
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shopkeeper.profiles.model import ConsentChange
from shopkeeper.profiles.traits import merge_traits
from shopkeeper.storage import tables as t
from shopkeeper.storage.db import Database

# New profiles reserve their ids in blocks and are inserted in one executemany on flush.
_ID_BLOCK = 500


class StaleProfile(Exception):
    """A profile read in this transaction was merged away by another worker meanwhile;
    the batch is retried with fresh reads."""


@dataclass(slots=True)
class ProfileState:
    id: int
    created_at: int
    traits: dict[str, Any]
    trait_times: dict[str, Any]
    computed: dict[str, Any]
    is_known: bool
    display_name: str | None
    dirty: bool = False
    new: bool = False


@dataclass(slots=True)
class ConsentState:
    granted: bool
    updated_at: int
    source: str | None
    via: str
    message_id: str | None
    dirty: bool = field(default=False)


_PROFILE_COLUMNS = (
    t.profiles.c.id,
    t.profiles.c.created_at,
    t.profiles.c.traits,
    t.profiles.c.trait_times,
    t.profiles.c.computed,
    t.profiles.c.is_known,
    t.profiles.c.display_name,
    t.profiles.c.merged_into,
)

_save = (
    t.profiles.update()
    .where(t.profiles.c.id == sa.bindparam("b_id"))
    .values(
        traits=sa.bindparam("b_traits"),
        trait_times=sa.bindparam("b_times"),
        computed=sa.bindparam("b_computed"),
        is_known=sa.bindparam("b_known"),
        display_name=sa.bindparam("b_name"),
        updated_at=sa.bindparam("b_at"),
    )
)


class ProfileStore:
    def __init__(self, conn: Connection, db: Database) -> None:
        self.conn = conn
        self.db = db
        self.lock_rows = not db.is_sqlite
        self._ids: list[int] = []
        self._reserved_top = 0
        self._upsert_consent = db.upsert(
            t.consents,
            ["profile_id", "channel", "purpose"],
            ["granted", "updated_at", "source", "via", "message_id"],
        )
        self._profiles: dict[int, ProfileState] = {}
        self._consents: dict[int, dict[tuple[str, str], ConsentState]] = {}

    def load(self, ids: Iterable[int]) -> None:
        wanted = sorted({pid for pid in ids if pid not in self._profiles})
        for start in range(0, len(wanted), 500):
            query = sa.select(*_PROFILE_COLUMNS).where(
                t.profiles.c.id.in_(wanted[start : start + 500])
            )
            if self.lock_rows:
                query = query.order_by(t.profiles.c.id).with_for_update()
            for row in self.conn.execute(query):
                if row.merged_into is not None:
                    raise StaleProfile(f"profile {row.id} was merged into {row.merged_into}")
                self._profiles[int(row.id)] = ProfileState(
                    id=int(row.id),
                    created_at=int(row.created_at),
                    traits=row.traits,
                    trait_times=row.trait_times,
                    computed=row.computed,
                    is_known=bool(row.is_known),
                    display_name=row.display_name,
                )

    def get(self, profile_id: int) -> ProfileState:
        state = self._profiles.get(profile_id)
        if state is None:
            self.load([profile_id])
            state = self._profiles.get(profile_id)
            if state is None:
                raise StaleProfile(f"profile {profile_id} is gone")
        return state

    def create(self, at_ms: int, expected: int = 1) -> ProfileState:
        """A new, empty profile; written on flush. `expected`: how many more may follow
        in this transaction (ids are reserved in blocks)."""
        if not self._ids:
            self._ids = self.db.allocate_ids(
                self.conn, t.profiles, max(1, min(expected, _ID_BLOCK)), self._reserved_top
            )
            self._reserved_top = max(self._reserved_top, self._ids[-1])
        profile_id = self._ids.pop(0)
        state = ProfileState(profile_id, at_ms, {}, {}, {}, False, None, dirty=True, new=True)
        self._profiles[state.id] = state
        self._consents[state.id] = {}
        return state

    # -- consents --------------------------------------------------------------------------

    def consents_of(self, profile_id: int) -> dict[tuple[str, str], ConsentState]:
        cached = self._consents.get(profile_id)
        if cached is None:
            cached = {}
            rows = self.conn.execute(
                sa.select(
                    t.consents.c.channel,
                    t.consents.c.purpose,
                    t.consents.c.granted,
                    t.consents.c.updated_at,
                    t.consents.c.source,
                    t.consents.c.via,
                    t.consents.c.message_id,
                ).where(t.consents.c.profile_id == profile_id)
            ).all()
            for row in rows:
                cached[(row.channel, row.purpose)] = ConsentState(
                    bool(row.granted), int(row.updated_at), row.source, row.via, row.message_id
                )
            self._consents[profile_id] = cached
        return cached

    def apply_consents(
        self,
        profile_id: int,
        changes: Iterable[ConsentChange],
        source: str | None,
        message_id: str | None,
    ) -> None:
        current = self.consents_of(profile_id)
        for change in changes:
            key = (change.channel, change.purpose)
            known = current.get(key)
            if known is not None and change.at_ms < known.updated_at:
                continue  # an older statement does not undo a newer one
            current[key] = ConsentState(
                change.granted, change.at_ms, source, change.via, message_id, dirty=True
            )

    # -- merging ---------------------------------------------------------------------------

    def merge(
        self,
        survivor_id: int,
        absorbed: list[int],
        refold: Callable[[], dict[str, Any]],
        at_ms: int,
    ) -> ProfileState:
        """Fold the absorbed profiles into the survivor: traits newest-wins per trait,
        consents newest-wins per channel and purpose, computed attributes recomputed from
        the combined history (so nothing is counted twice). Call after the events and
        identities were reassigned and everything earlier was flushed."""
        survivor = self.get(survivor_id)
        consents = self.consents_of(survivor_id)
        for other_id in absorbed:
            other = self.get(other_id)
            survivor.traits, survivor.trait_times = merge_traits(
                survivor.traits, survivor.trait_times, other.traits, other.trait_times
            )
            survivor.is_known = survivor.is_known or other.is_known
            survivor.display_name = survivor.display_name or other.display_name
            survivor.created_at = min(survivor.created_at, other.created_at)
            for key, theirs in self.consents_of(other_id).items():
                ours = consents.get(key)
                if ours is None or theirs.updated_at > ours.updated_at:
                    theirs.dirty = True
                    consents[key] = theirs
            self._consents.pop(other_id, None)
            self._profiles.pop(other_id, None)
        survivor.computed = refold()
        survivor.dirty = True
        self.conn.execute(t.consents.delete().where(t.consents.c.profile_id.in_(absorbed)))
        self.conn.execute(
            t.profiles.update()
            .where(t.profiles.c.id.in_(absorbed))
            .values(
                merged_into=survivor_id,
                traits={},
                trait_times={},
                computed={},
                display_name=None,
                updated_at=at_ms,
            )
        )
        # Keep chains flat: whatever pointed at an absorbed profile now points here.
        self.conn.execute(
            t.profiles.update()
            .where(t.profiles.c.merged_into.in_(absorbed))
            .values(merged_into=survivor_id)
        )
        self.conn.execute(
            t.profiles.update()
            .where(t.profiles.c.id == survivor_id)
            .values(created_at=survivor.created_at)
        )
        return survivor

    def flush(self, now_ms: int) -> list[int]:
        """Write changed profiles and consents; returns the ids of changed profiles."""
        dirty = [state for state in self._profiles.values() if state.dirty]
        created = [state for state in dirty if state.new]
        if created:
            self.conn.execute(
                t.profiles.insert(),
                [
                    {
                        "id": state.id,
                        "created_at": state.created_at,
                        "updated_at": now_ms,
                        "is_known": state.is_known,
                        "display_name": _name(state.display_name),
                        "traits": state.traits,
                        "trait_times": state.trait_times,
                        "computed": state.computed,
                    }
                    for state in created
                ],
            )
        updated = [state for state in dirty if not state.new]
        if updated:
            self.conn.execute(
                _save,
                [
                    {
                        "b_id": state.id,
                        "b_traits": state.traits,
                        "b_times": state.trait_times,
                        "b_computed": state.computed,
                        "b_known": state.is_known,
                        "b_name": _name(state.display_name),
                        "b_at": now_ms,
                    }
                    for state in updated
                ],
            )
        for state in dirty:
            state.dirty = False
            state.new = False
        rows = []
        for profile_id, consents in self._consents.items():
            for (channel, purpose), consent in consents.items():
                if consent.dirty:
                    rows.append(
                        {
                            "profile_id": profile_id,
                            "channel": channel,
                            "purpose": purpose,
                            "granted": consent.granted,
                            "updated_at": consent.updated_at,
                            "source": consent.source,
                            "via": consent.via,
                            "message_id": consent.message_id,
                        }
                    )
                    consent.dirty = False
        if rows:
            self.conn.execute(self._upsert_consent, rows)
        return [state.id for state in dirty]


def _name(value: str | None) -> str | None:
    return value[:500] if value else None
