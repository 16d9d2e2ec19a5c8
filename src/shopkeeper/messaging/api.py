"""Admin API for messages: a person's messages, the outbox, templates (with a preview
for a real profile), the in-app inbox that apps read and mark, and push
subscriptions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from shopkeeper.admin import audit
from shopkeeper.admin.auth import Admin
from shopkeeper.errors import ApiError
from shopkeeper.messaging import content as content_mod
from shopkeeper.messaging import delivery, messages, template_store, templates
from shopkeeper.messaging.channels.base import CHANNELS, IN_APP, ONSITE
from shopkeeper.profiles.api import profile_id_for_ref
from shopkeeper.storage import tables as t

if TYPE_CHECKING:
    from shopkeeper.bootstrap import Services

router = APIRouter(tags=["Messages"])

ChannelParam = Annotated[str, Path(description="email, sms, whatsapp, web_push, ...")]


def _services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def _profile_ids(services: Services, ref: str) -> list[int]:
    """The person's profile and the profiles merged into it (their messages are theirs)."""
    profile_id = profile_id_for_ref(services, ref)
    with services.db.read() as conn:
        merged = conn.execute(
            sa.select(t.profiles.c.id).where(t.profiles.c.merged_into == profile_id)
        ).scalars()
        return [profile_id, *(int(i) for i in merged)]


