"""The identity graph in the database: who owns which identifier, and the merge record.

One IdentityStore serves one pipeline transaction: it caches what it reads, queues what it
writes, and writes on flush(). Identifiers are inserted with a plain INSERT, so two
workers that both saw an identifier as new cannot both own it: the second one's
transaction fails on the primary key and is retried, and then finds the owner.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shopkeeper.identity.identifiers import Identifier
from shopkeeper.storage import tables as t

_CHUNK = 400
KNOWN_TYPES = ("user_id", "email", "phone")
_TOUCH_EVERY_MS = 3_600_000

_touch = (
    t.identities.update()
    .where(
        t.identities.c.type == sa.bindparam("b_type"),
        t.identities.c.value == sa.bindparam("b_value"),
    )
    .values(last_seen_at=sa.bindparam("b_at"))
)


class IdentityStore:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._owner: dict[Identifier, int | None] = {}
        self._by_profile: dict[int, dict[str, set[str]]] = {}
        self._new: list[dict[str, Any]] = []
        # last_seen_at as stored, and as seen in this batch: written back at most hourly
        # per identifier, so that a busy visitor does not cost a write per event.
        self._stored_seen: dict[Identifier, int] = {}
        self._seen: dict[Identifier, int] = {}
        self._merges: list[dict[str, Any]] = []  # rows for the merges table
        self._refusals_known: set[tuple[int, int]] = set()

    # -- reading -------------------------------------------------------------------------

    def prefetch(self, identifiers: Iterable[Identifier]) -> None:
        """Load the owners of many identifiers in a few queries."""
        wanted = [ident for ident in set(identifiers) if ident not in self._owner]
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            for ident in chunk:
                self._owner[ident] = None
            rows = self.conn.execute(
                sa.select(
                    t.identities.c.type,
                    t.identities.c.value,
                    t.identities.c.profile_id,
                    t.identities.c.last_seen_at,
                ).where(
                    sa.tuple_(t.identities.c.type, t.identities.c.value).in_(
                        [(ident.type, ident.value) for ident in chunk]
                    )
                )
            ).all()
            for type_, value, profile_id, last_seen in rows:
                ident = Identifier(type_, value)
                self._owner[ident] = int(profile_id)
                self._stored_seen[ident] = int(last_seen)

    def owners(self, identifiers: Sequence[Identifier]) -> dict[Identifier, int]:
        self.prefetch(identifiers)
        found: dict[Identifier, int] = {}
        for ident in identifiers:
            owner = self._owner.get(ident)
            if owner is not None:
                found[ident] = owner
        return found

    def identities_of(self, profile_id: int) -> dict[str, set[str]]:
        cached = self._by_profile.get(profile_id)
        if cached is None:
            cached = {}
            rows = self.conn.execute(
                sa.select(t.identities.c.type, t.identities.c.value).where(
                    t.identities.c.profile_id == profile_id
                )
            ).all()
            for type_, value in rows:
                cached.setdefault(type_, set()).add(value)
            for pending in self._new:
                if pending["profile_id"] == profile_id:
                    cached.setdefault(pending["type"], set()).add(pending["value"])
            self._by_profile[profile_id] = cached
        return cached

    # -- writing -------------------------------------------------------------------------

    def touch(self, identifiers: Iterable[Identifier], at_ms: int) -> None:
        for ident in identifiers:
            if at_ms > self._seen.get(ident, 0):
                self._seen[ident] = at_ms

    def attach(self, profile_id: int, ident: Identifier, at_ms: int, source_id: int | None) -> None:
        self._owner[ident] = profile_id
        cached = self._by_profile.get(profile_id)
        if cached is not None:
            cached.setdefault(ident.type, set()).add(ident.value)
        self._new.append(
            {
                "type": ident.type,
                "value": ident.value,
                "profile_id": profile_id,
                "first_seen_at": at_ms,
                "last_seen_at": at_ms,
                "source_id": source_id,
            }
        )

    def record_merge(
        self,
        *,
        at_ms: int,
        survivor_id: int,
        other_id: int,
        status: str,
        reason: str,
        identifiers: Sequence[Identifier],
        message_id: str | None,
        event_type: str | None,
    ) -> None:
        self._merges.append(
            {
                "at": at_ms,
                "survivor_id": survivor_id,
                "other_id": other_id,
                "status": status,
                "reason": reason,
                "identifiers": [[ident.type, ident.value] for ident in identifiers],
                "message_id": message_id,
                "event_type": event_type,
            }
        )

    def refusal_recorded(self, survivor_id: int, other_id: int) -> bool:
        """Whether this pair's refused merge is on record already (recorded once, not on
        every event of a shared device)."""
        key = (survivor_id, other_id)
        if key in self._refusals_known:
            return True
        for pending in self._merges:
            if (pending["survivor_id"], pending["other_id"]) == key:
                return True
        exists = self.conn.execute(
            sa.select(t.merges.c.id)
            .where(
                t.merges.c.status == "refused",
                t.merges.c.survivor_id == survivor_id,
                t.merges.c.other_id == other_id,
            )
            .limit(1)
        ).first()
        if exists is not None:
            self._refusals_known.add(key)
        return exists is not None

    def reassign(self, absorbed: Sequence[int], survivor: int) -> None:
        """Move every identifier of the absorbed profiles to the survivor (after flush)."""
        self.flush()
        self.conn.execute(
            t.identities.update()
            .where(t.identities.c.profile_id.in_(list(absorbed)))
            .values(profile_id=survivor)
        )
        gone = set(absorbed)
        for ident, owner in self._owner.items():
            if owner in gone:
                self._owner[ident] = survivor
        merged = self._by_profile.setdefault(survivor, {}) if survivor in self._by_profile else None
        for profile_id in absorbed:
            theirs = self._by_profile.pop(profile_id, None)
            if merged is not None:
                if theirs is None:
                    # Unknown to the cache: forget the survivor's entry, reload on demand.
                    self._by_profile.pop(survivor, None)
                    merged = None
                else:
                    for type_, values in theirs.items():
                        merged.setdefault(type_, set()).update(values)

    def flush(self) -> None:
        stale = [
            (ident, at)
            for ident, at in self._seen.items()
            if ident in self._stored_seen and at > self._stored_seen[ident] + _TOUCH_EVERY_MS
        ]
        if stale:
            self.conn.execute(
                _touch,
                [{"b_type": i.type, "b_value": i.value, "b_at": at} for i, at in stale],
            )
            for ident, at in stale:
                self._stored_seen[ident] = at
        self._seen = {}
        if self._new:
            self.conn.execute(t.identities.insert(), self._new)
            self._new = []
        if self._merges:
            self.conn.execute(t.merges.insert(), self._merges)
            for row in self._merges:
                if row["status"] == "refused":
                    self._refusals_known.add((int(row["survivor_id"]), int(row["other_id"])))
            self._merges = []
