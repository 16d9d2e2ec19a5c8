"""Delivery: due messages are claimed, checked (consent, suppression, caps, quiet
hours), rendered once, handed to their channel, and their fate recorded.

Work is done per claimed batch, so that a broadcast costs little per message: what the
checks need (reach, suppressions, recent sends, journey caps) is read for the whole batch
in a fixed number of queries, rendering shares one read connection and its caches
(templates, people, products, popular products), and outcomes are written together, at
least every FLUSH_EVERY messages and every FLUSH_SECONDS, and at the end of the batch.
Three threads share the work: the worker claims, checks and renders; a sender thread
hands messages to their channel; a writer thread records outcomes, so that sending goes
on while the group before is written.
Messages are still checked, sent and recorded in their order: a message sent earlier in
the batch counts towards the caps of the next ones (an in-memory tally on top of what
was read), and an address found dead is suppressed for the next ones.

A claimed message is leased; a process that dies mid-send leaves it `sending` until the
lease runs out, then another process retries it with the same idempotency key (the
email's Message-ID, the providers' idempotency headers). Provider errors are retried
with doubling delays up to message_max_attempts, then the message fails with the reason;
a dead address (hard bounce, unknown push subscription) is suppressed on its channel.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Collection, Hashable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shopkeeper.clock import Clock
from shopkeeper.config import Settings
from shopkeeper.journeys import store as journey_store
from shopkeeper.messaging import content as content_mod
from shopkeeper.messaging import internal_events, links, messages, template_store, templates
from shopkeeper.messaging import rules as sending_rules
from shopkeeper.messaging.channels.base import (
    EMAIL,
    IN_APP,
    ONSITE,
    WEBHOOK,
    Channel,
    Outgoing,
    ProviderError,
)
from shopkeeper.messaging.messages import Message
from shopkeeper.messaging.policy import DAY, WEEK, Caps, cap_reason, quiet_until
from shopkeeper.messaging.reach import Reach, address, consented, load_reach_many
from shopkeeper.observability.metrics import Metrics
from shopkeeper.storage import tables as t
from shopkeeper.storage.db import Database, json_dumps
from shopkeeper.workloop import WorkLoop

log = logging.getLogger(__name__)

# Outcomes are written at least this often (messages, seconds): a crash re-sends at most
# the messages of the two groups not written yet (the one being written, the one being
# filled), with the same idempotency key.
FLUSH_EVERY = 100
FLUSH_SECONDS = 0.5
# drain() claims the next batch while the last one is still being sent, once at most
# this share of a batch waits to be sent (so a message waits for little more than one
# batch's sends between its claim and its send, well within its lease).
PREFETCH_SHARE = 0.5
# The background delivery loop drains for at most this long per step (then looks at
# its stop and wake signals, as after any step).
RUN_SECONDS = 5.0

# Timeline events written for what happens to messages (the pipeline applies them).
EVENT_NAMES = {
    "sent": "Message Sent",
    "delivered": "Message Delivered",
    "failed": "Message Failed",
    "opened": "Message Opened",
    "clicked": "Message Clicked",
    "unsubscribed": "Unsubscribed",
}


@dataclass(frozen=True)
class Decision:
    """What to do with a claimed message before rendering: send (to), defer until, or
    skip with a reason."""

    action: str  # send | defer | skip
    recipient: str = ""
    keys: Mapping[str, str] | None = None
    until: int = 0
    reason: str = ""


@dataclass
class Facts:
    """What the checks of a batch's messages are made from, read at once: each person's
    reach, the address each message would go to, suppressed addresses, the marketing
    messages sent to each person in the last day and week, each journey's own caps and
    its messages sent to each person (only where a journey caps them)."""

    reach: dict[int, Reach] = field(default_factory=dict)
    addresses: dict[int, tuple[str, dict[str, str]] | None] = field(default_factory=dict)
    suppressed: dict[tuple[str, str], str] = field(default_factory=dict)
    recent: dict[int, messages.Recent] = field(default_factory=dict)
    journey_recent: dict[tuple[int, int], tuple[int, int]] = field(default_factory=dict)
    journey_caps: dict[int, tuple[Caps, bool]] = field(default_factory=dict)
    # The shop's caps and quiet hours in force (saved in the UI, else the settings).
    rules: sending_rules.Rules | None = None


@dataclass
class Tally:
    """What this batch sent so far (not written yet, or written after the batch's reads):
    marketing messages per person and channel, and messages per person and journey."""

    marketing: dict[int, Counter[str]] = field(default_factory=dict)
    journeys: Counter[tuple[int, int]] = field(default_factory=Counter)

    def add(self, message: Message) -> None:
        if not message.transactional:
            self.marketing.setdefault(message.profile_id, Counter())[message.channel] += 1
        if message.journey_id is not None:
            self.journeys[(message.profile_id, message.journey_id)] += 1

    def counts(self, counts: Mapping[str, int], profile_id: int) -> dict[str, int]:
        """`counts` (per channel, "*" for all) with this batch's sends to the person."""
        out = dict(counts)
        out.setdefault("*", 0)
        for channel, n in self.marketing.get(profile_id, {}).items():
            out[channel] = out.get(channel, 0) + n
            out["*"] += n
        return out


@dataclass
class Outcome:
    """What became of one message, to be written: its row's new values, and the event
    (sent, delivered, failed) to record, if any; a dead address to suppress."""

    message: Message
    status: str
    values: dict[str, Any]
    reason: str | None = None
    suppress: tuple[str, str, str] | None = None  # channel, address, reason

    @property
    def kind(self) -> str | None:
        if self.status == messages.SENT:
            return "sent"
        if self.status in (messages.DELIVERED, messages.FAILED):
            return self.status
        return None


def _needs_counts(caps: Caps) -> bool:
    return bool(caps.per_channel_day or caps.per_channel_week or caps.all_day or caps.all_week)


class Deliverer:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        channels: Mapping[str, Channel],
        clock: Clock,
        metrics: Metrics | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.channels = dict(channels)
        self.clock = clock
        self.metrics = metrics

    def run_once(self, now_ms: int | None = None) -> int:
        """Deliver one batch of due messages; returns how many were handled (their
        outcomes written)."""
        with self._sending() as sender:
            return self._claim_and_deliver(sender, now_ms)

    def drain(
        self,
        now_ms: int | None = None,
        *,
        max_seconds: float | None = None,
        stop: threading.Event | None = None,
    ) -> int:
        """Deliver batch after batch until none is due; returns how many were handled.
        The next batch is claimed, checked and rendered while the last one is still
        being sent (at most PREFETCH_SHARE of a batch waits to be sent when it is
        claimed). No batch is claimed after `max_seconds` nor once `stop` is set: what
        was claimed is still sent and its outcomes written before returning."""
        total = 0
        ahead = max(1, int(self.settings.message_batch_size * PREFETCH_SHARE))
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        with self._sending() as sender:
            while True:
                sender.wait_backlog(ahead)
                done = self._claim_and_deliver(sender, now_ms)
                if done == 0:
                    if total == 0:
                        return 0  # nothing sent here: nothing was made due again
                    # What is still being sent may make messages due again (retries):
                    # look once more after it is written, as one batch after another did.
                    sender.wait_written()
                    done = self._claim_and_deliver(sender, now_ms)
                    if done == 0:
                        return total
                total += done
                if stop is not None and stop.is_set():
                    return total
                if deadline is not None and time.monotonic() >= deadline:
                    return total

    def deliver(self, message: Message, now: int) -> None:
        """Deliver one claimed message (a batch of one)."""
        with self._sending() as sender:
            self._deliver_batch(sender, [message], now)

    # -- a batch ------------------------------------------------------------------------

    @contextmanager
    def _sending(self) -> Iterator[_Sender]:
        """A sender thread for as long as inside; on the way out (an error too) what was
        handed to it is sent and its outcomes written before returning."""
        sender = _Sender(self)
        try:
            yield sender
        except BaseException:
            sender.close(raise_error=False)
            raise
        sender.close()

    def _claim_and_deliver(self, sender: _Sender, now_ms: int | None) -> int:
        now = self.clock.now_ms() if now_ms is None else now_ms
        lease_ms = self.settings.message_lease_seconds * 1000
        claimed = messages.claim_due(self.db, now, self.settings.message_batch_size, lease_ms)
        if claimed:
            self._deliver_batch(sender, claimed, now)
        return len(claimed)

    def _deliver_batch(self, sender: _Sender, claimed: Sequence[Message], now: int) -> None:
        """Check and render each message in order and hand it to the sender, which sends
        it and writes the outcomes in groups (the last at the end of the batch)."""
        try:
            with self.db.read() as conn:
                batch = _Batch(self, conn, claimed, now, sender)
                for message in claimed:
                    sender.put(batch.deliver(message))
                    _let_others_run()
        finally:
            sender.end_batch()

    def decide(self, message: Message, now: int) -> Decision:
        """What to do with one claimed message, read on its own."""
        with self.db.read() as conn:
            facts = self._facts(conn, [message], now, {message.profile_id: [message.id]})
        return self._decide(message, now, facts, Tally())

    def _facts(
        self,
        conn: Connection,
        batch: Sequence[Message],
        now: int,
        exclude: Mapping[int, Collection[int]],
    ) -> Facts:
        """The facts for these messages, in a fixed number of queries (one more per
        journey named). `exclude`: per person, message ids whose sends are not counted
        (the batch's: this batch counts its own sends in its Tally)."""
        facts = Facts()
        people = [m for m in batch if m.channel != WEBHOOK]
        if not people:
            return facts
        region = self.settings.default_phone_region
        facts.rules = sending_rules.load(conn, self.settings)
        facts.reach = load_reach_many(conn, [m.profile_id for m in people])
        for m in people:
            facts.addresses[m.id] = address(facts.reach[m.profile_id], m.channel, region)
        facts.suppressed = messages.suppressed_many(
            conn, {(m.channel, found[0]) for m in people if (found := facts.addresses[m.id])}
        )
        # Marketing messages that get as far as the caps.
        capped = [
            m
            for m in people
            if not m.transactional
            and (found := facts.addresses[m.id]) is not None
            and consented(facts.reach[m.profile_id], m.channel)
            and (m.channel, found[0]) not in facts.suppressed
        ]
        for journey_id in sorted({m.journey_id for m in capped if m.journey_id is not None}):
            facts.journey_caps[journey_id] = self._journey_caps(conn, journey_id, facts.rules.caps)
        counted = [m for m in capped if not self._caps_of(facts, m)[1]]
        marketing = {m.profile_id for m in counted if _needs_counts(self._caps_of(facts, m)[0])}
        if marketing:
            facts.recent = messages.sent_counts_many(
                conn, marketing, day_since=now - DAY, week_since=now - WEEK, exclude=exclude
            )
        pairs = set()
        for m in counted:
            caps = self._caps_of(facts, m)[0]
            if m.journey_id is not None and (caps.journey_day or caps.journey_week):
                pairs.add((m.profile_id, m.journey_id))
        if pairs:
            facts.journey_recent = messages.journey_sent_counts_many(
                conn, pairs, day_since=now - DAY, week_since=now - WEEK, exclude=exclude
            )
        return facts

    def _journey_caps(self, conn: Connection, journey_id: int, shop: Caps) -> tuple[Caps, bool]:
        """The shop's caps with the journey's own on top (or none, if it says ignore)."""
        journey = journey_store.journey_by_id(conn, journey_id)
        if journey is None:
            return shop, False
        definition = journey_store.definition(conn, journey.id, journey.version)
        own = definition.caps or {}
        if own.get("ignore"):
            return shop, True
        return (
            Caps(
                shop.per_channel_day,
                shop.per_channel_week,
                shop.all_day,
                shop.all_week,
                int(own.get("per_day", 0)),
                int(own.get("per_week", 0)),
            ),
            False,
        )

    def _rules(self, facts: Facts) -> sending_rules.Rules:
        return facts.rules or sending_rules.defaults(self.settings)

    def _caps_of(self, facts: Facts, message: Message) -> tuple[Caps, bool]:
        shop = self._rules(facts).caps
        if message.journey_id is None:
            return shop, False
        return facts.journey_caps.get(message.journey_id, (shop, False))

    def _decide(self, message: Message, now: int, facts: Facts, tally: Tally) -> Decision:
        """Send (to), defer or skip: consent, suppression, caps (what was read plus what
        this batch sent), quiet hours, in this order."""
        if message.channel == WEBHOOK:
            return Decision("send", recipient=message.recipient or "")
        reach = facts.reach[message.profile_id]
        if not reach.exists:
            return Decision("skip", reason="the person was erased")
        found = facts.addresses[message.id]
        if found is None:
            return Decision("skip", reason=f"no {message.channel.replace('_', ' ')} address")
        recipient, keys = found
        if not message.transactional and not consented(reach, message.channel):
            return Decision("skip", reason=f"no consent for {message.channel.replace('_', ' ')}")
        suppressed = facts.suppressed.get((message.channel, recipient))
        if suppressed is not None:
            return Decision("skip", reason=f"suppressed: {suppressed}")
        if message.transactional:
            return Decision("send", recipient=recipient, keys=keys)
        caps, ignore = self._caps_of(facts, message)
        if not ignore:
            recent = facts.recent.get(message.profile_id) or messages.Recent({}, {})
            day = tally.counts(recent.day, message.profile_id)
            week = tally.counts(recent.week, message.profile_id)
            jday = jweek = 0
            if message.journey_id is not None and (caps.journey_day or caps.journey_week):
                pair = (message.profile_id, message.journey_id)
                jday, jweek = facts.journey_recent.get(pair, (0, 0))
                jday += tally.journeys[pair]
                jweek += tally.journeys[pair]
            reason = cap_reason(message.channel, day, week, caps, jday, jweek)
            if reason is not None:
                return Decision("skip", reason=reason)
        timezone = reach.profile.computed.get("timezone")
        if not isinstance(timezone, str):
            timezone = self.settings.default_timezone
        rules = self._rules(facts)
        until = quiet_until(now, timezone, rules.quiet_hours_start, rules.quiet_hours_end)
        if until is not None:
            if rules.quiet_hours_action == "skip":
                return Decision("skip", reason="quiet hours")
            return Decision("defer", until=until, reason="deferred: quiet hours")
        return Decision("send", recipient=recipient, keys=keys)

    # -- rendering ----------------------------------------------------------------------

    def render(self, message: Message, now: int) -> tuple[dict[str, Any], str]:
        """One message's content and the locale of the variant used."""
        with self.db.read() as conn:
            return _Renderer(self, conn, [message], now).render(message)

    def _unsubscribe_url(self, message: Message) -> str:
        return links.tracking_urls(
            self.settings.public_url, message.id, self.settings.link_secret
        ).unsubscribe

    # -- recording ----------------------------------------------------------------------

    def _outcome(
        self,
        message: Message,
        now: int,
        *,
        status: str,
        reason: str | None = None,
        send_at: int | None = None,
        content: Mapping[str, Any] | None = None,
        locale: str | None = None,
        recipient: str | None = None,
        provider_id: str | None = None,
        sent: bool = False,
        suppress: tuple[str, str, str] | None = None,
    ) -> Outcome:
        values: dict[str, Any] = {"status": status, "reason": reason, "lease_until": None}
        if send_at is not None:
            values["send_at"] = send_at
        if content is not None:
            values["content"] = dict(content)
        if locale is not None:
            values["locale"] = locale
        if recipient:
            values["recipient"] = recipient[:2000]
        if provider_id:
            values["provider_id"] = provider_id[:300]
        if sent:
            values["sent_at"] = now
        return Outcome(message, status, values, reason, suppress)

    def _failed(
        self,
        message: Message,
        exc: ProviderError,
        recipient: str,
        content: Mapping[str, Any],
        locale: str | None,
        now: int,
    ) -> Outcome:
        """The outcome of a provider's refusal: a retry later while attempts are left
        and trying again can help, else a failure; a dead address to suppress."""
        dead = (message.channel, recipient, exc.reason) if exc.dead_address else None
        if exc.retryable and message.attempts < self.settings.message_max_attempts:
            delay = self.settings.message_retry_seconds * 1000 * 2 ** (message.attempts - 1)
            return self._outcome(
                message,
                now,
                status=messages.QUEUED,
                reason=f"retrying: {exc.reason}",
                send_at=now + delay,
                content=content,
                locale=locale,
                suppress=dead,
            )
        return self._outcome(
            message,
            now,
            status=messages.FAILED,
            reason=exc.reason,
            content=content,
            locale=locale,
            recipient=recipient,
            suppress=dead,
        )

    def _write(self, outcomes: Sequence[Outcome], now: int) -> None:
        """Write outcomes in one transaction; when that fails, one by one (so that one
        bad outcome does not lose the others)."""
        if not outcomes:
            return
        try:
            with self.db.write() as conn:
                self._write_all(conn, outcomes, now)
        except Exception:
            log.exception(
                "writing %d message outcomes failed; writing them one by one", len(outcomes)
            )
            self._write_each(outcomes, now)
            return
        self._count(outcomes)

    def _write_all(self, conn: Connection, outcomes: Sequence[Outcome], now: int) -> None:
        dead: dict[tuple[str, str], tuple[str, str, str]] = {}
        for outcome in outcomes:
            if outcome.suppress is not None:
                dead.setdefault(outcome.suppress[:2], outcome.suppress)
        messages.suppress_many(conn, self.db, dead.values(), now)
        _update_messages(conn, outcomes)
        recorded = [(o, kind) for o in outcomes if (kind := o.kind) is not None]
        messages.record_events(
            conn,
            (
                (o.message.id, kind, now, {"reason": o.reason} if o.reason else {})
                for o, kind in recorded
            ),
        )
        internal_events.track_many(
            conn, self.db, [_timeline_track(o.message, kind, now) for o, kind in recorded]
        )

    def _write_each(self, outcomes: Sequence[Outcome], now: int) -> None:
        """Each outcome in its own transaction, as a message's would be on its own; one
        that cannot be written fails its message with the error (as any error while
        delivering it would). Raises the last error when even that cannot be written."""
        error: Exception | None = None
        for outcome in outcomes:
            try:
                if outcome.suppress is not None:
                    channel, recipient, reason = outcome.suppress
                    with self.db.write() as conn:
                        messages.suppress(conn, self.db, channel, recipient, reason, now)
                with self.db.write() as conn:
                    self._write_one(conn, outcome, now)
                self._count([outcome])
                continue
            except Exception as exc:
                log.exception("message %s: its outcome could not be written", outcome.message.id)
                failed = self._outcome(
                    outcome.message, now, status=messages.FAILED, reason=f"internal error: {exc}"
                )
            try:
                with self.db.write() as conn:
                    self._write_one(conn, failed, now)
                self._count([failed])
            except Exception as exc:
                log.exception("message %s: its failure could not be written", outcome.message.id)
                error = exc
        if error is not None:
            raise error

    def _write_one(self, conn: Connection, outcome: Outcome, now: int) -> None:
        messages.update(conn, outcome.message.id, **outcome.values)
        kind = outcome.kind
        if kind is not None:
            detail = {"reason": outcome.reason} if outcome.reason else {}
            messages.record_event(conn, outcome.message.id, kind, now, detail)
            timeline(conn, self.db, outcome.message, kind, now)

    def _count(self, outcomes: Sequence[Outcome]) -> None:
        if self.metrics is not None:
            for outcome in outcomes:
                self.metrics.messages.labels(outcome.message.channel, outcome.status).inc()


def _update_messages(conn: Connection, outcomes: Sequence[Outcome]) -> None:
    """The messages' rows as their outcomes say. PostgreSQL: one statement per set of
    changed columns, over arrays (not one per message, as an executemany runs)."""
    if conn.dialect.name != "postgresql":
        messages.update_many(conn, ((o.message.id, o.values) for o in outcomes))
        return
    groups: dict[tuple[str, ...], list[Outcome]] = {}
    for outcome in outcomes:
        groups.setdefault(tuple(sorted(outcome.values)), []).append(outcome)
    for names, group in groups.items():
        params: dict[str, list[Any]] = {"ids": [o.message.id for o in group]}
        for n, name in enumerate(names):
            values = [o.values[name] for o in group]
            if _PG_ARRAY_TYPES[name] == "JSONB":
                values = [json_dumps(value) for value in values]  # None too: JSON's null
            params[f"v{n}"] = values
        conn.execute(_pg_update_statement(names), params)


# The array type each column of `messages` that an outcome sets is sent as (TEXT for
# strings: the column's own length check applies on assignment, as before).
_PG_ARRAY_TYPES = {
    column.name: "JSONB"
    if isinstance(column.type, sa.JSON)
    else "BOOLEAN"
    if isinstance(column.type, sa.Boolean)
    else "BIGINT"
    if isinstance(column.type, sa.Integer)
    else "TEXT"
    for column in t.messages.columns
}


@functools.lru_cache(maxsize=64)
def _pg_update_statement(names: tuple[str, ...]) -> sa.TextClause:
    columns = ", ".join(f"{name} = u.{name}" for name in names)
    arrays = ", ".join(f"CAST(:v{n} AS {_PG_ARRAY_TYPES[name]}[])" for n, name in enumerate(names))
    return sa.text(
        f"UPDATE messages AS m SET {columns} FROM unnest(CAST(:ids AS BIGINT[]), {arrays}) "
        f"AS u(id, {', '.join(names)}) WHERE m.id = u.id"
    )


@dataclass(eq=False)
class _Job:
    """One message handed to the sender: to send (`outgoing`), or only to record (its
    `outcome` decided already). `keys`: what later checks depend on (the person, the
    address). `batch`: the batch it belongs to."""

    message: Message
    now: int
    batch: _Batch
    keys: tuple[Hashable, ...]
    outcome: Outcome | None = None
    outgoing: Outgoing | None = None
    locale: str | None = None


class _Batch:
    """One claimed batch being delivered: its facts (read when first needed), what it
    sent so far, and the renderer its messages share."""

    def __init__(
        self,
        deliverer: Deliverer,
        conn: Connection,
        claimed: Sequence[Message],
        now: int,
        sender: _Sender,
    ) -> None:
        self.d = deliverer
        self.conn = conn
        self.claimed = claimed
        self.now = now
        self.sender = sender
        self.tally = Tally()
        # Addresses found dead while sending this batch (not written yet, perhaps).
        self.dead: dict[tuple[str, str], str] = {}
        self._facts: Facts | None = None
        self._each = False  # the batch's facts could not be read: each message's instead
        self.exclude: dict[int, list[int]] = {}
        for message in claimed:
            self.exclude.setdefault(message.profile_id, []).append(message.id)
        self.renderer = _Renderer(deliverer, conn, claimed, now)

    def facts(self, message: Message) -> Facts:
        """The batch's facts; when they cannot be read for the whole batch, this
        message's own (so that one person's broken data fails only their message)."""
        if self._facts is None and not self._each:
            try:
                self._facts = self._read(self.claimed)
            except Exception:
                log.exception("the checks' facts could not be read for the batch")
                self.conn.rollback()
                self._each = True
        if self._facts is None:
            own = self._read([message])
            self._remember_dead(own)
            return own
        self._remember_dead(self._facts)
        return self._facts

    def _read(self, wanted: Sequence[Message]) -> Facts:
        """The facts of these messages, as they are once every message handed to the
        sender earlier about the same people or addresses is written: when some are not
        yet (a person with two messages in two batches), wait for them and read again."""
        before = self.sender.unwritten()  # taken before reading: written since is covered
        facts = self.d._facts(self.conn, wanted, self.now, self.exclude)
        if before and any(key in before for m in wanted for key in _keys(m, facts)):
            self.conn.rollback()
            self.sender.wait_written()
            facts = self.d._facts(self.conn, wanted, self.now, self.exclude)
        return facts

    def _remember_dead(self, facts: Facts) -> None:
        for pair, reason in self.dead.items():
            facts.suppressed.setdefault(pair, reason)

    def _catch_up(self) -> None:
        """What the sender did with this batch's messages so far, into the tally (sends)
        and the dead addresses."""
        for job, outcome in self.sender.take_resolved():
            if job.batch is self:
                self.noted(outcome)

    def noted(self, outcome: Outcome) -> None:
        if "sent_at" in outcome.values:
            self.tally.add(outcome.message)
        if outcome.suppress is not None:
            channel, recipient, reason = outcome.suppress
            # Later messages of the batch see it, as they would once it is written.
            self.dead.setdefault((channel, recipient[:2000]), reason[:200])

    def deliver(self, message: Message) -> _Job:
        """Check and render one message: the job for the sender (an error fails it)."""
        keys: tuple[Hashable, ...] = (message.profile_id,)
        try:
            facts = self.facts(message)
            keys = _keys(message, facts)
            if self.sender.in_flight(keys):
                # Its checks depend on how an earlier message of the batch fares (a
                # send counts towards the caps, a hard bounce suppresses the address).
                self.conn.rollback()  # no read transaction open while waiting
                self.sender.wait_resolved(keys)
            self._catch_up()
            self._remember_dead(facts)
            job = self._deliver(message, facts, keys)
        except Exception as exc:  # one broken message must not stop the others
            if self.sender.failed:
                raise  # the sender stopped: nothing more can be sent nor recorded
            log.exception("message %s could not be delivered", message.id)
            self.conn.rollback()
            failed = self.d._outcome(
                message, self.now, status=messages.FAILED, reason=f"internal error: {exc}"
            )
            job = _Job(message, self.now, self, keys, outcome=failed)
        if job.outcome is not None:
            self.noted(job.outcome)
        return job

    def _deliver(self, message: Message, facts: Facts, keys: tuple[Hashable, ...]) -> _Job:
        d, now = self.d, self.now

        def done(outcome: Outcome) -> _Job:
            return _Job(message, now, self, keys, outcome=outcome)

        decision = d._decide(message, now, facts, self.tally)
        if decision.action == "skip":
            return done(d._outcome(message, now, status=messages.SKIPPED, reason=decision.reason))
        if decision.action == "defer":
            return done(
                d._outcome(
                    message,
                    now,
                    status=messages.QUEUED,
                    reason=decision.reason,
                    send_at=decision.until,
                )
            )
        content = message.content
        locale = message.locale
        unsubscribe_url = None if message.transactional else d._unsubscribe_url(message)
        if content is None:
            try:
                content, locale = self.renderer.render(message, unsubscribe_url)
            except (templates.RenderError, LookupError, ValueError) as exc:
                return done(
                    d._outcome(
                        message, now, status=messages.SKIPPED, reason=f"could not render: {exc}"
                    )
                )
        if message.channel in (IN_APP, ONSITE):
            # Shown when the person next opens the app or the site: it is in their inbox.
            return done(
                d._outcome(
                    message,
                    now,
                    status=messages.DELIVERED,
                    content=content,
                    locale=locale,
                    recipient=decision.recipient,
                    sent=True,
                )
            )
        if message.channel not in d.channels:
            return done(
                d._outcome(
                    message,
                    now,
                    status=messages.FAILED,
                    reason=f"no {message.channel} channel set up",
                )
            )
        outgoing = Outgoing(
            message_id=message.id,
            idempotency_key=message.idempotency_key,
            channel=message.channel,
            recipient=decision.recipient,
            content=content,
            keys=decision.keys or {},
            unsubscribe_url=unsubscribe_url,
        )
        return _Job(message, now, self, keys, outgoing=outgoing, locale=locale)


def _let_others_run() -> None:
    """Gives up the GIL for a moment. Checking and rendering are pure Python: left to
    itself, the worker would keep the GIL for up to the interpreter's switch interval
    (5 ms) each time the sender's channel has answered and the sender wants to go on,
    which is several times per message (an SMTP conversation is four exchanges). Given
    up every tenth of a millisecond or so (after each message, and between the steps of
    rendering one), the sender goes on at once, and sending really overlaps the work of
    the next messages."""
    time.sleep(0)


def _forget(counts: Counter[Hashable], keys: Iterable[Hashable]) -> None:
    for key in keys:
        counts[key] -= 1
        if counts[key] <= 0:
            del counts[key]


def _keys(message: Message, facts: Facts) -> tuple[Hashable, ...]:
    """What the checks of `message` depend on that sending other messages can change:
    its person (caps count what they were sent) and its address (a hard bounce
    suppresses it)."""
    found = facts.addresses.get(message.id)
    if found is None:
        return (message.profile_id,)
    return (message.profile_id, (message.channel, found[0][:2000]))


class _Sender:
    """Sends and records beside the worker, so that waiting for the provider overlaps
    the checking and rendering of the next messages (and the worker's waiting for the
    database). The worker checks and renders messages in order and hands them over
    (`put`); the sender thread sends them in the same order, one at a time, and hands
    their outcomes in groups (at least every FLUSH_EVERY messages and FLUSH_SECONDS, and
    at the end of each batch) to the writer thread, which writes them in that order
    while the next group is sent. One group at most waits for the writer: the sender
    waits before handing over another.

    A message is recorded as sent only once its channel took it (its outcome is made
    from the channel's answer), with its idempotency key unchanged; a crash leaves
    what was not written yet `sending` until its lease runs out, as before. What a later
    message's checks depend on is waited for: the worker asks `wait_resolved` for the
    person and address of a message before deciding it (a send counts towards their
    caps, a hard bounce suppresses the address), and `wait_written` before it reads the
    facts of people or addresses still in flight from an earlier batch."""

    def __init__(self, deliverer: Deliverer) -> None:
        self.d = deliverer
        self._cond = threading.Condition()
        self._jobs: deque[_Job | None] = deque()  # None: the end of a batch
        self._backlog = 0  # jobs handed over and not sent yet
        self._unresolved: Counter[Hashable] = Counter()
        self._unwritten: Counter[Hashable] = Counter()
        self._resolved: list[tuple[_Job, Outcome]] = []
        self._flush = False  # the worker waits for everything to be written
        self._closing = False
        # Groups of outcomes handed to the writer; the first leaves once written.
        self._groups: deque[list[tuple[_Job, Outcome]]] = deque()
        self._sent_all = False  # the sender thread ended: the writer ends once done
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="delivery-sender", daemon=True)
        self._writer = threading.Thread(
            target=self._run_writer, name="delivery-writer", daemon=True
        )
        self._thread.start()
        self._writer.start()

    # -- the worker's side --------------------------------------------------------------

    def put(self, job: _Job) -> None:
        with self._cond:
            self._check()
            self._jobs.append(job)
            self._backlog += 1
            if job.outcome is None:
                self._unresolved.update(job.keys)
            self._unwritten.update(job.keys)
            self._cond.notify_all()

    def end_batch(self) -> None:
        with self._cond:
            self._jobs.append(None)
            self._cond.notify_all()

    def in_flight(self, keys: Iterable[Hashable]) -> bool:
        with self._cond:
            return any(self._unresolved[key] for key in keys)

    def unwritten(self) -> frozenset[Hashable]:
        with self._cond:
            return frozenset(self._unwritten)

    def take_resolved(self) -> list[tuple[_Job, Outcome]]:
        with self._cond:
            found, self._resolved = self._resolved, []
        return found

    def wait_resolved(self, keys: Iterable[Hashable]) -> None:
        wanted = tuple(keys)
        with self._cond:
            while self._check() and any(self._unresolved[key] for key in wanted):
                self._cond.wait()

    def wait_backlog(self, limit: int) -> None:
        """Until at most `limit` handed-over messages wait to be sent."""
        with self._cond:
            while self._check() and self._backlog > limit:
                self._cond.wait()

    def wait_written(self) -> None:
        """Until everything handed over is sent and its outcome written."""
        with self._cond:
            self._flush = True
            self._cond.notify_all()
            while self._check() and self._unwritten:
                self._cond.wait()
            self._flush = False

    def close(self, *, raise_error: bool = True) -> None:
        """Send and record what was handed over, and stop; raises what stopped the
        sender, if anything did."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join()
        self._writer.join()
        if raise_error:
            with self._cond:
                self._check()

    @property
    def failed(self) -> bool:
        return self._error is not None

    def _check(self) -> bool:
        if self._error is not None:
            raise self._error
        return True

    # -- the thread ---------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # handed to the worker, which raises it
            log.exception("the delivery sender stopped")
            with self._cond:
                self._error = self._error or exc
                self._cond.notify_all()
        finally:
            with self._cond:
                self._sent_all = True
                self._cond.notify_all()

    def _loop(self) -> None:
        pending: list[tuple[_Job, Outcome]] = []
        flushed = time.monotonic()
        while True:
            with self._cond:
                while not self._jobs and not self._closing and not (pending and self._flush):
                    if not pending:
                        self._cond.wait()
                        continue
                    left = FLUSH_SECONDS - (time.monotonic() - flushed)
                    if left <= 0:
                        break
                    self._cond.wait(left)
                self._check()  # the writer stopped: send nothing it cannot record
                job = self._jobs.popleft() if self._jobs else None
                stop = job is None and self._closing and not self._jobs
            if job is None:  # a batch's end, a flush asked for or due, or the end
                self._hand_over(pending)
                pending = []
                flushed = time.monotonic()
                if stop:
                    return
                continue
            outcome = job.outcome if job.outcome is not None else self._send(job)
            with self._cond:
                self._backlog -= 1
                if job.outcome is None:
                    _forget(self._unresolved, job.keys)
                    self._resolved.append((job, outcome))
                self._cond.notify_all()
            pending.append((job, outcome))
            if len(pending) >= FLUSH_EVERY or time.monotonic() - flushed >= FLUSH_SECONDS:
                self._hand_over(pending)
                pending = []
                flushed = time.monotonic()

    def _send(self, job: _Job) -> Outcome:
        d, message, now, outgoing = self.d, job.message, job.now, job.outgoing
        assert outgoing is not None
        try:
            delivered = d.channels[message.channel].send(outgoing)
        except ProviderError as exc:
            return d._failed(message, exc, outgoing.recipient, outgoing.content, job.locale, now)
        except Exception as exc:  # one broken message must not stop the others
            log.exception("message %s could not be delivered", message.id)
            return d._outcome(message, now, status=messages.FAILED, reason=f"internal error: {exc}")
        return d._outcome(
            message,
            now,
            status=messages.SENT,
            content=outgoing.content,
            locale=job.locale,
            recipient=outgoing.recipient,
            provider_id=delivered.provider_id,
            sent=True,
        )

    def _hand_over(self, pending: list[tuple[_Job, Outcome]]) -> None:
        """The outcomes to the writer, once it wrote the group before."""
        if not pending:
            return
        with self._cond:
            while self._check() and self._groups:
                self._cond.wait()
            self._groups.append(pending)
            self._cond.notify_all()

    # -- the writer thread --------------------------------------------------------------

    def _run_writer(self) -> None:
        try:
            while True:
                with self._cond:
                    while not self._groups and not self._sent_all:
                        self._cond.wait()
                    if not self._groups:
                        return
                    group = self._groups[0]
                self._write(group)
                with self._cond:
                    self._groups.popleft()
                    self._cond.notify_all()
        except BaseException as exc:  # handed to the worker (and the sender)
            log.exception("the delivery writer stopped")
            with self._cond:
                self._error = self._error or exc
                self._cond.notify_all()

    def _write(self, pending: Sequence[tuple[_Job, Outcome]]) -> None:
        start = 0
        while start < len(pending):  # a group per batch moment (one, but for safety)
            now = pending[start][0].now
            end = start
            while end < len(pending) and pending[end][0].now == now:
                end += 1
            self.d._write([outcome for _job, outcome in pending[start:end]], now)
            with self._cond:
                for job, _outcome in pending[start:end]:
                    _forget(self._unwritten, job.keys)
                self._cond.notify_all()
            start = end


class _Renderer:
    """Renders the messages of a batch on one read connection: template variants read
    once per (template, channel), people and products read for the whole batch when
    the first message is rendered, recommendations only for templates that read them
    (popular products read once per category and exclusions)."""

    def __init__(
        self, deliverer: Deliverer, conn: Connection, batch: Sequence[Message], now: int
    ) -> None:
        self.d = deliverer
        self.conn = conn
        self.batch = batch
        self.now = now
        self._variants: dict[tuple[str, str], dict[str, dict[str, str]]] = {}
        self._loader: content_mod.ContextLoader | None = None

    def loader(self) -> content_mod.ContextLoader:
        if self._loader is None:
            self._loader = content_mod.ContextLoader(self.conn, self.d.settings, self.now)
            wanted = [m for m in self.batch if m.content is None and m.template]
            products = [
                str(product)
                for m in wanted
                if isinstance(product := m.variables.get("product_id"), str | int)
                and not isinstance(product, bool)
                and str(product)
            ]
            try:
                self._loader.prefetch([m.profile_id for m in wanted], products)
            except Exception:
                # Read per message instead (where an error fails only that message).
                log.exception("people and products could not be read for the batch")
                self.conn.rollback()
        return self._loader

    def variants(self, template: str, channel: str) -> dict[str, dict[str, str]]:
        key = (template, channel)
        found = self._variants.get(key)
        if found is None:
            found = self._variants[key] = template_store.get_variants(self.conn, template, channel)
        return found

    def render(
        self, message: Message, unsubscribe_url: str | None = None
    ) -> tuple[dict[str, Any], str]:
        """The message's content and its variant's locale. Raises RenderError,
        LookupError (no such person, no variant) or ValueError."""
        settings = self.d.settings
        if message.channel == WEBHOOK and not message.template:
            payload = {
                "message_id": message.id,
                "profile_id": message.profile_id,
                "journey": message.variables.get("journey"),
                "step": message.step,
                "variables": dict(message.variables),
            }
            return {"payload": payload}, ""
        if not message.template:
            raise ValueError("the message names no template")
        variants = self.variants(message.template, message.channel)
        loader = self.loader()
        context = loader.context(
            message.profile_id,
            variables=message.variables,
            channel=message.channel,
            journey_key=message.variables.get("journey"),
            recommendations=False,
        )
        _let_others_run()
        locale, parts = templates.pick_variant(
            variants, context.get("locale"), settings.default_locale
        )
        if templates.reads(parts, "recommendations"):
            context["recommendations"] = loader.recommend(context)
        if not message.transactional:
            context["unsubscribe_url"] = unsubscribe_url or self.d._unsubscribe_url(message)
        rendered = templates.render(
            parts,
            context,
            locale=str(context.get("locale") or settings.default_locale),
            currency=str(context.get("currency") or settings.shop_currency),
            timezone=str(context.get("timezone") or settings.default_timezone),
        )
        _let_others_run()
        if message.channel == EMAIL and rendered.get("html"):
            rendered["html"] = links.rewrite_html(
                rendered["html"], settings.public_url, message.id, settings.link_secret
            )
        return rendered, locale


def _timeline_track(message: Message, kind: str, now: int, **extra: Any) -> internal_events.Track:
    return internal_events.Track(
        message.profile_id,
        EVENT_NAMES[kind],
        {
            "message_id": message.id,
            "channel": message.channel,
            "template": message.template,
            "journey": message.variables.get("journey"),
            "step": message.step,
            **extra,
        },
        message_id=f"message-{message.id}-{kind}",
        now_ms=now,
    )


def timeline(conn: Any, db: Database, message: Message, kind: str, now: int, **extra: Any) -> None:
    """The message event as an event on the person's timeline."""
    track = _timeline_track(message, kind, now, **extra)
    internal_events.track(
        conn,
        db,
        track.profile_id,
        track.event,
        track.properties,
        message_id=track.message_id,
        now_ms=track.now_ms,
    )


class DeliveryRunner(WorkLoop):
    """Delivers while there is work; sleeps until woken (a journey queued a message in
    this process) or `idle_seconds` pass (messages queued elsewhere, retries due). Each
    step drains for at most `run_seconds`; stop() ends it after the batch in hand."""

    def __init__(
        self, deliverer: Deliverer, idle_seconds: float, run_seconds: float = RUN_SECONDS
    ) -> None:
        super().__init__("delivery", self._drain, idle_seconds)
        self.deliverer = deliverer
        self.run_seconds = run_seconds

    def _drain(self) -> int:
        """Batch after batch, the next claimed and rendered while the last is sent, for
        at most run_seconds or until asked to stop."""
        return self.deliverer.drain(max_seconds=self.run_seconds, stop=self._stop)

    def stop(self) -> None:
        super().stop()
        for channel in self.deliverer.channels.values():
            close: Callable[[], None] | None = getattr(channel, "close", None)
            if close is not None:
                close()
