"""What an audience sync sends, decided without a database: the net change of a stretch
of membership history, the members as of a point in that history, the payload, and the
wait before retrying a failed destination. Pure."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

MAX_BACKOFF_MS = 60 * 60_000


@dataclass(frozen=True, slots=True)
class NetChange:
    added: list[int]
    removed: list[int]


def net_changes(rows: Iterable[tuple[int, bool]]) -> NetChange:
    """Collapse (profile_id, entered) rows, in history order, into the change relative to
    the membership before the first row.

    A profile's membership before the stretch is the opposite of its first row (an entry
    follows a time outside). So a profile changed if and only if its first and last rows
    agree: entered ... entered is an addition, exited ... exited a removal, and entered
    then exited (or exited then entered) leaves it where it was: nothing to send.
    """
    first: dict[int, bool] = {}
    last: dict[int, bool] = {}
    for profile_id, entered in rows:
        first.setdefault(profile_id, entered)
        last[profile_id] = entered
    added = sorted(p for p, entered in last.items() if entered and first[p])
    removed = sorted(p for p, entered in last.items() if not entered and not first[p])
    return NetChange(added, removed)


def members_at_mark(current: Iterable[int], later_rows: Iterable[tuple[int, bool]]) -> list[int]:
    """Members as of a history mark, from today's members and the rows after the mark.

    A profile with no row after the mark is a member then exactly when it is one now; a
    profile with rows after the mark was a member then exactly when its first later row
    is an exit.
    """
    first_later: dict[int, bool] = {}
    for profile_id, entered in later_rows:
        first_later.setdefault(profile_id, entered)
    members = {p for p in current if p not in first_later}
    members.update(p for p, entered in first_later.items() if not entered)
    return sorted(members)


def backoff_ms(failures: int, base_ms: int) -> int:
    """Wait after the n-th failure in a row: base, 2 x base, 4 x base... at most an hour."""
    if failures < 1:
        return base_ms
    return min(base_ms * (1 << min(failures - 1, 30)), MAX_BACKOFF_MS)


def payload(
    *,
    audience_id: int,
    audience_name: str,
    kind: str,
    segment_key: str,
    full_load: bool,
    added: list[dict[str, Any]],
    removed: list[dict[str, Any]],
    cursor: int,
    sent_at: str,
) -> dict[str, Any]:
    """The JSON body of one request to a destination (docs/audiences.md)."""
    return {
        "audience": {"id": audience_id, "name": audience_name, "kind": kind},
        "segment": segment_key,
        "full_load": full_load,
        "added": added,
        "removed": removed,
        "cursor": cursor,
        "sent_at": sent_at,
    }
