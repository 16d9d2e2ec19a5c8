"""Several pipeline workers at once: nothing applied twice, nothing skipped, per-identity
order kept, merges racing across workers end in one profile per person."""

from __future__ import annotations

import random
import threading
from collections import Counter
from typing import Any

import sqlalchemy as sa

from shopkeeper.clock import SystemClock
from shopkeeper.config import Settings
from shopkeeper.identity.identifiers import JunkFilter
from shopkeeper.ingest.sources import create_source
from shopkeeper.ingest.spec import Envelope, Limits, MessageValidator
from shopkeeper.ingest.writer import EventWriter, event_row
from shopkeeper.pipeline.processor import Processor
from shopkeeper.storage import tables as t
from shopkeeper.storage.db import Database
from shopkeeper.timeutil import ms_to_iso
from tests.harness import NOW

WORKERS = 4


def _messages(rng: random.Random) -> tuple[list[dict[str, Any]], dict[str, int], int]:
    """Returns messages, the last `step` sent per solo visitor, and the user count."""
    messages: list[dict[str, Any]] = []
    last_step: dict[str, int] = {}
    # Solo visitors: identify calls with the same timestamp; only their order decides
    # which `step` is the visitor's last.
    for v in range(30):
        anon = f"solo-{v}"
        for step in range(12):
            messages.append(
                {
                    "type": "identify",
                    "anonymousId": anon,
                    "traits": {"step": step},
                    "timestamp": ms_to_iso(NOW),
                }
            )
            last_step[anon] = step
            messages.append({"type": "page", "anonymousId": anon, "name": f"p{step}"})
    # People on two devices who log in on both: merges that race across partitions.
    users = 25
    for u in range(users):
        for device in ("a", "b"):
            anon = f"user-{u}-{device}"
            for n in range(4):
                messages.append({"type": "page", "anonymousId": anon, "name": f"n{n}"})
            messages.append(
                {
                    "type": "identify",
                    "anonymousId": anon,
                    "userId": f"user-{u}",
                    "traits": {"email": f"user{u}@example.com"},
                }
            )
            messages.append({"type": "track", "userId": f"user-{u}", "event": "Signed In"})
    # Keep each identity's own order, interleave identities at random.
    queues: dict[str, list[dict[str, Any]]] = {}
    for message in messages:
        key = message.get("anonymousId") or message["userId"]
        queues.setdefault(key, []).append(message)
    shuffled: list[dict[str, Any]] = []
    keys = list(queues)
    while keys:
        key = rng.choice(keys)
        shuffled.append(queues[key].pop(0))
        if not queues[key]:
            keys.remove(key)
    return shuffled, last_step, users


def test_concurrent_workers_apply_every_event_once_in_order(db_url: str) -> None:
    rng = random.Random(7)
    db = Database(db_url)
    settings = Settings(database_url=db_url, pipeline_batch_size=40)
    source = create_source(db, "load", "server", NOW)
    validator = MessageValidator(JunkFilter(), Limits())
    messages, last_step, users = _messages(rng)
    writer = EventWriter(db)
    writer.start()
    rows = []
    for index, message in enumerate(messages):
        accepted = validator.check(message, index=0, size=100, envelope=Envelope(NOW + index))
        rows.append(event_row(accepted, source.id, NOW + index))
    for start in range(0, len(rows), 97):
        writer.write_sync(rows[start : start + 97])
    writer.stop()

    errors: list[BaseException] = []

    def work() -> None:
        processor = Processor(db, settings, SystemClock())
        try:
            idle = 0
            while idle < 3:
                idle = idle + 1 if processor.run_once() == 0 else 0
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors

    with db.read() as conn:
        statuses = Counter(conn.execute(sa.select(t.events.c.status)).scalars())
        assert statuses == {t.APPLIED: len(messages)}  # nothing pending, parked or lost
        per_profile = Counter(conn.execute(sa.select(t.events.c.profile_id)).scalars())
        live = conn.execute(
            sa.select(t.profiles.c.id, t.profiles.c.traits, t.profiles.c.computed).where(
                t.profiles.c.merged_into.is_(None)
            )
        ).all()
        owners = dict(
            conn.execute(
                sa.select(t.identities.c.value, t.identities.c.profile_id).where(
                    t.identities.c.type.in_(["anonymous_id", "user_id"])
                )
            ).all()
        )
    # 30 solo visitors and one profile per user.
    assert len(live) == 30 + users
    for profile_id, _traits, computed in live:
        # events_count is kept incrementally (refolded only at merges): an event applied
        # twice would show here.
        assert computed["events_count"] == per_profile[profile_id]
    by_id = {profile_id: traits for profile_id, traits, _ in live}
    for anon, step in last_step.items():
        assert by_id[owners[anon]]["step"] == step, anon
    for u in range(users):
        assert owners[f"user-{u}-a"] == owners[f"user-{u}-b"] == owners[f"user-{u}"]
        assert per_profile[owners[f"user-{u}"]] == 2 * (4 + 1 + 1)
    db.dispose()
