"""Where the pure engine meets the database: people enter journeys (from the pipeline's
events, segment changes and API calls), due timers fire, and the engine's actions are
carried out in the same transaction as the enrollment's new state.

Exactly once: an enrollment is unique per (journey, entry key), a step is recorded once
per enrollment (enrollment_steps), and a message once per idempotency key
("journey:<enrollment>:<step>"), so replaying a happening after a crash, or two workers
racing for the same timer, changes nothing the first run did. On PostgreSQL an
enrollment is advanced under a row lock, so two processes never advance it at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shopkeeper.config import Settings
from shopkeeper.journeys import store
from shopkeeper.journeys.definition import (
    ApiEntry,
    Definition,
    EventEntry,
    SegmentEntry,
)
from shopkeeper.journeys.engine import (
    ACTIVE,
    CallWebhook,
    Converted,
    Ended,
    Enrollment,
    Happening,
    IssueCoupon,
    Outcome,
    Reached,
    Send,
    UpdateProfile,
    advance,
    event_passes,
    in_holdout,
)
from shopkeeper.messaging import messages
from shopkeeper.messaging.reach import Reach, choose_channel, load_reach, load_reach_many
from shopkeeper.messaging.sendtime import best_hour_send_at
from shopkeeper.pipeline.processor import BatchChanges
from shopkeeper.segments.facts import Needs, load_facts, load_products, needs_of
from shopkeeper.segments.lang import ast
from shopkeeper.segments.lang.evaluate import (
    EventFact,
    ProfileFacts,
    compile_predicate,
    product_id,
)
from shopkeeper.segments.store import conditions
from shopkeeper.storage import tables as t
from shopkeeper.storage.db import Database

log = logging.getLogger(__name__)

DAY = 86_400_000
_CURSOR_KEY = "journeys.segment_history_cursor"
# How far back a conversion may still be credited to an ended enrollment.
_LONGEST_GOAL_MS = 90 * DAY


def _fact(event: Any) -> EventFact:
    return EventFact(
        name=event.event or "",
        timestamp=event.timestamp_ms,
        properties=event.properties,
        context=event.context,
    )


class JourneyRuntime:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        wake_delivery: Callable[[], None] | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.wake_delivery = wake_delivery
        # Messages were queued in a transaction that has not committed yet: delivery is
        # woken by after_commit(), or it would look before they are visible.
        self._queued = False

    # -- the pipeline hook ---------------------------------------------------------------

    def after_batch(self, conn: Connection, changes: BatchChanges, now_ms: int) -> None:
        """Runs in the batch's transaction, after the profiles and segments were updated."""
        events = [a for a in changes.applied if a.event.type == "track" and a.event.event]
        absorbed = sorted({other for _survivor, other in changes.merges})
        if absorbed:
            self._move_enrollments(conn, changes.merges)
        if not events:
            return
        journeys = store.active_journeys(conn)
        segments = conditions(conn) if journeys else {}
        by_profile: dict[int, list[tuple[EventFact, str]]] = {}
        for applied in events:
            by_profile.setdefault(applied.profile_id, []).append(
                (_fact(applied.event), applied.event.message_id)
            )
        entering = [(j, d) for j, d in journeys if isinstance(d.entry, EventEntry)]
        entry_names = {d.entry.event for _j, d in entering if isinstance(d.entry, EventEntry)}
        since = now_ms - _LONGEST_GOAL_MS
        rows_of: dict[int, list[store.EnrollmentRow]] = {}
        for row in store.profile_enrollments(conn, sorted(by_profile), since):
            rows_of.setdefault(row.enrollment.profile_id, []).append(row)
        if not rows_of and not entering:
            return
        listened: dict[tuple[int, int], frozenset[str]] = {}
        for profile_id, facts in by_profile.items():
            rows = rows_of.get(profile_id, [])
            for fact, message_id in facts:
                # Enrollments in flight (and recently ended ones, for goals) see the event
                # first, so that an event that both enters and exits does not end its own
                # enrollment.
                changed = False
                for row in rows:
                    if not self._cares(conn, row, fact.name, listened):
                        continue
                    outcome = self._advance(conn, row, Happening("event", fact), now_ms, segments)
                    changed |= outcome is not None and outcome.enrollment != row.enrollment
                if fact.name in entry_names:
                    for journey, definition in entering:
                        changed |= self._maybe_enter_on_event(
                            conn, journey, definition, profile_id, fact, message_id, now_ms,
                            segments,
                        )  # fmt: skip
                if changed:
                    rows = store.profile_enrollments(conn, [profile_id], since)

    @staticmethod
    def _cares(
        conn: Connection,
        row: store.EnrollmentRow,
        event: str,
        seen: dict[tuple[int, int], frozenset[str]],
    ) -> bool:
        """Whether an event can change this enrollment (a wait_for, an exit, the goal);
        `seen` keeps each definition's answer for the batch (one lookup per version)."""
        key = (row.journey_id, row.version)
        names = seen.get(key)
        if names is None:
            names = seen[key] = store.definition(conn, *key).events_listened_to()
        return event in names

    def _move_enrollments(self, conn: Connection, merges: Sequence[tuple[int, int]]) -> None:
        """Enrollments of an absorbed profile carry on as the survivor's."""
        e = t.enrollments
        for survivor, other in merges:
            conn.execute(e.update().where(e.c.profile_id == other).values(profile_id=survivor))

    def _maybe_enter_on_event(
        self,
        conn: Connection,
        journey: store.Journey,
        definition: Definition,
        profile_id: int,
        fact: EventFact,
        message_id: str,
        now_ms: int,
        segments: Mapping[str, ast.Condition],
    ) -> bool:
        """Whether the person entered."""
        entry = definition.entry
        assert isinstance(entry, EventEntry)
        if fact.name != entry.event:
            return False
        if entry.where is not None:
            profile = self._facts(conn, journey, definition, profile_id, now_ms, segments)
            if not event_passes(entry.where, fact, _with_product(conn, profile, fact)):
                return False
        key = f"event:{message_id}"
        if entry.dedupe:
            value = fact.properties.get(entry.dedupe)
            if value is None or isinstance(value, (dict, list)):
                return False  # no cart id: nothing to make the enrollment unique by
            # Per person: two shoppers may send the same value (a product id).
            key = f"{profile_id}:{entry.dedupe}:{value}"
        row, _reason = self.enter(
            conn, journey, definition, profile_id, key, dict(fact.properties), now_ms, segments
        )
        return row is not None

    # -- entering -----------------------------------------------------------------------

    def enter(
        self,
        conn: Connection,
        journey: store.Journey,
        definition: Definition,
        profile_id: int,
        entry_key: str,
        properties: Mapping[str, Any],
        now_ms: int,
        segments: Mapping[str, ast.Condition] | None = None,
    ) -> tuple[store.EnrollmentRow | None, str]:
        """Enroll the person unless a re-entry rule or cap says no. Returns the
        enrollment (None when not entered) and why not."""
        refusal = self._refusal(conn, journey, definition, profile_id, now_ms)
        if refusal:
            return None, refusal
        holdout = in_holdout(definition.holdout, journey.id, profile_id, entry_key)
        row = store.insert_enrollment(
            conn,
            self.db.insert_ignore(t.enrollments),
            journey=journey,
            profile_id=profile_id,
            entry_key=entry_key,
            holdout=holdout,
            state={"entry": dict(properties)},
            now_ms=now_ms,
        )
        if row is None:
            return None, "entered on this already"
        segs = segments if segments is not None else conditions(conn)
        self._advance(conn, row, Happening("start", properties=properties), now_ms, segs)
        return row, ""

    def _refusal(
        self,
        conn: Connection,
        journey: store.Journey,
        definition: Definition,
        profile_id: int,
        now_ms: int,
    ) -> str:
        stats = store.entry_stats(conn, journey.id, [profile_id], now_ms - DAY)[profile_id]
        return self._refused(definition, stats, now_ms)

    def _refused(self, definition: Definition, stats: store.EntryStats, now_ms: int) -> str:
        """Why the re-entry rules or caps keep the person out ("" when they do not)."""
        if definition.reentry == "once":
            if stats.last_entry is not None:
                return "enters this journey once"
        elif definition.reentry == "cooldown":
            last = stats.last_entry
            if last is not None and now_ms - last < definition.cooldown_ms:
                return "entered within the cooldown"
        limit = definition.max_concurrent or self.settings.journey_max_concurrent
        if stats.active >= limit:
            return "already in this journey"
        per_day = self.settings.journey_entries_per_day
        if per_day and stats.entries_since >= per_day:
            return "entered too many journeys today"
        return ""

    def enter_many(
        self,
        conn: Connection,
        journey: store.Journey,
        definition: Definition,
        people: Sequence[tuple[int, str, Mapping[str, Any]]],
        now_ms: int,
        segments: Mapping[str, ast.Condition],
    ) -> int:
        """`enter` for many (profile id, entry key, properties) at once, with the same
        rules and results, in a fixed number of statements for the common steps (record
        a step, queue a message, end); an enrollment whose first steps do anything else
        (a coupon, a webhook, a profile update) is carried out one by one. Returns how
        many entered."""
        stats = store.entry_stats(conn, journey.id, [p for p, _k, _v in people], now_ms - DAY)
        admitted: list[tuple[int, str, bool, Mapping[str, Any]]] = []
        for profile_id, key, properties in people:
            mine = stats.get(profile_id, store.EntryStats())
            if self._refused(definition, mine, now_ms):
                continue
            # The same person twice in one call: the second sees the first entry.
            stats[profile_id] = store.EntryStats(now_ms, mine.active + 1, mine.entries_since + 1)
            holdout = in_holdout(definition.holdout, journey.id, profile_id, key)
            admitted.append((profile_id, key, holdout, {"entry": dict(properties)}))
        created = store.insert_enrollments(
            conn, self.db.insert_ignore(t.enrollments), journey, admitted, now_ms
        )
        if not created:
            return 0
        rows = list(created.values())
        try:
            needs = needs_of(_conditions_of(definition), segments)
        except ValueError:
            needs = Needs()
        facts = load_facts(conn, sorted({r.enrollment.profile_id for r in rows}), needs, now_ms)
        compiled: dict[int, Callable[[ProfileFacts, int], bool]] = {}
        done: list[tuple[store.EnrollmentRow, Outcome, str]] = []
        for row in rows:
            profile = facts.get(row.enrollment.profile_id)
            timezone = self.settings.default_timezone
            if profile is not None and isinstance(profile.computed.get("timezone"), str):
                timezone = profile.computed["timezone"]
            happening = Happening(
                "start",
                properties=row.enrollment.state.get("entry", {}),
                profile=profile,
                check=_checker(profile, segments, compiled, now_ms),
                timezone=timezone,
            )
            outcome = advance(row.enrollment, definition, happening, now_ms)
            if outcome.actions or outcome.enrollment != row.enrollment:
                done.append((row, outcome, timezone))
        self._apply_new(conn, journey, definition, done, now_ms)
        return len(rows)

    def _apply_new(
        self,
        conn: Connection,
        journey: store.Journey,
        definition: Definition,
        done: Sequence[tuple[store.EnrollmentRow, Outcome, str]],
        now_ms: int,
    ) -> None:
        """`_apply` for enrollments created in this transaction, batched."""
        simple: list[tuple[store.EnrollmentRow, Outcome, str]] = []
        for row, outcome, timezone in done:
            reached = [a.step for a in outcome.actions if isinstance(a, Reached)]
            plain = all(isinstance(a, Reached | Send | Ended) for a in outcome.actions)
            if plain and len(reached) == len(set(reached)):
                simple.append((row, outcome, timezone))
            else:
                self._apply(conn, journey, definition, row, outcome, now_ms, timezone)
        if not simple:
            return
        sending = {
            row.enrollment.profile_id
            for row, outcome, _tz in simple
            if any(isinstance(a, Send) for a in outcome.actions)
        }
        reach = load_reach_many(conn, sorted(sending))
        steps: list[tuple[store.EnrollmentRow, str, str]] = []
        queued: list[dict[str, Any]] = []
        saves: list[tuple[Enrollment, str | None]] = []
        for row, outcome, timezone in simple:
            enrollment = outcome.enrollment
            outcomes: dict[str, str] = {}
            end_reason = None
            for action in outcome.actions:
                if isinstance(action, Reached):
                    outcomes[action.step] = action.outcome
                elif isinstance(action, Send):
                    message, unreachable = self._message_row(
                        conn, journey, enrollment, action, reach, now_ms, timezone
                    )
                    queued.append(message)
                    if unreachable:
                        outcomes[action.step] = "unreachable"
                elif isinstance(action, Ended):
                    end_reason = action.reason
            steps += [(row, step, result) for step, result in outcomes.items()]
            saves.append((enrollment, end_reason))
        store.record_steps(conn, self.db.insert_ignore(t.enrollment_steps), steps, now_ms)
        if queued:
            conn.execute(self.db.insert_ignore(t.messages), queued)
            self._queued |= any(m["status"] == messages.QUEUED for m in queued)
        store.save_new_enrollments(conn, saves, now_ms)

    # -- advancing ----------------------------------------------------------------------

    def _advance(
        self,
        conn: Connection,
        row: store.EnrollmentRow,
        happening: Happening,
        now_ms: int,
        segments: Mapping[str, ast.Condition],
    ) -> Outcome | None:
        journey = store.journey_by_id(conn, row.journey_id)
        if journey is None:
            return None
        definition = store.definition(conn, row.journey_id, row.version)
        profile = self._facts(
            conn, journey, definition, row.enrollment.profile_id, now_ms, segments
        )
        if happening.event is not None:
            profile = _with_product(conn, profile, happening.event)
        check = _checker(profile, segments, {}, now_ms)
        timezone = self.settings.default_timezone
        if profile is not None and isinstance(profile.computed.get("timezone"), str):
            timezone = profile.computed["timezone"]
        happening = replace(happening, profile=profile, check=check, timezone=timezone)
        outcome = advance(row.enrollment, definition, happening, now_ms)
        if outcome.actions or outcome.enrollment != row.enrollment:
            self._apply(conn, journey, definition, row, outcome, now_ms, timezone)
        return outcome

    def _facts(
        self,
        conn: Connection,
        journey: store.Journey,
        definition: Definition,
        profile_id: int,
        now_ms: int,
        segments: Mapping[str, ast.Condition],
    ) -> ProfileFacts | None:
        # Not cached: `in segment` conditions change when their segments do.
        try:
            needs = needs_of(_conditions_of(definition), segments)
        except ValueError:
            needs = Needs()
        return load_facts(conn, [profile_id], needs, now_ms).get(profile_id)

    def _apply(
        self,
        conn: Connection,
        journey: store.Journey,
        definition: Definition,
        row: store.EnrollmentRow,
        outcome: Outcome,
        now_ms: int,
        timezone: str,
    ) -> None:
        enrollment = outcome.enrollment
        variables: dict[str, Any] = dict(enrollment.state.get("variables", {}))
        end_reason = None
        steps_table = self.db.insert_ignore(t.enrollment_steps)
        queued = False
        for action in outcome.actions:
            if isinstance(action, Reached):
                if not store.record_step(
                    conn, steps_table, row, action.step, action.outcome, now_ms
                ):
                    # Reached before (a wait step now passing): keep its latest outcome.
                    store.update_step_outcome(conn, enrollment.id, action.step, action.outcome)
            elif isinstance(action, Send):
                queued |= self._send(
                    conn, journey, row, enrollment, action, variables, now_ms, timezone
                )
            elif isinstance(action, IssueCoupon):
                variables["coupon"] = self._coupon(conn, journey, enrollment, action, now_ms)
            elif isinstance(action, CallWebhook):
                queued |= self._webhook(conn, journey, enrollment, action, variables, now_ms)
            elif isinstance(action, UpdateProfile):
                self._update_profile(conn, enrollment, action, now_ms)
            elif isinstance(action, Converted):
                store.mark_converted(conn, enrollment.id, action.at, action.revenue)
                _credit_last_message(conn, enrollment.id, action)
            elif isinstance(action, Ended):
                end_reason = action.reason
        if variables != enrollment.state.get("variables", {}):
            enrollment = replace(enrollment, state={**enrollment.state, "variables": variables})
        store.save_enrollment(conn, row, enrollment, now_ms, end_reason)
        if queued:
            self._queued = True

    def after_commit(self, _done: int = 0) -> None:
        """Wake delivery if the transaction that just committed queued messages."""
        if self._queued:
            self._queued = False
            if self.wake_delivery is not None:
                self.wake_delivery()

    def _send(
        self,
        conn: Connection,
        journey: store.Journey,
        row: store.EnrollmentRow,
        enrollment: Enrollment,
        action: Send,
        variables: Mapping[str, Any],
        now_ms: int,
        timezone: str,
    ) -> bool:
        reach = {enrollment.profile_id: load_reach(conn, enrollment.profile_id)}
        enrollment = replace(enrollment, state={**enrollment.state, "variables": dict(variables)})
        values, unreachable = self._message_row(
            conn, journey, enrollment, action, reach, now_ms, timezone
        )
        created = conn.execute(
            self.db.insert_ignore(t.messages).values(**values).returning(t.messages.c.id)
        ).first()
        if unreachable:
            store.update_step_outcome(conn, enrollment.id, action.step, "unreachable")
            return False
        return created is not None

    def _message_row(
        self,
        conn: Connection,
        journey: store.Journey,
        enrollment: Enrollment,
        action: Send,
        reach: Mapping[int, Reach],
        now_ms: int,
        timezone: str,
    ) -> tuple[dict[str, Any], bool]:
        """The messages row a send step queues (idempotency key
        `journey:<enrollment>:<step>`), and whether the person is unreachable (the row
        is then a skipped message saying why: the outbox and the API show it)."""
        channel, reason = choose_channel(
            reach[enrollment.profile_id],
            action.channel,
            action.fallback,
            transactional=action.transactional,
            default_region=self.settings.default_phone_region,
        )
        send_at = now_ms
        if channel is not None and action.send_time == "best_hour":
            send_at = best_hour_send_at(
                conn, enrollment.profile_id, now_ms, timezone, action.fallback_hour
            )
        entry = enrollment.state.get("entry", {})
        variables = enrollment.state.get("variables", {})
        return (
            messages.row_values(
                key=f"journey:{enrollment.id}:{action.step}",
                profile_id=enrollment.profile_id,
                channel=channel or (action.channel if action.channel != "best" else "none"),
                template=action.template,
                transactional=action.transactional,
                variables={
                    "journey": journey.key,
                    "entry": entry,
                    **({"product_id": entry["product_id"]} if "product_id" in entry else {}),
                    **variables,
                },
                send_at=send_at,
                now_ms=now_ms,
                journey_id=journey.id,
                enrollment_id=enrollment.id,
                step=action.step,
                status=messages.QUEUED if channel else messages.SKIPPED,
                reason=None if channel else f"unreachable: {reason}",
            ),
            channel is None,
        )

    def _coupon(
        self,
        conn: Connection,
        journey: store.Journey,
        enrollment: Enrollment,
        action: IssueCoupon,
        now_ms: int,
    ) -> dict[str, Any] | None:
        from shopkeeper.messaging import coupons

        try:
            issued = coupons.issue(
                conn,
                action.pool,
                profile_id=enrollment.profile_id,
                journey_id=journey.id,
                enrollment_id=enrollment.id,
                now_ms=now_ms,
            )
        except (coupons.PoolEmpty, coupons.UnknownPool) as exc:
            store.update_step_outcome(conn, enrollment.id, action.step, f"no coupon: {exc}")
            return None
        return {
            "code": issued.code,
            "expires_at": issued.expires_at,
            "discount": issued.discount,
            "pool": issued.pool_key,
        }

    def _webhook(
        self,
        conn: Connection,
        journey: store.Journey,
        enrollment: Enrollment,
        action: CallWebhook,
        variables: Mapping[str, Any],
        now_ms: int,
    ) -> bool:
        created = messages.queue(
            conn,
            self.db,
            key=f"journey:{enrollment.id}:{action.step}",
            profile_id=enrollment.profile_id,
            channel="webhook",
            template=action.template,
            transactional=True,
            variables={
                "journey": journey.key,
                "entry": enrollment.state.get("entry", {}),
                **variables,
            },
            send_at=now_ms,
            now_ms=now_ms,
            journey_id=journey.id,
            enrollment_id=enrollment.id,
            step=action.step,
            recipient=action.url,
        )
        return created is not None

    def _update_profile(
        self, conn: Connection, enrollment: Enrollment, action: UpdateProfile, now_ms: int
    ) -> None:
        from shopkeeper.journeys.profile_updates import update_profile

        outcome = update_profile(
            conn,
            self.db,
            enrollment.profile_id,
            traits=action.traits,
            tags=action.tags,
            consent=action.consent,
            key=f"journey:{enrollment.id}:{action.step}",
            now_ms=now_ms,
        )
        store.update_step_outcome(conn, enrollment.id, action.step, outcome)

    # -- timers, segments, API ----------------------------------------------------------

    def fire_due(self, now_ms: int, limit: int = 500) -> int:
        """Advance the enrollments whose timers are due, each in its own transaction
        under a row lock (skipped when another process holds it)."""
        e = t.enrollments
        with self.db.read() as conn:
            ids = [
                int(i)
                for i in conn.execute(
                    sa.select(e.c.id)
                    .where(e.c.status == ACTIVE, e.c.wake_at <= now_ms)
                    .order_by(e.c.wake_at)
                    .limit(limit)
                ).scalars()
            ]
        fired = 0
        segments: Mapping[str, ast.Condition] | None = None
        for enrollment_id in ids:
            with self.db.write() as conn:
                query = sa.select(e).where(
                    e.c.id == enrollment_id, e.c.status == ACTIVE, e.c.wake_at <= now_ms
                )
                if not self.db.is_sqlite:
                    query = query.with_for_update(skip_locked=True)
                found = conn.execute(query).first()
                if found is None:
                    continue
                if segments is None:
                    segments = conditions(conn)
                row = store._enrollment(found)
                self._advance(conn, row, Happening("timer"), now_ms, segments)
                fired += 1
            self.after_commit()
        return fired

    def follow_segments(self, now_ms: int, limit: int = 2000) -> int:
        """Enter segment-triggered journeys from the membership history (Segment Entered
        and Segment Exited, read in id order from a cursor that moves in the same
        transaction as the enrollments)."""
        entered = 0
        with self.db.write() as conn:
            cursor = self._cursor(conn)
            if cursor is None:
                return 0
            journeys = [
                (j, d) for j, d in store.active_journeys(conn) if isinstance(d.entry, SegmentEntry)
            ]
            h = t.segment_history
            rows = conn.execute(
                sa.select(h.c.id, h.c.segment_id, h.c.profile_id, h.c.at, h.c.entered)
                .where(h.c.id > cursor)
                .order_by(h.c.id)
                .limit(limit)
            ).all()
            if not rows:
                return 0
            if journeys:
                keys = dict(conn.execute(sa.select(t.segments.c.id, t.segments.c.key)).all())
                segments = conditions(conn)
                for r in rows:
                    for journey, definition in journeys:
                        entry = definition.entry
                        assert isinstance(entry, SegmentEntry)
                        wanted = entry.on == ("entered" if r.entered else "exited")
                        if not wanted or keys.get(r.segment_id) != entry.segment:
                            continue
                        if int(r.at) < journey.updated_at:
                            continue  # changes from before the journey was switched on
                        row, _ = self.enter(
                            conn,
                            journey,
                            definition,
                            int(r.profile_id),
                            f"segment:{r.id}",
                            {"segment": entry.segment, "segment_change": entry.on},
                            now_ms,
                            segments,
                        )
                        entered += row is not None
            conn.execute(
                t.meta.update().where(t.meta.c.key == _CURSOR_KEY).values(value=str(rows[-1].id))
            )
        self.after_commit()
        return entered

    def _cursor(self, conn: Connection) -> int | None:
        query = sa.select(t.meta.c.value).where(t.meta.c.key == _CURSOR_KEY)
        if not self.db.is_sqlite:
            query = query.with_for_update()
        value = conn.execute(query).scalar()
        if value is None:
            # First run: start from now, not from the whole history.
            latest = conn.execute(sa.select(sa.func.max(t.segment_history.c.id))).scalar()
            conn.execute(
                self.db.insert_ignore(t.meta).values(key=_CURSOR_KEY, value=str(latest or 0))
            )
            return None
        return int(value)

    def enroll_by_api(
        self,
        conn: Connection,
        journey: store.Journey,
        profile_id: int,
        properties: Mapping[str, Any],
        key: str,
        now_ms: int,
    ) -> tuple[store.EnrollmentRow | None, str]:
        definition = store.definition(conn, journey.id, journey.version)
        if not isinstance(definition.entry, ApiEntry):
            return None, "this journey is not entered through the API"
        return self.enter(conn, journey, definition, profile_id, f"api:{key}", properties, now_ms)

    def stop_journey(self, journey_id: int, reason: str, now_ms: int) -> int:
        """End every enrollment in flight (the journey was archived)."""
        e = t.enrollments
        stopped = 0
        with self.db.write() as conn:
            rows = conn.execute(
                sa.select(e).where(e.c.journey_id == journey_id, e.c.status == ACTIVE)
            ).all()
            segments = conditions(conn)
            for found in rows:
                self._advance(
                    conn,
                    store._enrollment(found),
                    Happening("stop", reason=reason),
                    now_ms,
                    segments,
                )
                stopped += 1
        return stopped


