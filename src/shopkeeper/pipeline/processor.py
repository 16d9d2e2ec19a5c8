"""The pipeline: claim pending events, resolve identities, update profiles, mark applied.

One batch is one transaction: the events' identities, profile changes and their
`applied` marks commit together, so an event is applied exactly once even if the process
dies at any moment. A batch that fails on a database conflict (another worker, a
deadlock) is retried; one that fails on an event's own content is replayed event by
event so that only the poison event is parked, with its error, and the rest go on.
"""

from __future__ import annotations

import logging
import random
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shopkeeper.clock import Clock
from shopkeeper.config import Settings
from shopkeeper.identity.identifiers import Identifier, IdentifierExtractor, JunkFilter
from shopkeeper.identity.resolver import Resolver
from shopkeeper.identity.store import KNOWN_TYPES, IdentityStore
from shopkeeper.ingest import log as event_log
from shopkeeper.ingest.log import LoggedEvent
from shopkeeper.ingest.sources import source_names
from shopkeeper.observability.metrics import Metrics
from shopkeeper.privacy.suppression import SuppressionFilter
from shopkeeper.profiles.consents import extract_consents
from shopkeeper.profiles.model import EventView, ReducerConfig
from shopkeeper.profiles.reducers import ComputedReducer
from shopkeeper.profiles.store import ProfileState, ProfileStore, StaleProfile
from shopkeeper.profiles.traits import apply_traits
from shopkeeper.storage.db import Database
from shopkeeper.timeutil import ms_to_iso

log = logging.getLogger(__name__)

_BATCH_ATTEMPTS = 3
_EVENT_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class AppliedEvent:
    seq: int
    profile_id: int
    event: EventView


@dataclass(slots=True)
class BatchChanges:
    """What a batch did, for the steps that follow identity and profiles (segments,
    journeys). Hooks run inside the batch's transaction, before its commit."""

    applied: list[AppliedEvent] = field(default_factory=list)
    # (survivor, absorbed) pairs, in the order they happened.
    merges: list[tuple[int, int]] = field(default_factory=list)
    changed_profiles: set[int] = field(default_factory=set)


class BatchHook(Protocol):
    def after_batch(self, conn: Connection, changes: BatchChanges, now_ms: int) -> None: ...


def _is_poison(exc: BaseException) -> bool:
    """Whether the event itself is the problem (retrying will not help)."""
    if isinstance(exc, StaleProfile):
        return False
    if isinstance(exc, sa.exc.DataError):
        return True  # the database refuses the content (a value it cannot store)
    return not isinstance(exc, sa.exc.DBAPIError)


