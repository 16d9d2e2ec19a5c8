"""Messaging settings: which adapter each channel uses and where it sends (secrets are
only ever said to be set or not), the consent rule, frequency caps and quiet hours, and
a test send: one message now, to an address typed in, through the very adapter delivery
uses, reporting the provider's answer or its refusal."""

from __future__ import annotations

import logging
import secrets
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import Response
from markupsafe import escape

from shopkeeper.admin import audit
from shopkeeper.config import Settings
from shopkeeper.identity.identifiers import normalize_email, normalize_phone
from shopkeeper.messaging import rules
from shopkeeper.messaging.channels import base
from shopkeeper.messaging.channels.base import Outgoing, ProviderError
from shopkeeper.messaging.channels.outbox import Outbox
from shopkeeper.messaging.channels.registry import OUTBOX, PROVIDERS
from shopkeeper.messaging.reach import CONSENT_CHANNEL
from shopkeeper.storage import tables as t
from shopkeeper.web.ui import CsrfForm, Session, form_text, now_ms, render, services

router = APIRouter(include_in_schema=False)
log = logging.getLogger(__name__)

QUIET_FIELDS = ("quiet_hours_start", "quiet_hours_end", "quiet_hours_action")
TEST_CHANNELS = (base.EMAIL, base.SMS, base.WHATSAPP, base.WEB_PUSH, base.MOBILE_PUSH)


def _is_set(value: object) -> str:
    return "set" if value else "not set"


