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
