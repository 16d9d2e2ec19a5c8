"""Coupon pools: unique codes generated from a pattern or imported, handed out one per
profile per journey, and redeemed when an `Order Completed` carries the code.

Every function takes the caller's Connection, so that issuing a coupon commits with the
journey step that asked for it. Codes are matched at checkout ignoring case, as shops'
checkouts do: each is stored in one case (generated ones upper case, imported ones as
given unless they mix cases, see `stored_form`), so that an upper- or lower-cased
lookup through the unique index finds it, with no scan of the table.

Issuing is safe with many workers on PostgreSQL: a free code is taken with
`FOR UPDATE SKIP LOCKED` (two issuers never get the same code, and neither waits for
the other), and the unique key (pool, journey, profile) makes a second issue for the
same person return the first code instead of a second one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from shopkeeper.messaging.coupon_patterns import (
    CODE_TEXT,
    MAX_CODE_LENGTH,
    Pattern,
    PatternError,
    parse_pattern,
    spellings,
    stored_form,
)
from shopkeeper.messaging.coupon_redemption import (  # redemption, part of this facade
    CouponRedemptionHook as CouponRedemptionHook,
)
from shopkeeper.messaging.coupon_redemption import redeem as redeem
from shopkeeper.storage import tables as t

DAY_MS = 86_400_000
MAX_BATCH = 100_000
_CHUNK = 500
_ANALYZE_AFTER = 1_000
# Fresh codes to try before giving up; a collision is already rare (see GUESS_ODDS).
_GENERATE_ATTEMPTS = 20
_KEY = re.compile(r"[a-z0-9][a-z0-9_-]{0,99}\Z")

_c = t.coupons.c
_p = t.coupon_pools.c


class CouponError(ValueError):
    """Input that cannot make a pool or codes (HTTP 422)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class DuplicatePool(CouponError):
    """A pool with that key exists (HTTP 409)."""


class UnknownPool(LookupError):
    def __init__(self, key: str) -> None:
        super().__init__(f'There is no coupon pool "{key}".')
        self.key = key


class PoolEmpty(Exception):
    """The pool has no free code and no pattern to make one."""


class PoolExpired(PoolEmpty):
    """The pool's end date has passed: a code issued now would already be expired."""


@dataclass(frozen=True, slots=True)
class Pool:
    id: int
    key: str
    name: str
    pattern: str | None
    discount: str | None
    valid_days: int | None
    expires_at: int | None
    created_at: int


@dataclass(frozen=True, slots=True)
class IssuedCoupon:
    code: str
    expires_at: int | None
    discount: str | None
    pool_key: str


# -- pools -------------------------------------------------------------------------------


def create_pool(
    conn: Connection,
    key: str,
    name: str,
    pattern: str | None = None,
    discount: str | None = None,
    valid_days: int | None = None,
    expires_at: int | None = None,
    *,
    now_ms: int,
) -> Pool:
    if not isinstance(key, str) or not _KEY.match(key):
        raise CouponError(
            "A pool key is 1-100 lower-case letters, digits, '-' or '_', starting with a "
            "letter or digit, e.g. cart-reminder.",
            "key",
        )
    name = name.strip() if isinstance(name, str) else ""
    if not name or len(name) > 200:
        raise CouponError("A pool needs a name of 1-200 characters.", "name")
    stored_pattern = None
    if pattern is not None:
        try:
            stored_pattern = parse_pattern(pattern).text
        except PatternError as exc:
            raise CouponError(str(exc), "pattern") from None
    if discount is not None:
        discount = discount.strip() or None
        if discount is not None and len(discount) > 200:
            raise CouponError("discount is at most 200 characters.", "discount")
    if valid_days is not None and not 1 <= valid_days <= 3650:
        raise CouponError("valid_days is from 1 to 3650 (or null: no limit).", "valid_days")
    if expires_at is not None and expires_at <= now_ms:
        raise CouponError("expires_at is in the past.", "expires_at")
    inserted = conn.execute(
        _insert_ignore(conn, t.coupon_pools)
        .values(
            key=key,
            name=name,
            pattern=stored_pattern,
            discount=discount,
            valid_days=valid_days,
            expires_at=expires_at,
            created_at=now_ms,
        )
        .returning(_p.id)
    ).first()
    if inserted is None:
        raise DuplicatePool(f'A coupon pool "{key}" already exists.', "key")
    pool = get_pool(conn, key)
    assert pool is not None
    return pool


def get_pool(conn: Connection, key: str) -> Pool | None:
    row = conn.execute(sa.select(t.coupon_pools).where(_p.key == key)).first()
    return _pool(row) if row is not None else None