def _public_url(url: str) -> str:
    """A URL without any user:password in it."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(not a URL)"
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def channel_rows(settings: Settings, adapters: dict[str, Any]) -> list[dict[str, Any]]:
    """Each channel: its setting, the provider named there, the adapter running, and
    the non-secret details of where it sends."""
    s = settings
    details: dict[str, list[tuple[str, str]]] = {
        base.EMAIL: [
            ("SMTP server", f"{s.smtp_host}:{s.smtp_port}"),
            ("STARTTLS", "yes" if s.smtp_starttls else "no"),
            ("User name", s.smtp_username or "none"),
            ("Password", _is_set(s.smtp_password)),
            ("From", s.email_from),
        ],
        base.SMS: [
            ("API", _public_url(s.sms_base_url)),
            ("Account SID", _is_set(s.sms_account_sid)),
            ("Auth token", _is_set(s.sms_auth_token)),
            ("From", s.sms_from or "not set"),
        ],
        base.WHATSAPP: [
            ("API", _public_url(s.sms_base_url)),
            ("Credentials", "the SMS ones (" + _is_set(s.sms_auth_token) + ")"),
            ("From", s.whatsapp_from or "not set"),
        ],
        base.WEB_PUSH: [
            ("VAPID subject", s.vapid_subject),
            ("VAPID public key", s.vapid_public_key or "not set"),
            ("VAPID private key", _is_set(s.vapid_private_key)),
        ],
        base.MOBILE_PUSH: [
            ("API", _public_url(s.fcm_base_url)),
            ("Project", s.fcm_project_id or "not set"),
            ("Access token", _is_set(s.fcm_access_token)),
        ],
    }
    rows = []
    for channel, (setting, builders) in PROVIDERS.items():
        provider = str(getattr(settings, setting)).strip().lower()
        adapter = adapters.get(channel)
        rows.append(
            {
                "channel": channel,
                "setting": f"SHOPKEEPER_{setting.upper()}",
                "provider": provider,
                "choices": [*builders, OUTBOX],
                "adapter": type(adapter).__name__ if adapter is not None else "none",
                "outbox": provider == OUTBOX,
                "details": [] if provider == OUTBOX else details.get(channel, []),
            }
        )
    return rows


def _consents(request: Request) -> dict[str, dict[str, int]]:
    """People who granted or refused marketing consent, per consent channel."""
    c = t.consents
    out: dict[str, dict[str, int]] = {}
    with services(request).db.read() as conn:
        for channel, granted, n in conn.execute(
            sa.select(c.c.channel, c.c.granted, sa.func.count())
            .where(c.c.purpose == "marketing")
            .group_by(c.c.channel, c.c.granted)
        ):
            out.setdefault(str(channel), {"granted": 0, "refused": 0})[
                "granted" if granted else "refused"
            ] += int(n)
    return out


def _page(
    request: Request, session: Session, *, result: dict[str, Any] | None = None,
    values: dict[str, str] | None = None, status: int = 200,
    rules_result: dict[str, Any] | None = None, rule_values: dict[str, Any] | None = None,
) -> Response:  # fmt: skip
    svc = services(request)
    with svc.db.read() as conn:
        current = rules.load(conn, svc.settings)
    adapters = dict(svc.deliverer.channels) if svc.deliverer is not None else {}
    consent_channels: dict[str, list[str]] = {}
    for channel, consent in CONSENT_CHANNEL.items():
        consent_channels.setdefault(consent, []).append(channel)
    return render(
        request,
        "channels.html",
        {
            "title": "Messaging settings",
            "rows": channel_rows(svc.settings, adapters),
            "s": svc.settings,
            "consent_channels": consent_channels,
            "consents": _consents(request),
            "test_channels": TEST_CHANNELS,
            "result": result,
            "values": values or {"channel": base.EMAIL, "address": ""},
            "rules": current,
            "rule_values": rule_values or current.as_dict(),
            "rules_result": rules_result,
        },
        session=session,
        status=status,
    )


@router.get("/settings/messaging")
def settings_page(request: Request, session: Session) -> Response:
    return _page(request, session)


def _test_content(channel: str, shop: str) -> dict[str, Any]:
    line = f"This is a test message from {shop}, sent from Shopkeeper's messaging settings."
    if channel == base.EMAIL:
        return {
            "subject": f"Test message from {shop}",
            "text": line + "\n\nIf you can read this, email works.",
            "html": f"<p>{escape(line)}</p><p>If you can read this, email works.</p>",
        }
    if channel in (base.WEB_PUSH, base.MOBILE_PUSH):
        return {"title": f"Test from {shop}", "body": "If you can read this, push works."}
    return {"body": line}


def _address(request: Request, channel: str, typed: str) -> tuple[str, dict[str, str]] | str:
    """The recipient as the adapter wants it (and web push keys), or what is wrong."""
    settings = services(request).settings
    if channel == base.EMAIL:
        email = normalize_email(typed)
        return (email, {}) if email else f"“{typed}” is not an email address."
    if channel in (base.SMS, base.WHATSAPP):
        phone = normalize_phone(typed, settings.default_phone_region)
        return (
            (phone, {}) if phone else f"“{typed}” is not a phone number (write it as +4791234567)."
        )
    if channel == base.WEB_PUSH:
        s = t.push_subscriptions
        with services(request).db.read() as conn:
            keys = conn.execute(
                sa.select(s.c["keys"]).where(s.c.address == typed, s.c.kind == "web")
            ).scalar()
        if keys is None:
            return "Web push needs a subscription a browser registered: paste its endpoint URL."
        return typed, dict(keys)
    if not typed:
        return "Paste the device's push token."
    return typed, {}


@router.post("/settings/messaging/test")
def test_send(request: Request, session: Session, form: CsrfForm) -> Response:
    svc = services(request)
    channel = form_text(form, "channel", 40)
    typed = form_text(form, "address", 2000)
    values = {"channel": channel, "address": typed}
    if channel not in TEST_CHANNELS:
        result = {"ok": False, "message": f"Choose a channel: {', '.join(TEST_CHANNELS)}."}
        return _page(request, session, result=result, values=values, status=400)
    found = _address(request, channel, typed)
    if isinstance(found, str):
        return _page(
            request, session, result={"ok": False, "message": found}, values=values, status=400
        )
    recipient, keys = found
    adapter = svc.deliverer.channels.get(channel) if svc.deliverer is not None else None
    if adapter is None:
        result = {"ok": False, "message": f"No {channel} channel is set up."}
        return _page(request, session, result=result, values=values, status=409)
    now = now_ms(request)
    outgoing = Outgoing(
        message_id=0,
        idempotency_key=f"test-send:{now}:{secrets.token_hex(8)}",
        channel=channel,
        recipient=recipient,
        content=_test_content(channel, svc.settings.shop_name),
        keys=keys,
    )
    try:
        delivered = adapter.send(outgoing)
    except ProviderError as exc:
        result = {"ok": False, "message": exc.reason, "retryable": exc.retryable}
    except Exception as exc:  # an adapter bug must not become a 500 on this page
        log.exception("test send on %s failed", channel)
        result = {"ok": False, "message": f"The {channel} adapter failed: {type(exc).__name__}"}
    else:
        result = {
            "ok": True,
            "provider_id": delivered.provider_id,
            "outbox": isinstance(adapter, Outbox),
        }
    result.update(channel=channel, recipient=recipient)
    with svc.db.write() as conn:
        audit.record(
            conn, at_ms=now, actor=session.actor, action="message.test_send",
            target=f"channel {channel}", details={"ok": result["ok"]},
        )  # fmt: skip
    return _page(request, session, result=result, values=values)


@router.post("/settings/messaging/rules")
def save_rules(request: Request, session: Session, form: CsrfForm) -> Response:
    """Frequency caps and quiet hours from the form; a bad value is said next to the
    form, with what was typed kept."""
    svc = services(request)
    now = now_ms(request)
    typed = {name: form_text(form, name, 20) for name in (*rules.CAP_FIELDS, *QUIET_FIELDS)}
    if form_text(form, "reset", 5):
        with svc.db.write() as conn:
            rules.reset(conn)
            audit.record(
                conn, at_ms=now, actor=session.actor, action="messaging.rules_reset",
                target="sending rules", details={},
            )  # fmt: skip
        done = {"ok": True, "message": "Back to the server's settings."}
        return _page(request, session, rules_result=done)
    with svc.db.write() as conn:
        try:
            changed = rules.validate(typed, rules.defaults(svc.settings))
        except rules.RulesInvalid as exc:
            label = exc.field.replace("_", " ").replace("cap ", "")
            wrong = {"ok": False, "message": f"Not saved: {label}: {exc}"}
            return _page(request, session, rules_result=wrong, rule_values=typed, status=400)
        rules.save(conn, svc.db, changed)
        audit.record(
            conn, at_ms=now, actor=session.actor, action="messaging.rules",
            target="sending rules", details=typed,
        )  # fmt: skip
    return _page(request, session, rules_result={"ok": True, "message": "Rules saved."})