class Processor:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        clock: Clock,
        metrics: Metrics | None = None,
        hooks: Sequence[BatchHook] = (),
    ) -> None:
        self.db = db
        self.clock = clock
        self.metrics = metrics
        self.hooks = list(hooks)
        self.batch_size = settings.pipeline_batch_size
        self.extractor = IdentifierExtractor(
            JunkFilter(settings.junk_identifiers), settings.default_phone_region
        )
        self.resolver = Resolver(settings.identity_limits, settings.identity_limit_default)
        self.reducer = ComputedReducer(
            ReducerConfig(
                shop_currency=settings.shop_currency,
                exchange_rates=dict(settings.exchange_rates),
                session_timeout_ms=settings.session_timeout_minutes * 60_000,
            )
        )
        self._sources: dict[int, tuple[str, str]] = {}
        self.suppression = SuppressionFilter(metrics)

    # -- public ----------------------------------------------------------------------------

    def run_once(self) -> int:
        """Apply one batch of pending events. Returns how many events it finished
        (applied or parked); 0 when nothing is pending (or all is locked by others)."""
        events: list[LoggedEvent] = []
        for attempt in range(_BATCH_ATTEMPTS):
            started = time.perf_counter()
            try:
                with self.db.write() as conn:
                    events = event_log.claim(self.db, conn, self.batch_size)
                    if not events:
                        return 0
                    self._apply(conn, events)
            except Exception as exc:
                if not events:
                    raise
                if _is_poison(exc):
                    log.info("batch failed on an event's content (%s); isolating it", exc)
                    return self._one_by_one(events)
                log.info("batch conflict (attempt %d): %s", attempt + 1, exc)
                time.sleep(random.uniform(0.005, 0.05) * (attempt + 1))
                continue
            if self.metrics is not None:
                self.metrics.events_processed.inc(len(events))
                self.metrics.batch_seconds.set(time.perf_counter() - started)
            return len(events)
        return self._one_by_one(events)

    def drain(self, max_batches: int | None = None) -> int:
        """Apply batches until nothing is pending. Returns the number of events."""
        total = 0
        batches = 0
        while max_batches is None or batches < max_batches:
            done = self.run_once()
            if done == 0:
                break
            total += done
            batches += 1
        return total

    # -- internals -------------------------------------------------------------------------

    def _apply(self, conn: Connection, events: Sequence[LoggedEvent]) -> None:
        batch = _Batch(self, conn, self.clock.now_ms())
        events = batch.prefetch(events)
        for index, event in enumerate(events):
            batch.apply(event, remaining=len(events) - index)
        batch.finish()

    def _one_by_one(self, events: Sequence[LoggedEvent]) -> int:
        finished = 0
        for claimed in events:
            for attempt in range(_EVENT_ATTEMPTS):
                try:
                    with self.db.write() as conn:
                        event = event_log.claim_one(self.db, conn, claimed.seq, claimed.partition)
                        if event is not None:
                            self._apply(conn, [event])
                    finished += 1
                    if self.metrics is not None:
                        self.metrics.events_processed.inc()
                    break
                except Exception as exc:
                    last_try = attempt == _EVENT_ATTEMPTS - 1
                    if _is_poison(exc) or (last_try and isinstance(exc, sa.exc.IntegrityError)):
                        self._park(claimed, exc)
                        finished += 1
                        break
                    if last_try:
                        log.warning("event %s left pending after conflicts: %s", claimed.seq, exc)
                        return finished
                    time.sleep(random.uniform(0.005, 0.05) * (attempt + 1))
        return finished

    def _park(self, event: LoggedEvent, exc: BaseException) -> None:
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        log.warning("parked event %s (%s): %s", event.seq, event.message_id, detail)
        with self.db.write() as conn:
            event_log.mark_parked(conn, event.seq, detail, self.clock.now_ms())
        if self.metrics is not None:
            self.metrics.events_parked.inc()

    def source(self, source_id: int) -> tuple[str, str]:
        found = self._sources.get(source_id)
        if found is None:
            self._sources = source_names(self.db)
            found = self._sources.get(source_id, ("", ""))
        return found

    def view(self, event: LoggedEvent) -> EventView:
        payload = event.payload
        name, kind = self.source(event.source_id)
        event_name = payload.get("event") if event.type == "track" else payload.get("name")
        properties = payload.get("properties")
        traits = payload.get("traits")
        context = payload.get("context")
        return EventView(
            type=event.type,
            event=event_name if isinstance(event_name, str) else None,
            timestamp_ms=event.timestamp_ms,
            timestamp=ms_to_iso(event.timestamp_ms),
            message_id=event.message_id,
            source_name=name,
            source_kind=kind,
            properties=properties if isinstance(properties, dict) else {},
            traits=traits if isinstance(traits, dict) else {},
            context=context if isinstance(context, dict) else {},
        )


