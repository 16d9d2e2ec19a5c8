"""Delivery: due messages are claimed, checked (consent, suppression, caps, quiet
hours), rendered once, handed to their channel, and their fate recorded.

A claimed message is leased; a process that dies mid-send leaves it `sending` until the
lease runs out, then another process retries it with the same idempotency key (the
email's Message-ID, the providers' idempotency headers). Provider errors are retried
with doubling delays up to message_max_attempts, then the message fails with the reason;
a dead address (hard bounce, unknown push subscription) is suppressed on its channel.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from shopkeeper.clock import Clock
from shopkeeper.config import Settings
from shopkeeper.journeys import store as journey_store
from shopkeeper.messaging import content as content_mod
from shopkeeper.messaging import internal_events, links, messages, template_store, templates
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
from shopkeeper.messaging.reach import address, consented, load_reach
from shopkeeper.observability.metrics import Metrics
from shopkeeper.storage.db import Database
from shopkeeper.workloop import WorkLoop

log = logging.getLogger(__name__)

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
        self.caps = Caps.from_settings(settings)

    def run_once(self, now_ms: int | None = None) -> int:
        """Deliver one batch of due messages; returns how many were handled."""
        now = self.clock.now_ms() if now_ms is None else now_ms
        lease_ms = self.settings.message_lease_seconds * 1000
        claimed = messages.claim_due(self.db, now, self.settings.message_batch_size, lease_ms)
        for message in claimed:
            try:
                self.deliver(message, now)
            except Exception as exc:  # one broken message must not stop the others
                log.exception("message %s could not be delivered", message.id)
                self._finish(message, now, status=messages.FAILED, reason=f"internal error: {exc}")
        return len(claimed)

    def drain(self, now_ms: int | None = None) -> int:
        total = 0
        while True:
            done = self.run_once(now_ms)
            total += done
            if done == 0:
                return total

    # -- one message --------------------------------------------------------------------

    def deliver(self, message: Message, now: int) -> None:
        decision = self.decide(message, now)
        if decision.action == "skip":
            self._finish(message, now, status=messages.SKIPPED, reason=decision.reason)
            return
        if decision.action == "defer":
            self._finish(
                message, now, status=messages.QUEUED, reason=decision.reason, send_at=decision.until
            )
            return
        content = message.content
        locale = message.locale
        if content is None:
            try:
                content, locale = self.render(message, now)
            except (templates.RenderError, LookupError, ValueError) as exc:
                self._finish(
                    message, now, status=messages.SKIPPED, reason=f"could not render: {exc}"
                )
                return
        if message.channel in (IN_APP, ONSITE):
            # Shown when the person next opens the app or the site: it is in their inbox.
            self._finish(
                message,
                now,
                status=messages.DELIVERED,
                content=content,
                locale=locale,
                recipient=decision.recipient,
                sent=True,
            )
            return
        channel = self.channels.get(message.channel)
        if channel is None:
            self._finish(
                message, now, status=messages.FAILED, reason=f"no {message.channel} channel set up"
            )
            return
        outgoing = Outgoing(
            message_id=message.id,
            idempotency_key=message.idempotency_key,
            channel=message.channel,
            recipient=decision.recipient,
            content=content,
            keys=decision.keys or {},
            unsubscribe_url=None if message.transactional else self._unsubscribe_url(message),
        )
        try:
            delivered = channel.send(outgoing)
        except ProviderError as exc:
            self._failed(message, now, exc, decision.recipient, content, locale)
            return
        self._finish(
            message,
            now,
            status=messages.SENT,
            content=content,
            locale=locale,
            recipient=decision.recipient,
            provider_id=delivered.provider_id,
            sent=True,
        )

    def decide(self, message: Message, now: int) -> Decision:
        if message.channel == WEBHOOK:
            return Decision("send", recipient=message.recipient or "")
        with self.db.read() as conn:
            reach = load_reach(conn, message.profile_id)
            if not reach.exists:
                return Decision("skip", reason="the person was erased")
            found = address(reach, message.channel, self.settings.default_phone_region)
            if found is None:
                return Decision("skip", reason=f"no {message.channel.replace('_', ' ')} address")
            recipient, keys = found
            if not message.transactional and not consented(reach, message.channel):
                return Decision(
                    "skip", reason=f"no consent for {message.channel.replace('_', ' ')}"
                )
            suppressed = messages.is_suppressed(conn, message.channel, recipient)
            if suppressed is not None:
                return Decision("skip", reason=f"suppressed: {suppressed}")
            if message.transactional:
                return Decision("send", recipient=recipient, keys=keys)
            caps, ignore = self._caps(conn, message)
            if not ignore:
                day = messages.sent_counts(conn, message.profile_id, now - DAY, exclude=message.id)
                week = messages.sent_counts(
                    conn, message.profile_id, now - WEEK, exclude=message.id
                )
                jday = jweek = 0
                if message.journey_id is not None and (caps.journey_day or caps.journey_week):
                    jday = messages.journey_sent_counts(
                        conn, message.profile_id, message.journey_id, now - DAY, exclude=message.id
                    )
                    jweek = messages.journey_sent_counts(
                        conn, message.profile_id, message.journey_id, now - WEEK, exclude=message.id
                    )
                reason = cap_reason(message.channel, day, week, caps, jday, jweek)
                if reason is not None:
                    return Decision("skip", reason=reason)
        timezone = reach.profile.computed.get("timezone")
        if not isinstance(timezone, str):
            timezone = self.settings.default_timezone
        until = quiet_until(
            now, timezone, self.settings.quiet_hours_start, self.settings.quiet_hours_end
        )
        if until is not None:
            if self.settings.quiet_hours_action == "skip":
                return Decision("skip", reason="quiet hours")
            return Decision("defer", until=until, reason="deferred: quiet hours")
        return Decision("send", recipient=recipient, keys=keys)

    def _caps(self, conn: Any, message: Message) -> tuple[Caps, bool]:
        """The shop's caps, with the journey's own on top (or none, if it says ignore)."""
        if message.journey_id is None:
            return self.caps, False
        journey = journey_store.journey_by_id(conn, message.journey_id)
        if journey is None:
            return self.caps, False
        definition = journey_store.definition(conn, journey.id, journey.version)
        own = definition.caps or {}
        if own.get("ignore"):
            return self.caps, True
        return (
            Caps(
                self.caps.per_channel_day,
                self.caps.per_channel_week,
                self.caps.all_day,
                self.caps.all_week,
                int(own.get("per_day", 0)),
                int(own.get("per_week", 0)),
            ),
            False,
        )

    def render(self, message: Message, now: int) -> tuple[dict[str, Any], str]:
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
        with self.db.read() as conn:
            variants = template_store.get_variants(conn, message.template, message.channel)
            context = content_mod.message_context(
                conn,
                message.profile_id,
                settings=self.settings,
                variables=message.variables,
                now_ms=now,
                channel=message.channel,
                journey_key=message.variables.get("journey"),
            )
        locale, parts = templates.pick_variant(
            variants, context.get("locale"), self.settings.default_locale
        )
        if not message.transactional:
            context["unsubscribe_url"] = self._unsubscribe_url(message)
        rendered = templates.render(
            parts,
            context,
            locale=str(context.get("locale") or self.settings.default_locale),
            currency=str(context.get("currency") or self.settings.shop_currency),
            timezone=str(context.get("timezone") or self.settings.default_timezone),
        )
        if message.channel == EMAIL and rendered.get("html"):
            rendered["html"] = links.rewrite_html(
                rendered["html"], self.settings.public_url, message.id, self.settings.link_secret
            )
        return rendered, locale

    def _unsubscribe_url(self, message: Message) -> str:
        return links.tracking_urls(
            self.settings.public_url, message.id, self.settings.link_secret
        ).unsubscribe

    # -- recording ----------------------------------------------------------------------

    def _failed(
        self,
        message: Message,
        now: int,
        exc: ProviderError,
        recipient: str,
        content: Mapping[str, Any],
        locale: str | None,
    ) -> None:
        if exc.dead_address:
            with self.db.write() as conn:
                messages.suppress(conn, self.db, message.channel, recipient, exc.reason, now)
        if exc.retryable and message.attempts < self.settings.message_max_attempts:
            delay = self.settings.message_retry_seconds * 1000 * 2 ** (message.attempts - 1)
            self._finish(
                message,
                now,
                status=messages.QUEUED,
                reason=f"retrying: {exc.reason}",
                send_at=now + delay,
                content=content,
                locale=locale,
            )
            return
        self._finish(
            message,
            now,
            status=messages.FAILED,
            reason=exc.reason,
            content=content,
            locale=locale,
            recipient=recipient,
        )

    def _finish(
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
    ) -> None:
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
        with self.db.write() as conn:
            messages.update(conn, message.id, **values)
            if status in (messages.SENT, messages.DELIVERED, messages.FAILED):
                kind = "sent" if status == messages.SENT else status
                messages.record_event(
                    conn, message.id, kind, now, {"reason": reason} if reason else {}
                )
                timeline(conn, self.db, message, kind, now)
        if self.metrics is not None:
            self.metrics.messages.labels(message.channel, status).inc()


def timeline(conn: Any, db: Database, message: Message, kind: str, now: int, **extra: Any) -> None:
    """The message event as an event on the person's timeline."""
    internal_events.track(
        conn,
        db,
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


class DeliveryRunner(WorkLoop):
    """Delivers while there is work; sleeps until woken (a journey queued a message in
    this process) or `idle_seconds` pass (messages queued elsewhere, retries due)."""

    def __init__(self, deliverer: Deliverer, idle_seconds: float) -> None:
        super().__init__("delivery", deliverer.run_once, idle_seconds)
        self.deliverer = deliverer

    def stop(self) -> None:
        super().stop()
        for channel in self.deliverer.channels.values():
            close: Callable[[], None] | None = getattr(channel, "close", None)
            if close is not None:
                close()