@router.get("/api/messages", summary="Messages, newest first: a person's, or all of them")
def list_messages(
    request: Request,
    _admin: Admin,
    profile: Annotated[
        str | None, Query(description="type:value, e.g. email:ana@example.com")
    ] = None,
    status: Annotated[str | None, Query(max_length=20)] = None,
    channel: Annotated[str | None, Query(max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    services = _services(request)
    m = t.messages
    query = sa.select(m).order_by(m.c.created_at.desc(), m.c.id.desc())
    if profile is not None:
        query = query.where(m.c.profile_id.in_(_profile_ids(services, profile)))
    if status is not None:
        query = query.where(m.c.status == status)
    if channel is not None:
        query = query.where(m.c.channel == channel)
    with services.db.read() as conn:
        rows = conn.execute(query.limit(limit).offset(offset)).all()
    return {"messages": [messages.as_dict(messages._message(r)) for r in rows]}


@router.get("/api/messages/{message_id}", summary="One message with what happened to it")
def get_message(
    request: Request, _admin: Admin, message_id: Annotated[int, Path(ge=1)]
) -> dict[str, Any]:
    services = _services(request)
    with services.db.read() as conn:
        found = messages.get(conn, message_id)
        if found is None:
            raise ApiError(404, "not_found", f"There is no message {message_id}.", "message_id")
        e = t.message_events
        events = [
            {"kind": r.kind, "at": int(r.at), "detail": r.detail}
            for r in conn.execute(sa.select(e).where(e.c.message_id == message_id).order_by(e.c.id))
        ]
    return {**messages.as_dict(found), "events": events}


class ProviderEventIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message_id: int | None = Field(default=None, ge=1, description="Shopkeeper's message id")
    provider_id: str | None = Field(
        default=None, max_length=300, description="Or the provider's id for the message"
    )
    kind: str = Field(
        pattern="^(delivered|bounced|complained|failed)$",
        description="delivered; bounced (a hard bounce) and complained suppress the address",
    )
    reason: str | None = Field(default=None, max_length=500)


@router.post(
    "/api/messages/events",
    summary="What a provider reported later: delivered, bounced, complained (for the "
    "provider's webhook, relayed with an admin key)",
)
def provider_event(request: Request, _admin: Admin, body: ProviderEventIn) -> dict[str, Any]:
    services = _services(request)
    if (body.message_id is None) == (body.provider_id is None):
        raise ApiError(422, "invalid_request", "Give message_id or provider_id.", "message_id")
    now = services.clock.now_ms()
    m = t.messages
    with services.db.write() as conn:
        where = (
            m.c.id == body.message_id
            if body.message_id is not None
            else m.c.provider_id == body.provider_id
        )
        found_id = conn.execute(sa.select(m.c.id).where(where).limit(1)).scalar()
        found = messages.get(conn, int(found_id)) if found_id is not None else None
        if found is None:
            raise ApiError(404, "not_found", "No message matches.", "message_id")
        detail = {"reason": body.reason} if body.reason else {}
        messages.record_event(conn, found.id, body.kind, now, detail)
        if body.kind == "delivered":
            messages.update(conn, found.id, status=messages.DELIVERED, delivered_at=now)
            delivery.timeline(conn, services.db, found, "delivered", now)
        else:
            messages.update(conn, found.id, status=messages.FAILED, reason=body.reason or body.kind)
            delivery.timeline(conn, services.db, found, "failed", now, reason=body.kind)
            if body.kind in ("bounced", "complained") and found.recipient:
                messages.suppress(conn, services.db, found.channel, found.recipient, body.kind, now)
    return {"message_id": found.id, "kind": body.kind}


# -- templates --------------------------------------------------------------------------


class TemplateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    locale: str = Field(default="", max_length=40, description='"" for the default variant')
    parts: dict[str, Any] = Field(description="subject, text, html, title, body... (Jinja2)")


class PreviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    profile: str = Field(description="type:value of a real person to render for")
    key: str | None = Field(default=None, description="A saved template")
    parts: dict[str, Any] | None = Field(default=None, description="Or unsaved parts")
    locale: str | None = Field(default=None, description="Force a variant (else theirs)")
    variables: dict[str, Any] = Field(default_factory=dict)


@router.get("/api/templates", summary="Every template with its channels and locales")
def list_templates(request: Request, _admin: Admin) -> dict[str, Any]:
    with _services(request).db.read() as conn:
        return {"templates": template_store.list_templates(conn)}


@router.get("/api/templates/{key}/{channel}", summary="A template's variants")
def get_template(
    request: Request, _admin: Admin, key: str, channel: ChannelParam
) -> dict[str, Any]:
    with _services(request).db.read() as conn:
        variants = template_store.get_variants(conn, key, channel)
    if not variants:
        raise ApiError(404, "not_found", f'There is no {channel} template "{key}".', "key")
    return {"key": key, "channel": channel, "variants": variants}


@router.put("/api/templates/{key}/{channel}", summary="Save one locale's variant of a template")
def put_template(
    request: Request, admin: Admin, key: str, channel: ChannelParam, body: TemplateIn
) -> dict[str, Any]:
    services = _services(request)
    now = services.clock.now_ms()
    try:
        with services.db.write() as conn:
            template_store.save_template(conn, key, channel, body.locale, body.parts, now)
            audit.record(
                conn, at_ms=now, actor=audit.key_actor(admin), action="template.save",
                target=f"template {key}/{channel}", details={"locale": body.locale},
            )  # fmt: skip
    except template_store.TemplateInvalid as exc:
        raise ApiError(422, "invalid_template", str(exc), getattr(exc, "field", None)) from None
    with services.db.read() as conn:
        return {
            "key": key,
            "channel": channel,
            "variants": template_store.get_variants(conn, key, channel),
        }


@router.delete("/api/templates/{key}/{channel}", summary="Delete a template (or one locale)")
def delete_template(
    request: Request,
    admin: Admin,
    key: str,
    channel: ChannelParam,
    locale: Annotated[str | None, Query(max_length=40)] = None,
) -> dict[str, Any]:
    services = _services(request)
    now = services.clock.now_ms()
    with services.db.write() as conn:
        deleted = template_store.delete_template(conn, key, channel, locale)
        audit.record(
            conn, at_ms=now, actor=audit.key_actor(admin), action="template.delete",
            target=f"template {key}/{channel}", details={"locale": locale},
        )  # fmt: skip
    return {"deleted": deleted}


@router.post(
    "/api/templates/{channel}/preview",
    summary="Render a template for a real person, as they would receive it",
)
def preview_template(
    request: Request, _admin: Admin, channel: ChannelParam, body: PreviewIn
) -> dict[str, Any]:
    services = _services(request)
    if channel not in CHANNELS:
        raise ApiError(
            422, "invalid_channel", f"channel is one of {', '.join(CHANNELS)}.", "channel"
        )
    profile_id = profile_id_for_ref(services, body.profile)
    now = services.clock.now_ms()
    settings = services.settings
    with services.db.read() as conn:
        if body.parts is not None:
            variants: dict[str, Any] = {"": body.parts}
        elif body.key:
            variants = template_store.get_variants(conn, body.key, channel)
        else:
            raise ApiError(422, "invalid_request", "Give key or parts.", "key")
        context = content_mod.message_context(
            conn, profile_id, settings=settings, variables=body.variables, now_ms=now,
            channel=channel, journey_key="preview",
        )  # fmt: skip
    wanted = body.locale or context.get("locale")
    try:
        locale, parts = templates.pick_variant(variants, wanted, settings.default_locale)
        rendered = templates.render(
            parts,
            context,
            locale=str(wanted or settings.default_locale),
            currency=str(context.get("currency") or settings.shop_currency),
            timezone=str(context.get("timezone") or settings.default_timezone),
        )
    except templates.TemplateMissing as exc:
        raise ApiError(404, "not_found", str(exc), "key") from None
    except templates.RenderError as exc:
        raise ApiError(422, "render_error", str(exc), getattr(exc, "part", None)) from None
    return {"locale": locale, "rendered": rendered}


# -- in-app inbox and on-site -----------------------------------------------------------


@router.get("/api/inbox", summary="A person's in-app (or on-site) messages, newest first")
def inbox(
    request: Request,
    _admin: Admin,
    profile: Annotated[str, Query(description="type:value of the person")],
    channel: Annotated[str, Query(pattern="^(in_app|onsite)$")] = IN_APP,
    unread: bool = False,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    services = _services(request)
    ids = _profile_ids(services, profile)
    m = t.messages
    query = (
        sa.select(m.c.id, m.c.content, m.c.sent_at, m.c.read_at, m.c.template)
        .where(m.c.profile_id.in_(ids), m.c.channel == channel, m.c.status == messages.DELIVERED)
        .order_by(m.c.sent_at.desc())
        .limit(limit)
    )
    if unread:
        query = query.where(m.c.read_at.is_(None))
    with services.db.read() as conn:
        rows = conn.execute(query).all()
    return {
        "messages": [
            {
                "id": int(r.id),
                "content": r.content,
                "sent_at": r.sent_at,
                "read_at": r.read_at,
                "template": r.template,
            }
            for r in rows
        ]
    }


@router.post("/api/inbox/{message_id}/read", summary="Mark an in-app message read")
def mark_read(
    request: Request, _admin: Admin, message_id: Annotated[int, Path(ge=1)]
) -> dict[str, Any]:
    services = _services(request)
    now = services.clock.now_ms()
    m = t.messages
    with services.db.write() as conn:
        found = messages.get(conn, message_id)
        if found is None or found.channel not in (IN_APP, ONSITE):
            raise ApiError(404, "not_found", f"There is no inbox message {message_id}.", "id")
        conn.execute(
            m.update().where(m.c.id == message_id, m.c.read_at.is_(None)).values(read_at=now)
        )
        if found.status == messages.DELIVERED:
            # Reading an in-app message is its open.
            conn.execute(
                m.update()
                .where(m.c.id == message_id, m.c.opened_at.is_(None))
                .values(opened_at=now)
            )
    return {"id": message_id, "read": True}


# -- push subscriptions -----------------------------------------------------------------


class PushIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    profile: str = Field(description="type:value of the person")
    kind: str = Field(pattern="^(web|mobile)$")
    address: str = Field(min_length=1, max_length=2000, description="Endpoint URL or token")
    keys: dict[str, str] = Field(default_factory=dict, description="Web push p256dh and auth")


@router.post("/api/push-subscriptions", status_code=201, summary="Register a push address")
def add_push(request: Request, _admin: Admin, body: PushIn) -> dict[str, Any]:
    services = _services(request)
    profile_id = profile_id_for_ref(services, body.profile)
    if body.kind == "web" and not (
        body.address.startswith("https://") and {"p256dh", "auth"} <= set(body.keys)
    ):
        raise ApiError(
            422,
            "invalid_subscription",
            "A web push subscription has an https endpoint and the keys p256dh and auth.",
            "keys",
        )
    now = services.clock.now_ms()
    s = t.push_subscriptions
    with services.db.write() as conn:
        stmt = services.db.upsert(s, ["address"], ["profile_id", "kind", "keys", "updated_at"])
        conn.execute(
            stmt.values(
                profile_id=profile_id,
                kind=body.kind,
                address=body.address,
                keys=body.keys,
                created_at=now,
                updated_at=now,
            )
        )
    return {"profile_id": profile_id, "kind": body.kind, "address": body.address}
