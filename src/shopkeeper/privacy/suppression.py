"""The suppression list: identifiers of erased people, stored as keyed hashes, and the
pipeline's pre-filter that deletes events carrying them.

Why a keyed hash (HMAC-SHA256 with a random per-installation secret kept in `meta`)
rather than plain SHA-256: identifiers have little entropy. All phone numbers of a country
fit in about 10^10 guesses and most emails are in breach lists, so a plain hash of one is
reversed on a laptop; a plain-hash list would still hold the person. With the secret, a
copy of the suppressions table alone (a dump, a support ticket, one table's backup) gives
nothing away, and two installations' lists cannot be joined to find the same person.
The secret lives in the database, not in settings: a setting that is lost or changed
would silently stop suppression, while a secret that travels with the table cannot drift
from it. Whoever holds the whole database holds the secret too; that is the accepted limit.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shopkeeper.identity.identifiers import Identifier, id_string, normalize_email, normalize_phone
from shopkeeper.storage import tables as t
from shopkeeper.storage.db import Database

if TYPE_CHECKING:
    from shopkeeper.ingest.log import LoggedEvent
    from shopkeeper.observability.metrics import Metrics

KEY_META = "suppression_key"
COUNTER_META = "suppressed_events"
_CHUNK = 400


def suppression_hash(type_: str, value: str, key: bytes) -> str:
    """The stored form of one identifier: hex HMAC-SHA256 of type and normalised value.
    The type is part of the message so that a user id "42" and a device id "42" differ."""
    return hmac.digest(key, f"{type_}\x00{value}".encode(), "sha256").hex()


def normalize_value(type_: str, value: str, default_phone_region: str | None = None) -> str:
    """A value as the identity extractor stores it, so that a person typing an identifier
    finds the entry an erase wrote (emails lower-cased, phones in E.164)."""
    if type_ == "email":
        return normalize_email(value) or value.strip().lower()
    if type_ == "phone":
        return normalize_phone(value, default_phone_region) or value.strip()
    return id_string(value) or value.strip()


# -- the secret ----------------------------------------------------------------------------


def get_key(conn: Connection) -> bytes | None:
    value = conn.execute(sa.select(t.meta.c.value).where(t.meta.c.key == KEY_META)).scalar()
    return bytes.fromhex(value) if value else None


def ensure_key(db: Database, conn: Connection) -> bytes:
    """The installation's secret, created on first use. Two transactions creating it at
    once both insert-or-ignore and then read the one that won."""
    key = get_key(conn)
    if key is None:
        conn.execute(db.insert_ignore(t.meta).values(key=KEY_META, value=secrets.token_hex(32)))
        key = get_key(conn)
        assert key is not None
    return key


# -- the list ------------------------------------------------------------------------------


def suppress(
    db: Database, conn: Connection, identifiers: Iterable[Identifier], now_ms: int, reason: str
) -> int:
    """Put identifiers on the list (in the caller's transaction). Returns how many distinct
    identifiers are now suppressed for this call (already listed ones included)."""
    key = ensure_key(db, conn)
    rows = {
        (ident.type, suppression_hash(ident.type, ident.value, key)): None for ident in identifiers
    }
    if rows:
        conn.execute(
            db.insert_ignore(t.suppressions),
            [
                {"type": type_, "value_hash": digest, "created_at": now_ms, "reason": reason[:200]}
                for type_, digest in rows
            ],
        )
    return len(rows)


def remove(conn: Connection, type_: str, value: str) -> bool:
    """Take one (already normalised) identifier off the list. False when it was not on it."""
    key = get_key(conn)
    if key is None:
        return False
    deleted = conn.execute(
        t.suppressions.delete().where(
            t.suppressions.c.type == type_,
            t.suppressions.c.value_hash == suppression_hash(type_, value, key),
        )
    ).rowcount
    return bool(deleted)


def is_suppressed(conn: Connection, type_: str, value: str) -> bool:
    key = get_key(conn)
    if key is None:
        return False
    found = conn.execute(
        sa.select(t.suppressions.c.type).where(
            t.suppressions.c.type == type_,
            t.suppressions.c.value_hash == suppression_hash(type_, value, key),
        )
    ).first()
    return found is not None


def counts_by_type(conn: Connection) -> dict[str, int]:
    rows = conn.execute(
        sa.select(t.suppressions.c.type, sa.func.count())
        .group_by(t.suppressions.c.type)
        .order_by(t.suppressions.c.type)
    ).all()
    return {str(type_): int(count) for type_, count in rows}


def dropped_count(conn: Connection) -> int:
    """Events dropped because they carried a suppressed identifier, ever (all workers)."""
    value = conn.execute(sa.select(t.meta.c.value).where(t.meta.c.key == COUNTER_META)).scalar()
    return int(value) if value else 0


def _count_dropped(db: Database, conn: Connection, count: int) -> None:
    bump = (
        t.meta.update()
        .where(t.meta.c.key == COUNTER_META)
        .values(value=sa.cast(sa.cast(t.meta.c.value, sa.BigInteger) + count, sa.Text))
    )
    if conn.execute(bump).rowcount == 0:
        conn.execute(db.insert_ignore(t.meta).values(key=COUNTER_META, value="0"))
        conn.execute(bump)


# -- the pipeline's pre-filter -------------------------------------------------------------

_ANY = sa.select(t.suppressions.c.type).limit(1)


class SuppressionFilter:
    """Removes events of erased people from a pipeline batch and deletes them from the
    log, in the batch's transaction. One processor holds one filter."""

    def __init__(self, metrics: Metrics | None = None) -> None:
        self.metrics = metrics
        # The secret never changes once created; caching it saves a query per batch.
        self._key: bytes | None = None

    def drop_suppressed(
        self,
        db: Database,
        conn: Connection,
        events: Sequence[LoggedEvent],
        identifiers: Mapping[int, Sequence[Identifier]],
    ) -> list[LoggedEvent]:
        """The events to apply: `events` without those carrying a suppressed identifier
        (`identifiers`: each event's identifiers by seq, as the extractor found them)."""
        # Nearly always the list is empty: one indexed one-row probe per batch, no hashing.
        if not events or conn.execute(_ANY).first() is None:
            return list(events)
        key = self._key = self._key or get_key(conn)
        if key is None:
            return list(events)
        carriers: dict[tuple[str, str], list[int]] = {}
        for event in events:
            for ident in identifiers.get(event.seq, ()):
                digest = suppression_hash(ident.type, ident.value, key)
                carriers.setdefault((ident.type, digest), []).append(event.seq)
        pairs = list(carriers)
        dropped: set[int] = set()
        for start in range(0, len(pairs), _CHUNK):
            chunk = pairs[start : start + _CHUNK]
            for type_, digest in conn.execute(
                sa.select(t.suppressions.c.type, t.suppressions.c.value_hash).where(
                    sa.tuple_(t.suppressions.c.type, t.suppressions.c.value_hash).in_(chunk)
                )
            ):
                dropped.update(carriers[(type_, digest)])
        if not dropped:
            return list(events)
        # Deleted, not kept: the events carry the person's data.
        conn.execute(t.events.delete().where(t.events.c.seq.in_(sorted(dropped))))
        _count_dropped(db, conn, len(dropped))
        # Counted before the commit: a batch rolled back and retried counts twice here,
        # while the persistent counter in `meta` stays exact.
        if self.metrics is not None:
            self.metrics.events_suppressed.inc(len(dropped))
        return [event for event in events if event.seq not in dropped]