class _Batch:
    """The unit of work of one transaction."""

    def __init__(self, processor: Processor, conn: Connection, now_ms: int) -> None:
        self.p = processor
        self.conn = conn
        self.now_ms = now_ms
        self.identities = IdentityStore(conn)
        self.profiles = ProfileStore(conn, processor.db)
        self.marks: list[tuple[int, int]] = []
        self.changes = BatchChanges()
        self._identifiers: dict[int, list[Identifier]] = {}

    def prefetch(self, events: Sequence[LoggedEvent]) -> Sequence[LoggedEvent]:
        """Read what the batch needs; returns the events to apply (without those of erased
        people, which are deleted)."""
        wanted: list[Identifier] = []
        for event in events:
            found = self.p.extractor.extract(event.payload)
            if event.type == "alias":
                found = found + self.p.extractor.alias_candidates(event.payload)
            self._identifiers[event.seq] = found
            wanted.extend(found)
        events = self.p.suppression.drop_suppressed(self.p.db, self.conn, events, self._identifiers)
        self.identities.prefetch(wanted)
        self.profiles.load(self.identities.owners(wanted).values())
        return events

    def apply(self, event: LoggedEvent, remaining: int = 1) -> None:
        """Apply one event. `remaining`: events left in the batch, this one included (new
        profiles reserve ids for that many at most)."""
        payload = event.payload
        found = self._identifiers.get(event.seq)
        if found is None:
            found = self.p.extractor.extract(payload)
        alias_previous: list[Identifier] = []
        if event.type == "alias":
            alias_previous = self.p.extractor.alias_candidates(payload)
            found = [ident for ident in found if ident not in alias_previous]
        plan = self.p.resolver.resolve(found, self.identities, alias_previous)

        if plan.profiles:
            survivor = plan.survivor
            assert survivor is not None
            if plan.absorbed:
                self._merge(survivor, plan.absorbed, event, [*found, *alias_previous])
            state = self.profiles.get(survivor)
        else:
            state = self.profiles.create(event.timestamp_ms, remaining)

        for ident in plan.attach:
            self.identities.attach(state.id, ident, event.timestamp_ms, event.source_id)
            if ident.type in KNOWN_TYPES:
                state.is_known = True
                if state.display_name is None:
                    state.display_name = ident.value
        for refusal in plan.refused:
            if not self.identities.refusal_recorded(state.id, refusal.other_id):
                self.identities.record_merge(
                    at_ms=self.now_ms,
                    survivor_id=state.id,
                    other_id=refusal.other_id,
                    status="refused",
                    reason=refusal.reason,
                    identifiers=refusal.identifiers,
                    message_id=event.message_id,
                    event_type=event.type,
                )
                if self.p.metrics is not None:
                    self.p.metrics.merges.labels("refused").inc()
        self.identities.touch(found, event.timestamp_ms)

        view = self.p.view(event)
        self._update_profile(state, view)
        self.marks.append((event.seq, state.id))
        self.changes.applied.append(AppliedEvent(event.seq, state.id, view))
        self.changes.changed_profiles.add(state.id)

    def _update_profile(self, state: ProfileState, view: EventView) -> None:
        if view.type == "identify" and view.traits:
            apply_traits(state.traits, state.trait_times, view.traits, view.timestamp)
            name = state.traits.get("name")
            if isinstance(name, str) and name.strip():
                state.display_name = name.strip()
            elif state.display_name is None:
                email = state.traits.get("email")
                if isinstance(email, str) and email:
                    state.display_name = email
        self.p.reducer.apply(state.computed, view)
        state.dirty = True
        consents = extract_consents(view)
        if consents:
            self.profiles.apply_consents(
                state.id, consents, view.source_name or None, view.message_id
            )

    def _merge(
        self, survivor: int, absorbed: list[int], event: LoggedEvent, found: list[Identifier]
    ) -> None:
        owners = self.identities.owners(found)
        self.profiles.load([survivor, *absorbed])
        self.flush()
        self.identities.reassign(absorbed, survivor)
        event_log.reassign(self.conn, absorbed, survivor)

        def refold() -> dict[str, Any]:
            history = event_log.history(self.conn, survivor)
            return self.p.reducer.refold(self.p.view(logged) for logged in history)

        self.profiles.merge(survivor, absorbed, refold, self.now_ms)
        for other in absorbed:
            # The identifiers of the message that bridged the two profiles.
            ours = [ident for ident in found if owners.get(ident) == survivor]
            theirs = [ident for ident in found if owners.get(ident) == other]
            links = ours + theirs
            self.identities.record_merge(
                at_ms=self.now_ms,
                survivor_id=survivor,
                other_id=other,
                status="merged",
                reason=(
                    f"{event.type} carried {', '.join(map(str, ours)) or 'no identifier'} "
                    f"(profile {survivor}) and {', '.join(map(str, theirs))} (profile {other})"
                ),
                identifiers=links,
                message_id=event.message_id,
                event_type=event.type,
            )
            self.changes.merges.append((survivor, other))
            self.changes.changed_profiles.discard(other)
            if self.p.metrics is not None:
                self.p.metrics.merges.labels("merged").inc()
        # Events of this batch applied to an absorbed profile now belong to the survivor.
        gone = set(absorbed)
        self.changes.applied = [
            AppliedEvent(a.seq, survivor, a.event) if a.profile_id in gone else a
            for a in self.changes.applied
        ]

    def flush(self) -> None:
        self.identities.flush()
        self.profiles.flush(self.now_ms)
        event_log.mark_applied(self.p.db, self.conn, self.marks, self.now_ms)
        self.marks = []

    def finish(self) -> None:
        self.flush()
        for hook in self.p.hooks:
            hook.after_batch(self.conn, self.changes, self.now_ms)
