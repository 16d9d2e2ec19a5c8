"""One Settings object, read from SHOPKEEPER_* environment variables.

Read once at start-up by the composition root (bootstrap.py) and passed down; domain code
receives plain values, never the environment.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_IDENTITY_LIMITS: dict[str, int] = {
    # Two profiles holding different user ids never merge: one user id per profile.
    "user_id": 1,
    "email": 10,
    "phone": 10,
    # Cookies are cleared and devices change: a loyal customer collects many.
    "anonymous_id": 1000,
    "device_id": 100,
    "push_token": 100,
}

# Units of the shop currency for one unit of each currency. Operators set their own
# (there is no network to fetch rates from); orders in a currency missing here keep their
# amount in `revenue_unconverted` instead of being summed at a wrong rate.
DEFAULT_EXCHANGE_RATES: dict[str, float] = {}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SHOPKEEPER_", extra="ignore")

    database_url: str = "sqlite:///shopkeeper.db"
    # FULL: a committed event survives power loss, not only a crash of the process.
    sqlite_synchronous: str = "FULL"

    shop_currency: str = "USD"
    exchange_rates: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_EXCHANGE_RATES))
    # Region used to read phone numbers written without a country code, when the event
    # carries no country of its own (ISO 3166 alpha-2, e.g. "NO"). None: such numbers
    # are not used as identifiers.
    default_phone_region: str | None = None

    identity_limits: dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_IDENTITY_LIMITS))
    # Limit for identifier types not listed above (custom ids from context.externalIds).
    identity_limit_default: int = 10
    # Values that never link profiles, on top of the built-in list.
    junk_identifiers: list[str] = Field(default_factory=list)

    session_timeout_minutes: int = 30
    # A tracked product whose stock falls from above this to this or below (but not to 0)
    # records a "Product Low Stock" catalog event.
    low_stock_threshold: int = 5
    # Lead score (docs/scores.md): points halve every this many days, and the score never
    # exceeds the cap (points above it are dropped, not banked).
    lead_score_half_life_days: float = Field(default=30.0, gt=0)
    lead_score_cap: float = Field(default=100.0, gt=0)

    max_message_bytes: int = 32 * 1024
    max_request_bytes: int = 500 * 1024
    max_batch_messages: int = 2500
    # Largest file the admin API accepts for an import (the CLI reads files of any size).
    max_upload_bytes: int = 100 * 1024 * 1024

    pipeline_batch_size: int = 500
    pipeline_idle_seconds: float = 0.2
    write_key_cache_seconds: float = 5.0

    # Webhooks (audience syncs) may call private, loopback and link-local addresses. Off:
    # an admin key must not be able to make the server call its own network.
    webhook_allow_private: bool = False
    # Audience syncs (docs/audiences.md): records per request, the first retry delay
    # after a failure (doubling up to an hour), and the request timeout.
    audience_sync_batch_size: int = Field(default=10_000, ge=1, le=100_000)
    audience_sync_retry_seconds: int = Field(default=60, ge=1)
    audience_sync_timeout_seconds: float = Field(default=30.0, gt=0, le=120)

    # Segments (docs/segments.md): a real-time segment whose condition depends on the
    # passing of time (`within 90 days`) or on scores is re-checked for the whole
    # population this often, so a member leaves within this delay; other real-time
    # segments are reconciled this often (for changes outside the pipeline: the catalog
    # behind a product filter, imports).
    segment_time_refresh_minutes: int = Field(default=5, ge=1, le=1440)
    segment_reconcile_minutes: int = Field(default=1440, ge=5)
    # PostgreSQL: expression indexes for what the saved segments compare (segments/
    # indexes.py), at most this many; each costs profile writes a little.
    segment_indexes: bool = True
    segment_indexes_max: int = Field(default=32, ge=0, le=500)
    # The scheduler (segment refreshes, RFM, lead score decay, audience syncs) looks for
    # due tasks this often; RFM and lead-score decay run at these intervals.
    scheduler_tick_seconds: float = Field(default=15.0, gt=0)
    scheduler_enabled: bool = True
    rfm_interval_minutes: int = Field(default=60, ge=1)
    lead_score_refresh_minutes: int = Field(default=60, ge=1)

    # Journeys (docs/journeys.md): due timers are looked for this often (and whenever
    # the pipeline wakes the runner); a person is in at most this many enrollments of
    # one journey at once, and enters at most journey_entries_per_day journeys a day
    # (0: no limit).
    journey_tick_seconds: float = Field(default=5.0, gt=0)
    journey_max_concurrent: int = Field(default=1, ge=1)
    journey_entries_per_day: int = Field(default=0, ge=0)

    # Messaging (docs/messaging.md). The shop's public address, for links in messages
    # (open pixel, click tracking, unsubscribe): it must reach this server.
    public_url: str = "http://127.0.0.1:8000"
    # Signs unsubscribe and tracking links. Unset: a random key is made once and kept in
    # the database, so every process of one installation shares it.
    secret_key: str | None = None
    shop_name: str = "Shopkeeper demo store"
    shop_url: str = "http://127.0.0.1:8000/store"
    default_locale: str = "en"
    default_timezone: str = "UTC"
    # Orders of this much (shop currency) ship free; messages can say "spend X more".
    # None: the shop has no free-shipping threshold.
    free_shipping_threshold: float | None = Field(default=None, ge=0)
    # Frequency caps across journeys (0: none): messages per person per channel and in
    # all, per day and per week. Transactional messages do not count and are not capped.
    cap_per_channel_day: int = Field(default=2, ge=0)
    cap_per_channel_week: int = Field(default=5, ge=0)
    cap_all_day: int = Field(default=3, ge=0)
    cap_all_week: int = Field(default=8, ge=0)
    # Quiet hours in the person's time zone, as hours 0-23 (start > end wraps midnight);
    # equal: none. A message due in quiet hours is deferred to their end, or skipped.
    quiet_hours_start: int = Field(default=21, ge=0, le=23)
    quiet_hours_end: int = Field(default=8, ge=0, le=23)
    quiet_hours_action: str = Field(default="defer", pattern="^(defer|skip)$")
    # Delivery: messages handed to providers per claim, retries with backoff doubling
    # from message_retry_seconds, then failed.
    message_batch_size: int = Field(default=100, ge=1, le=10_000)
    message_max_attempts: int = Field(default=5, ge=1, le=50)
    message_retry_seconds: int = Field(default=30, ge=1)
    message_timeout_seconds: float = Field(default=15.0, gt=0, le=120)
    # A message being sent is leased for this long; if its sender dies, another process
    # retries it after the lease (with the same idempotency key).
    message_lease_seconds: int = Field(default=120, ge=1, le=3600)
    # Which adapter each channel uses: the provider's (smtp, twilio, fcm, webpush,
    # webhook) or "outbox", which only captures messages for the UI's outbox.
    channel_email: str = "outbox"
    channel_sms: str = "outbox"
    channel_whatsapp: str = "outbox"
    channel_web_push: str = "outbox"
    channel_mobile_push: str = "outbox"
    # Email over SMTP.
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    email_from: str = "Shopkeeper <shop@example.com>"
    # SMS and WhatsApp over a Twilio-shaped REST API.
    sms_base_url: str = "https://api.twilio.com"
    sms_account_sid: str | None = None
    sms_auth_token: str | None = None
    sms_from: str | None = None
    whatsapp_from: str | None = None
    # Mobile push over an FCM HTTP v1 shaped API (an OAuth access token, refreshed by
    # the operator's tooling).
    fcm_base_url: str = "https://fcm.googleapis.com"
    fcm_project_id: str | None = None
    fcm_access_token: str | None = None
    # Web push: the VAPID key pair (base64url, raw) and the contact claim.
    vapid_private_key: str | None = None
    vapid_public_key: str | None = None
    vapid_subject: str = "mailto:shop@example.com"

    host: str = "127.0.0.1"
    port: int = 8000

    @property
    def link_secret(self) -> str:
        """secret_key, which the composition root always fills in (bootstrap)."""
        if not self.secret_key:
            raise RuntimeError("secret_key is set by bootstrap.build_services")
        return self.secret_key

    @field_validator("identity_limits")
    @classmethod
    def _keep_default_limits(cls, value: dict[str, int]) -> dict[str, int]:
        # Setting one limit must not drop the others (losing user_id: 1 would let two
        # people with different user ids merge).
        for type_, limit in value.items():
            if limit < 1:
                raise ValueError(f"the limit for {type_} must be at least 1")
        return {**DEFAULT_IDENTITY_LIMITS, **value}


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
