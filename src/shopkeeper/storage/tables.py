"""The tables, as SQLAlchemy Core. Alembic migrations create exactly this schema
(a test compares them).

Times are epoch milliseconds in BIGINT columns: the same arithmetic on both databases.
Free-form data (messages, traits, computed attributes) lives in JSON columns (JSONB on
PostgreSQL).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# An auto-incrementing BIGINT that is SQLite's rowid alias there.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON().with_variant(JSONB(), "postgresql")

# Event status in the log.
PENDING = 0
APPLIED = 1
PARKED = 2
DROPPED = 3

sources = sa.Table(
    "sources",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    # web, app, server, email, pos, crm, ...: what kind of place the events come from.
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("write_key", sa.String(100), nullable=False, unique=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("revoked_at", sa.BigInteger, nullable=True),
)

admin_keys = sa.Table(
    "admin_keys",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(200), nullable=False),
    # SHA-256 of the key: keys are 256-bit random, so a slow hash adds nothing.
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("key_prefix", sa.String(16), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("revoked_at", sa.BigInteger, nullable=True),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("seq", BigId, primary_key=True, autoincrement=True),
    sa.Column("source_id", sa.BigInteger, nullable=False),
    sa.Column("message_id", sa.String(200), nullable=False),
    sa.Column("type", sa.String(16), nullable=False),
    # The track event name, or the page/screen name.
    sa.Column("event", sa.String(500), nullable=True),
    sa.Column("user_id", sa.String(500), nullable=True),
    sa.Column("anonymous_id", sa.String(500), nullable=True),
    # Events of one identity key share a partition; a partition is applied by one worker
    # at a time, in log order.
    sa.Column("partition", sa.SmallInteger, nullable=False),
    sa.Column("timestamp", sa.BigInteger, nullable=False),
    sa.Column("received_at", sa.BigInteger, nullable=False),
    sa.Column("status", sa.SmallInteger, nullable=False, server_default=sa.text("0")),
    sa.Column("profile_id", sa.BigInteger, nullable=True),
    sa.Column("processed_at", sa.BigInteger, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("payload", Json, nullable=False),
    sa.UniqueConstraint("source_id", "message_id"),
    sa.Index(
        "ix_events_pending",
        "seq",
        sqlite_where=sa.text("status = 0"),
        postgresql_where=sa.text("status = 0"),
    ),
    sa.Index(
        "ix_events_parked",
        "seq",
        sqlite_where=sa.text("status = 2"),
        postgresql_where=sa.text("status = 2"),
    ),
    sa.Index("ix_events_profile_id_timestamp", "profile_id", "timestamp"),
    sa.Index("ix_events_received_at", "received_at"),
    # Segment conditions on events (`did "X" ... within ...`): one profile's events of a
    # name in a window, or everybody's events of that name when a population is counted.
    sa.Index(
        "ix_events_event_profile_id_timestamp",
        "event",
        "profile_id",
        "timestamp",
        sqlite_where=sa.text(f"status = {APPLIED} AND type = 'track'"),
        postgresql_where=sa.text(f"status = {APPLIED} AND type = 'track'"),
    ),
)

profiles = sa.Table(
    "profiles",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    # Set when this profile was absorbed by a merge: its id keeps resolving to the
    # survivor. Chains are kept flat (always the final survivor).
    sa.Column("merged_into", sa.BigInteger, nullable=True),
    # A profile is known once it holds a user id, an email or a phone.
    sa.Column("is_known", sa.Boolean, nullable=False),
    # For search and lists: the name or email a person would recognise.
    sa.Column("display_name", sa.String(500), nullable=True),
    sa.Column("traits", Json, nullable=False),
    # When each trait was last set (ISO strings): the newest value wins, per trait.
    sa.Column("trait_times", Json, nullable=False),
    sa.Column("computed", Json, nullable=False),
    sa.Index("ix_profiles_merged_into", "merged_into"),
    sa.Index("ix_profiles_display_name", "display_name"),
)

identities = sa.Table(
    "identities",
    metadata,
    sa.Column("type", sa.String(100), primary_key=True),
    sa.Column("value", sa.String(500), primary_key=True),
    sa.Column("profile_id", sa.BigInteger, nullable=False),
    sa.Column("first_seen_at", sa.BigInteger, nullable=False),
    sa.Column("last_seen_at", sa.BigInteger, nullable=False),
    sa.Column("source_id", sa.BigInteger, nullable=True),
    sa.Index("ix_identities_profile_id", "profile_id"),
)

consents = sa.Table(
    "consents",
    metadata,
    sa.Column("profile_id", sa.BigInteger, primary_key=True),
    # email, sms, whatsapp, push, in_app, or "*" for every channel.
    sa.Column("channel", sa.String(40), primary_key=True),
    # marketing by default; categories from a consent manager (advertising, analytics...).
    sa.Column("purpose", sa.String(100), primary_key=True),
    sa.Column("granted", sa.Boolean, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    # Where the consent came from: the source name and how (trait, context, event).
    sa.Column("source", sa.String(200), nullable=True),
    sa.Column("via", sa.String(100), nullable=False),
    sa.Column("message_id", sa.String(200), nullable=True),
    # Segments ask "who granted email for marketing" of the whole population.
    sa.Index(
        "ix_consents_channel_purpose_profile_id", "channel", "purpose", "profile_id", "granted"
    ),
)

merges = sa.Table(
    "merges",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("at", sa.BigInteger, nullable=False),
    sa.Column("survivor_id", sa.BigInteger, nullable=False),
    # The absorbed profile; for a refused merge, the profile that was not merged.
    sa.Column("other_id", sa.BigInteger, nullable=False),
    # merged or refused
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    # The identifiers that linked the two profiles, as [type, value] pairs.
    sa.Column("identifiers", Json, nullable=False),
    sa.Column("message_id", sa.String(200), nullable=True),
    sa.Column("event_type", sa.String(16), nullable=True),
    sa.Index("ix_merges_survivor_id", "survivor_id"),
    sa.Index("ix_merges_other_id", "other_id"),
)

# Small key-value state of the installation (schema facts, counters that must persist).
meta = sa.Table(
    "meta",
    metadata,
    sa.Column("key", sa.String(100), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

# -- catalog ------------------------------------------------------------------------------

products = sa.Table(
    "products",
    metadata,
    # The shop's own product id (what events carry as properties.product_id).
    sa.Column("id", sa.String(200), primary_key=True),
    sa.Column("sku", sa.String(200), nullable=True),
    sa.Column("name", sa.String(500), nullable=False),
    sa.Column("description", sa.Text, nullable=True),
    # A path, most general first: "Home > Living room > Sofas".
    sa.Column("category", sa.String(500), nullable=True),
    sa.Column("brand", sa.String(200), nullable=True),
    sa.Column("price", sa.Float, nullable=True),
    sa.Column("sale_price", sa.Float, nullable=True),
    sa.Column("currency", sa.String(3), nullable=True),
    # None: stock is not tracked for this product.
    sa.Column("stock_quantity", sa.Integer, nullable=True),
    sa.Column("url", sa.Text, nullable=True),
    sa.Column("image_url", sa.Text, nullable=True),
    sa.Column("attributes", Json, nullable=False),
    # {locale: {"name": ..., "url": ...}}
    sa.Column("locales", Json, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.Column("deleted_at", sa.BigInteger, nullable=True),
    sa.Index("ix_products_sku", "sku"),
    sa.Index("ix_products_category", "category"),
    sa.Index("ix_products_brand", "brand"),
)

# Stock and price changes, for journeys to trigger on (Product Back In Stock, Product
# Price Dropped, Product Low Stock, Product Out Of Stock).
catalog_events = sa.Table(
    "catalog_events",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("product_id", sa.String(200), nullable=False),
    sa.Column("type", sa.String(100), nullable=False),
    sa.Column("at", sa.BigInteger, nullable=False),
    sa.Column("details", Json, nullable=False),
    sa.Index("ix_catalog_events_at", "at"),
    sa.Index("ix_catalog_events_product_id", "product_id"),
)

# Per product and day (days since 1970-01-01 UTC), kept by the pipeline.
product_stats = sa.Table(
    "product_stats",
    metadata,
    sa.Column("product_id", sa.String(200), primary_key=True),
    sa.Column("day", sa.Integer, primary_key=True),
    sa.Column("views", sa.Integer, nullable=False),
    sa.Column("cart_adds", sa.Integer, nullable=False),
    sa.Column("orders", sa.Integer, nullable=False),
    sa.Column("units", sa.Float, nullable=False),
    sa.Column("revenue", sa.Float, nullable=False),
)

# -- imports ------------------------------------------------------------------------------

imports = sa.Table(
    "imports",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    # customers, orders, products
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("filename", sa.String(500), nullable=False),
    # running, done, failed
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("actor", sa.String(200), nullable=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("finished_at", sa.BigInteger, nullable=True),
    sa.Column("bytes_total", sa.BigInteger, nullable=True),
    sa.Column("bytes_read", sa.BigInteger, nullable=False),
    sa.Column("rows_read", sa.BigInteger, nullable=False),
    sa.Column("imported", sa.BigInteger, nullable=False),
    sa.Column("duplicates", sa.BigInteger, nullable=False),
    sa.Column("rejected", sa.BigInteger, nullable=False),
    # The first rejected rows: [{"line": n, "reason": "..."}]
    sa.Column("errors", Json, nullable=False),
    sa.Column("options", Json, nullable=False),
    sa.Column("message", sa.Text, nullable=True),
)

# -- privacy and administration -----------------------------------------------------------

# Identifiers of erased people, hashed: events carrying them are dropped.
suppressions = sa.Table(
    "suppressions",
    metadata,
    sa.Column("type", sa.String(100), primary_key=True),
    sa.Column("value_hash", sa.String(64), primary_key=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("reason", sa.String(200), nullable=False),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("at", sa.BigInteger, nullable=False),
    # "admin key 3 (ops)", "user ana@shop.example", "cli"
    sa.Column("actor", sa.String(300), nullable=False),
    sa.Column("action", sa.String(100), nullable=False),
    # What it acted on, never personal data (a profile id, an import id, a key id).
    sa.Column("target", sa.String(300), nullable=True),
    sa.Column("details", Json, nullable=False),
    sa.Index("ix_audit_log_at", "at"),
)

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("email", sa.String(320), nullable=False, unique=True),
    sa.Column("name", sa.String(200), nullable=True),
    sa.Column("password_hash", sa.String(300), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("last_login_at", sa.BigInteger, nullable=True),
    sa.Column("disabled_at", sa.BigInteger, nullable=True),
)

# Admin UI sessions, server-side so that logout and disabling a user end them at once.
ui_sessions = sa.Table(
    "ui_sessions",
    metadata,
    # SHA-256 of the cookie's token.
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.BigInteger, nullable=False),
    sa.Column("csrf_token", sa.String(100), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("expires_at", sa.BigInteger, nullable=False),
    sa.Index("ix_ui_sessions_user_id", "user_id"),
)

# -- segments, scores, audiences, the scheduler --------------------------------------------

segments = sa.Table(
    "segments",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    # What the API, the UI and `in segment "..."` call it.
    sa.Column("key", sa.String(100), nullable=False, unique=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("description", sa.Text, nullable=True),
    # The condition as the marketer wrote it, and its parsed form (the JSON AST).
    sa.Column("condition", sa.Text, nullable=False),
    sa.Column("ast", Json, nullable=False),
    # Real-time: re-evaluated for a profile whenever the pipeline applies its events.
    sa.Column("realtime", sa.Boolean, nullable=False),
    # Scheduled segments (and the time-dependent part of real-time ones) are refreshed
    # for the whole population at this interval.
    sa.Column("refresh_minutes", sa.Integer, nullable=False),
    # The built-in segment it was enabled from, if any.
    sa.Column("builtin", sa.String(100), nullable=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("refreshed_at", sa.BigInteger, nullable=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)

segment_members = sa.Table(
    "segment_members",
    metadata,
    sa.Column("segment_id", sa.BigInteger, primary_key=True),
    sa.Column("profile_id", sa.BigInteger, primary_key=True),
    sa.Column("entered_at", sa.BigInteger, nullable=False),
    sa.Index("ix_segment_members_profile_id", "profile_id"),
)

# Every entry and exit, in order: the membership history, and the stream of
# `Segment Entered` / `Segment Exited` events that journeys and audience syncs read by id.
segment_history = sa.Table(
    "segment_history",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("segment_id", sa.BigInteger, nullable=False),
    sa.Column("profile_id", sa.BigInteger, nullable=False),
    sa.Column("at", sa.BigInteger, nullable=False),
    # True: entered; False: exited.
    sa.Column("entered", sa.Boolean, nullable=False),
    sa.Index("ix_segment_history_segment_id_id", "segment_id", "id"),
    sa.Index("ix_segment_history_profile_id", "profile_id"),
)

# Size over time: one row per segment per refresh (at most one per hour is kept).
segment_sizes = sa.Table(
    "segment_sizes",
    metadata,
    sa.Column("segment_id", sa.BigInteger, primary_key=True),
    sa.Column("at", sa.BigInteger, primary_key=True),
    sa.Column("size", sa.Integer, nullable=False),
)

# Scores kept on every profile that has one: RFM (recomputed for the population on a
# schedule), the lead score (updated as events arrive, decayed), when each was computed.
profile_scores = sa.Table(
    "profile_scores",
    metadata,
    sa.Column("profile_id", sa.BigInteger, primary_key=True),
    sa.Column("rfm_recency", sa.SmallInteger, nullable=True),
    sa.Column("rfm_frequency", sa.SmallInteger, nullable=True),
    sa.Column("rfm_monetary", sa.SmallInteger, nullable=True),
    sa.Column("rfm_segment", sa.String(40), nullable=True),
    sa.Column("rfm_at", sa.BigInteger, nullable=True),
    sa.Column("lead_score", sa.Float, nullable=True),
    sa.Column("lead_score_at", sa.BigInteger, nullable=True),
    sa.Index("ix_profile_scores_rfm_segment", "rfm_segment"),
)

# Lead score point rules: an event (with property filters) or a profile condition earns
# points.
lead_score_rules = sa.Table(
    "lead_score_rules",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(200), nullable=False),
    # The event that earns the points, or null for a profile condition rule.
    sa.Column("event", sa.String(500), nullable=True),
    # Filters on the event's properties, or the profile condition (segment language).
    sa.Column("condition", sa.Text, nullable=True),
    sa.Column("points", sa.Float, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)

# The profiles that satisfy each profile-condition lead rule now: a rule's points are
# earned when a profile comes to satisfy it (a row appears), not again while it stays.
lead_rule_matches = sa.Table(
    "lead_rule_matches",
    metadata,
    sa.Column("rule_id", sa.BigInteger, primary_key=True),
    sa.Column("profile_id", sa.BigInteger, primary_key=True),
    sa.Column("since", sa.BigInteger, nullable=False),
    sa.Index("ix_lead_rule_matches_profile_id", "profile_id"),
)

# Audiences kept in sync with a segment at a destination (a webhook).
audience_syncs = sa.Table(
    "audience_syncs",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("segment_id", sa.BigInteger, nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    # webhook (plain fields) or a hashed advertising format: meta, google.
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("url", sa.String(2000), nullable=False),
    # Headers to send (an Authorization token...), kept as given.
    sa.Column("headers", Json, nullable=False),
    sa.Column("fields", Json, nullable=False),
    sa.Column("interval_minutes", sa.Integer, nullable=False),
    # The last segment_history id whose change the destination has acknowledged.
    sa.Column("cursor", sa.BigInteger, nullable=False),
    # A full load (every member as of `cursor`, sent as additions) is under way while
    # this is set: members with a higher profile id are still to be sent. -1: a full load
    # is wanted and has not started (a new audience, or a resync).
    sa.Column("full_load_after", sa.BigInteger, nullable=True),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("next_run_at", sa.BigInteger, nullable=False),
    # The process running this sync holds it until then (claimed in one UPDATE).
    sa.Column("lease_until", sa.BigInteger, nullable=True),
    # Consecutive failures (backoff grows with them) and the last error.
    sa.Column("failures", sa.Integer, nullable=False),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)

audience_sync_runs = sa.Table(
    "audience_sync_runs",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("sync_id", sa.BigInteger, nullable=False),
    sa.Column("started_at", sa.BigInteger, nullable=False),
    sa.Column("finished_at", sa.BigInteger, nullable=True),
    sa.Column("added", sa.Integer, nullable=False),
    sa.Column("removed", sa.Integer, nullable=False),
    # The history ids this run covered: (from_cursor, to_cursor].
    sa.Column("from_cursor", sa.BigInteger, nullable=False),
    sa.Column("to_cursor", sa.BigInteger, nullable=False),
    # ok, failed
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("error", sa.Text, nullable=True),
    sa.Index("ix_audience_sync_runs_sync_id", "sync_id", "id"),
)

# Periodic work shared by every process: a task runs in one process at a time (the one
# holding the lease) when it is due.
scheduled_tasks = sa.Table(
    "scheduled_tasks",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("next_run_at", sa.BigInteger, nullable=False),
    sa.Column("lease_owner", sa.String(100), nullable=True),
    sa.Column("lease_until", sa.BigInteger, nullable=True),
    sa.Column("last_started_at", sa.BigInteger, nullable=True),
    sa.Column("last_finished_at", sa.BigInteger, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
)

# -- journeys -----------------------------------------------------------------------------

journeys = sa.Table(
    "journeys",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(100), nullable=False, unique=True),
    sa.Column("name", sa.String(200), nullable=False),
    # draft (validated, not entering anyone), active, paused (no new entries; enrollments
    # in flight go on), archived (no entries; enrollments in flight stop).
    sa.Column("status", sa.String(20), nullable=False),
    # The version new enrollments get; enrollments keep the version they entered with.
    sa.Column("version", sa.Integer, nullable=False),
    # The playbook it was created from, if any.
    sa.Column("playbook", sa.String(100), nullable=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)

# Every saved definition: editing a journey adds a version, never rewrites one.
journey_versions = sa.Table(
    "journey_versions",
    metadata,
    sa.Column("journey_id", sa.BigInteger, primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    # The definition as JSON (the YAML the marketer wrote is kept beside it).
    sa.Column("definition", Json, nullable=False),
    sa.Column("source", sa.Text, nullable=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("created_by", sa.String(200), nullable=True),
)

# One person's way through one journey.
enrollments = sa.Table(
    "enrollments",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("journey_id", sa.BigInteger, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("profile_id", sa.BigInteger, nullable=False),
    # What made this enrollment unique: the dedupe value (a cart id), else the entering
    # event's messageId or the segment history id; entering twice on it is impossible.
    sa.Column("entry_key", sa.String(300), nullable=False),
    # active, completed (reached an exit step or the end), exited (exit criteria),
    # stopped (the journey was archived), failed.
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("step", sa.String(100), nullable=True),
    # When the engine wants to be woken (a wait ending, a wait-for timing out).
    sa.Column("wake_at", sa.BigInteger, nullable=True),
    # The engine's state: entry properties, waits, split choices, variables (coupon).
    sa.Column("state", Json, nullable=False),
    # In the holdout: goes through the journey, is sent nothing, and is measured.
    sa.Column("holdout", sa.Boolean, nullable=False),
    sa.Column("entered_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.Column("ended_at", sa.BigInteger, nullable=True),
    sa.Column("end_reason", sa.String(200), nullable=True),
    # The goal: first conversion within the attribution window, and its revenue.
    sa.Column("converted_at", sa.BigInteger, nullable=True),
    sa.Column("revenue", sa.Float, nullable=True),
    # The process advancing this enrollment holds it until then.
    sa.Column("lease_until", sa.BigInteger, nullable=True),
    sa.UniqueConstraint("journey_id", "entry_key"),
    sa.Index("ix_enrollments_profile_id_status", "profile_id", "status"),
    sa.Index("ix_enrollments_wake_at", "wake_at"),
    sa.Index("ix_enrollments_journey_id_status", "journey_id", "status"),
)

# Each step an enrollment reached, once: counts per step, and the guard that makes a
# step's actions happen once however often the engine is replayed.
enrollment_steps = sa.Table(
    "enrollment_steps",
    metadata,
    sa.Column("enrollment_id", sa.BigInteger, primary_key=True),
    sa.Column("step", sa.String(100), primary_key=True),
    sa.Column("journey_id", sa.BigInteger, nullable=False),
    sa.Column("at", sa.BigInteger, nullable=False),
    # What happened there: sent, held_out, skipped, branch taken...
    sa.Column("outcome", sa.String(100), nullable=True),
    sa.Index("ix_enrollment_steps_journey_id_step", "journey_id", "step"),
)

# -- messaging ----------------------------------------------------------------------------

# Every message, from queued to delivered (or not): the outbox, the delivery queue and
# the record of what each person was sent.
messages = sa.Table(
    "messages",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    # enrollment:step for journeys, or the caller's key for API sends: a message is
    # created once per key.
    sa.Column("idempotency_key", sa.String(300), nullable=False, unique=True),
    sa.Column("profile_id", sa.BigInteger, nullable=False),
    sa.Column("journey_id", sa.BigInteger, nullable=True),
    sa.Column("enrollment_id", sa.BigInteger, nullable=True),
    sa.Column("step", sa.String(100), nullable=True),
    # email, sms, whatsapp, web_push, mobile_push, in_app, onsite, webhook, outbox
    sa.Column("channel", sa.String(40), nullable=False),
    sa.Column("template", sa.String(100), nullable=True),
    sa.Column("transactional", sa.Boolean, nullable=False),
    # queued, sending, sent, delivered, failed, skipped (consent, suppression, cap,
    # render error...: see reason), held_out
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    # The address it went to (email, E.164 phone, push endpoint or token).
    sa.Column("recipient", sa.String(2000), nullable=True),
    sa.Column("locale", sa.String(40), nullable=True),
    # The rendered message (subject, text, html, title, body, url, data...), kept once
    # rendered so that a retry sends the same thing.
    sa.Column("content", Json, nullable=True),
    # Values the message was made with: the triggering product, the coupon code...
    sa.Column("variables", Json, nullable=False),
    # Not before (quiet hours, send-time optimisation, retry backoff).
    sa.Column("send_at", sa.BigInteger, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("lease_until", sa.BigInteger, nullable=True),
    sa.Column("provider_id", sa.String(300), nullable=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("sent_at", sa.BigInteger, nullable=True),
    sa.Column("delivered_at", sa.BigInteger, nullable=True),
    sa.Column("opened_at", sa.BigInteger, nullable=True),
    sa.Column("clicked_at", sa.BigInteger, nullable=True),
    # In-app inbox and on-site: when the person read (or dismissed) it.
    sa.Column("read_at", sa.BigInteger, nullable=True),
    sa.Index("ix_messages_status_send_at", "status", "send_at"),
    sa.Index("ix_messages_profile_id_created_at", "profile_id", "created_at"),
    sa.Index("ix_messages_journey_id", "journey_id"),
)

# What happened to messages after they were handed over: delivered, opened, clicked,
# bounced, complained, unsubscribed, converted.
message_events = sa.Table(
    "message_events",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("message_id", sa.BigInteger, nullable=False),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("at", sa.BigInteger, nullable=False),
    sa.Column("detail", Json, nullable=False),
    sa.Index("ix_message_events_message_id", "message_id"),
)

# Addresses that must not be sent to on a channel: bounced, complained, unsubscribed
# from everything, or added by hand.
message_suppressions = sa.Table(
    "message_suppressions",
    metadata,
    sa.Column("channel", sa.String(40), primary_key=True),
    sa.Column("address", sa.String(2000), primary_key=True),
    sa.Column("reason", sa.String(200), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)

# Message templates: one per key and channel, with a variant per locale.
message_templates = sa.Table(
    "message_templates",
    metadata,
    sa.Column("key", sa.String(100), primary_key=True),
    sa.Column("channel", sa.String(40), primary_key=True),
    # "" for the default variant, else a BCP 47 tag (nb-NO, nb, de).
    sa.Column("locale", sa.String(40), primary_key=True),
    # subject, text, html, title, body, url... as Jinja2 (sandboxed) sources.
    sa.Column("parts", Json, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)

# Web push subscriptions and mobile push tokens, per profile.
push_subscriptions = sa.Table(
    "push_subscriptions",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("profile_id", sa.BigInteger, nullable=False),
    # web (a browser's PushSubscription) or mobile (an FCM registration token).
    sa.Column("kind", sa.String(20), nullable=False),
    # The endpoint URL (web) or the token (mobile).
    sa.Column("address", sa.String(2000), nullable=False, unique=True),
    # Web push keys: {"p256dh": ..., "auth": ...}.
    sa.Column("keys", Json, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.Index("ix_push_subscriptions_profile_id", "profile_id"),
)

# -- coupons ------------------------------------------------------------------------------

coupon_pools = sa.Table(
    "coupon_pools",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(100), nullable=False, unique=True),
    sa.Column("name", sa.String(200), nullable=False),
    # How new codes look, e.g. "CART-{XXXXXX}"; null for a pool of imported codes only.
    sa.Column("pattern", sa.String(100), nullable=True),
    # What the code gives, for the message ("10%", "free shipping").
    sa.Column("discount", sa.String(200), nullable=True),
    # A code expires this long after it is issued (null: never)...
    sa.Column("valid_days", sa.Integer, nullable=True),
    # ...and no later than this (null: no end date).
    sa.Column("expires_at", sa.BigInteger, nullable=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)

coupons = sa.Table(
    "coupons",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("pool_id", sa.BigInteger, nullable=False),
    sa.Column("code", sa.String(100), nullable=False, unique=True),
    # Null until issued.
    sa.Column("profile_id", sa.BigInteger, nullable=True),
    sa.Column("journey_id", sa.BigInteger, nullable=True),
    sa.Column("enrollment_id", sa.BigInteger, nullable=True),
    sa.Column("issued_at", sa.BigInteger, nullable=True),
    sa.Column("expires_at", sa.BigInteger, nullable=True),
    sa.Column("redeemed_at", sa.BigInteger, nullable=True),
    sa.Column("order_id", sa.String(200), nullable=True),
    sa.Column("revenue", sa.Float, nullable=True),
    # One code per profile per journey (per pool).
    sa.UniqueConstraint("pool_id", "journey_id", "profile_id"),
    sa.Index("ix_coupons_pool_id_profile_id", "pool_id", "profile_id"),
    # The oldest free code of a pool, found without sorting the pool.
    sa.Index(
        "ix_coupons_free",
        "pool_id",
        "id",
        postgresql_where=sa.text("profile_id IS NULL AND redeemed_at IS NULL"),
        sqlite_where=sa.text("profile_id IS NULL AND redeemed_at IS NULL"),
    ),
)