def _require_pool(conn: Connection, key: str) -> Pool:
    pool = get_pool(conn, key)
    if pool is None:
        raise UnknownPool(key)
    return pool


def _pool(row: Any) -> Pool:
    return Pool(
        id=int(row.id),
        key=row.key,
        name=row.name,
        pattern=row.pattern,
        discount=row.discount,
        valid_days=row.valid_days,
        expires_at=row.expires_at,
        created_at=int(row.created_at),
    )


def list_pools(conn: Connection) -> list[Pool]:
    return [_pool(row) for row in conn.execute(sa.select(t.coupon_pools).order_by(_p.key))]


# -- codes -------------------------------------------------------------------------------


def generate_codes(conn: Connection, pool_id: int, count: int, now_ms: int) -> int:
    """Add `count` new codes from the pool's pattern; returns how many were added (all
    of them: collisions with existing codes are retried with fresh ones). `now_ms` is
    for symmetry with the other writers; code rows carry no creation time."""
    row = conn.execute(sa.select(t.coupon_pools).where(_p.id == pool_id)).first()
    if row is None:
        raise UnknownPool(str(pool_id))
    pool = _pool(row)
    if pool.pattern is None:
        raise CouponError(
            f'The pool "{pool.key}" has no pattern: import its codes instead.', "generate"
        )
    if not 1 <= count <= MAX_BATCH:
        raise CouponError(f"Generate from 1 to {MAX_BATCH} codes at a time.", "generate")
    pattern = parse_pattern(pool.pattern)
    held = conn.execute(sa.select(sa.func.count()).where(_c.pool_id == pool.id)).scalar_one()
    if held + count > pattern.capacity():
        raise CouponError(
            f"The pattern {pool.pattern} can make {pattern.space:,} codes; holding "
            f"{held + count:,} of them would let a guessed code be right too often "
            f"(the most is {pattern.capacity():,}). Use a pattern with more random "
            "characters.",
            "generate",
        )
    added = 0
    for _ in range(count // _CHUNK + _GENERATE_ATTEMPTS):
        wanted = min(count - added, _CHUNK)
        if wanted <= 0:
            break
        added += _insert_codes(conn, pool.id, _fresh(pattern, wanted))
    if added < count:  # pragma: no cover - only with a nearly full pattern space
        raise CouponError(f"Only {added} new codes could be made from {pool.pattern}.")
    _after_bulk_insert(conn, added)
    return added


def _fresh(pattern: Pattern, count: int) -> list[str]:
    codes: set[str] = set()
    while len(codes) < count:
        codes.add(pattern.generate())
    return list(codes)


def import_codes(
    conn: Connection, pool_key: str, codes: Iterable[str], now_ms: int
) -> tuple[int, int]:
    """Add codes made elsewhere (the shop's own); returns (added, duplicates), where a
    duplicate repeats a code of this import or any stored code, ignoring case. Every code
    is checked before any is stored: one bad code refuses the import, naming it."""
    pool = _require_pool(conn, pool_key)
    clean: dict[str, str] = {}
    total = 0
    for index, code in enumerate(codes):
        total += 1
        if total > MAX_BATCH:
            raise CouponError(f"Import at most {MAX_BATCH} codes at a time.", "codes")
        text = code.strip() if isinstance(code, str) else ""
        if not CODE_TEXT.match(text):
            raise CouponError(
                f"Code {index + 1} ({str(code)[:40]!r}) is not a code: codes are 1-"
                f"{MAX_CODE_LENGTH} printable ASCII characters without spaces.",
                f"codes[{index}]",
            )
        clean.setdefault(text.lower(), stored_form(text))
    added = 0
    items = list(clean.items())
    for start in range(0, len(items), _CHUNK):
        chunk = dict(items[start : start + _CHUNK])
        taken = conn.execute(
            sa.select(_c.code).where(_c.code.in_(spellings(chunk.values())))
        ).scalars()
        for stored in taken:
            chunk.pop(stored.lower(), None)
        added += _insert_codes(conn, pool.id, list(chunk.values()))
    _after_bulk_insert(conn, added)
    return added, total - added


def _insert_codes(conn: Connection, pool_id: int, codes: list[str]) -> int:
    """Insert codes, skipping any already stored (in any pool); returns how many were new."""
    if not codes:
        return 0
    result = conn.execute(
        _insert_ignore(conn, t.coupons).returning(_c.id),
        [{"pool_id": pool_id, "code": code} for code in codes],
    )
    return len(result.all())


def _after_bulk_insert(conn: Connection, added: int) -> None:
    """PostgreSQL plans the free-code query from table statistics; right after a big
    import they say the table is empty, and the plan it then picks sorts every free code
    on each issue. SQLite reads its indexes in id order and needs nothing."""
    if added >= _ANALYZE_AFTER and conn.dialect.name == "postgresql":
        conn.execute(sa.text("ANALYZE coupons"))


def _insert_ignore(conn: Connection, table: sa.Table) -> Any:
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    return postgresql.insert(table).on_conflict_do_nothing()


# -- issuing -----------------------------------------------------------------------------


def issue(
    conn: Connection,
    pool_key: str,
    *,
    profile_id: int,
    journey_id: int | None,
    enrollment_id: int | None,
    now_ms: int,
) -> IssuedCoupon:
    """The profile's code from this pool for this journey: the one it already holds, else
    the oldest free code, else a new one from the pattern. A journey_id of None (a coupon
    given outside any journey) is also one per profile and pool, but only checked here,
    not enforced by the unique key."""
    pool = _require_pool(conn, pool_key)
    held = _held(conn, pool, profile_id, journey_id)
    if held is not None:
        return held
    if pool.expires_at is not None and pool.expires_at <= now_ms:
        raise PoolExpired(f'The coupon pool "{pool.key}" ended; no code can be issued.')
    expires_at = _expiry(pool, now_ms)
    claim = {
        "profile_id": profile_id,
        "journey_id": journey_id,
        "enrollment_id": enrollment_id,
        "issued_at": now_ms,
        "expires_at": expires_at,
    }
    free = (
        sa.select(_c.id)
        .where(_c.pool_id == pool.id, _c.profile_id.is_(None), _c.redeemed_at.is_(None))
        .order_by(_c.id)
        .limit(1)
        .with_for_update(skip_locked=True)  # SQLite ignores it: its writer holds the lock
        .scalar_subquery()
    )
    take = (
        sa.update(t.coupons)
        .where(_c.id == free, _c.profile_id.is_(None))
        .values(**claim)
        .returning(_c.code)
    )
    try:
        # A savepoint: if another transaction just issued this person's code, the unique
        # key refuses ours and the transaction must go on to read theirs.
        with conn.begin_nested():
            code = conn.execute(take).scalar()
    except sa.exc.IntegrityError:
        return _raced(conn, pool, profile_id, journey_id)
    if code is not None:
        return IssuedCoupon(code, expires_at, pool.discount, pool.key)
    if pool.pattern is None:
        raise PoolEmpty(f'The coupon pool "{pool.key}" has no free code left.')
    pattern = parse_pattern(pool.pattern)
    for _ in range(_GENERATE_ATTEMPTS):
        code = pattern.generate()
        inserted = conn.execute(
            _insert_ignore(conn, t.coupons)
            .values(pool_id=pool.id, code=code, **claim)
            .returning(_c.id)
        ).first()
        if inserted is not None:
            return IssuedCoupon(code, expires_at, pool.discount, pool.key)
        # Either the code exists (try another) or this person was just given one.
        held = _held(conn, pool, profile_id, journey_id)
        if held is not None:
            return held
    raise PoolEmpty(f'No new code could be made from the pattern of "{pool.key}".')


def _raced(conn: Connection, pool: Pool, profile_id: int, journey_id: int | None) -> IssuedCoupon:
    held = _held(conn, pool, profile_id, journey_id)
    if held is None:  # pragma: no cover - the unique key only trips on this person's code
        raise PoolEmpty(f'No code could be issued from "{pool.key}".')
    return held


def _held(
    conn: Connection, pool: Pool, profile_id: int, journey_id: int | None
) -> IssuedCoupon | None:
    journey = _c.journey_id.is_(None) if journey_id is None else _c.journey_id == journey_id
    row = conn.execute(
        sa.select(_c.code, _c.expires_at)
        .where(_c.pool_id == pool.id, _c.profile_id == profile_id, journey)
        .order_by(_c.id)
        .limit(1)
    ).first()
    if row is None:
        return None
    return IssuedCoupon(row.code, row.expires_at, pool.discount, pool.key)


def _expiry(pool: Pool, now_ms: int) -> int | None:
    """Valid for the pool's days from now, and never past the pool's own end."""
    ends = [pool.expires_at] if pool.expires_at is not None else []
    if pool.valid_days is not None:
        ends.append(now_ms + pool.valid_days * DAY_MS)
    return min(ends) if ends else None