def _credit_last_message(conn: Connection, enrollment_id: int, action: Converted) -> None:
    """The conversion as an event of the last message the enrollment was sent before it
    (last touch within the journey): per-step conversions and revenue."""
    m = t.messages
    last = conn.execute(
        sa.select(m.c.id)
        .where(
            m.c.enrollment_id == enrollment_id,
            m.c.sent_at.is_not(None),
            m.c.sent_at <= action.at,
        )
        .order_by(m.c.sent_at.desc(), m.c.id.desc())
        .limit(1)
    ).scalar()
    if last is not None:
        messages.record_event(
            conn,
            int(last),
            "converted",
            action.at,
            {"revenue": action.revenue, "event": action.event},
        )


def _checker(
    profile: ProfileFacts | None,
    segments: Mapping[str, ast.Condition],
    compiled: dict[int, Callable[[ProfileFacts, int], bool]],
    now_ms: int,
) -> Callable[[ast.Condition], bool]:
    """The engine's condition check for one person; `compiled` keeps each condition's
    predicate (shared by everyone entered together)."""

    def check(node: ast.Condition) -> bool:
        if profile is None:
            return False
        test = compiled.get(id(node))
        if test is None:
            test = compiled[id(node)] = compile_predicate(node, segments)
        return test(profile, now_ms)

    return check


def _with_product(
    conn: Connection, profile: ProfileFacts | None, fact: EventFact
) -> ProfileFacts | None:
    """The profile's facts with the catalog row of the event's product, for filters on
    the product (category, brand, price)."""
    pid = product_id(fact)
    if profile is None or pid is None or pid in profile.products:
        return profile
    return replace(profile, products={**profile.products, **load_products(conn, [pid])})


def _conditions_of(definition: Definition) -> list[ast.Condition]:
    """Everything the engine may evaluate for a person of this journey."""
    nodes: list[ast.Condition] = []
    for step in definition.steps:
        if step.type == "condition":
            nodes.append(step.options["condition"])
        if step.type == "wait_for" and step.options["event"].where is not None:
            match = step.options["event"]
            nodes.append(ast.Did(event=match.event, where=match.where))
    if definition.exit_when is not None:
        nodes.append(definition.exit_when)
    entry = definition.entry
    if isinstance(entry, EventEntry) and entry.where is not None:
        nodes.append(ast.Did(event=entry.event, where=entry.where))
    for match in (*definition.exit_on, *([definition.goal] if definition.goal else [])):
        if match.where is not None:
            nodes.append(ast.Did(event=match.event, where=match.where))
    return nodes
