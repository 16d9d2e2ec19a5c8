"""an index of consents by channel and purpose, for segments counted over everyone;
profiles' documents compressed with lz4 on PostgreSQL

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 17:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.create_index(
            "ix_consents_channel_purpose_profile_id",
            ["channel", "purpose", "profile_id", "granted"],
            unique=False,
        )
    bind = op.get_bind()
    if bind.dialect.name == "postgresql" and _has_lz4(bind):
        # A segment over the whole population reads these documents for every profile,
        # and PostgreSQL decompresses them on each read: lz4 does that in about half the
        # time of the default pglz (docs/benchmarks.md). Rows written from now on.
        op.execute(
            "ALTER TABLE profiles ALTER COLUMN computed SET COMPRESSION lz4, "
            "ALTER COLUMN traits SET COMPRESSION lz4"
        )


def _has_lz4(bind: sa.Connection) -> bool:
    """PostgreSQL 14 or newer, built with lz4."""
    row = bind.execute(
        sa.text("SELECT enumvals FROM pg_settings WHERE name = 'default_toast_compression'")
    ).first()
    return row is not None and "lz4" in (row[0] or [])


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql" and _has_lz4(bind):
        op.execute(
            "ALTER TABLE profiles ALTER COLUMN computed SET COMPRESSION DEFAULT, "
            "ALTER COLUMN traits SET COMPRESSION DEFAULT"
        )
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.drop_index("ix_consents_channel_purpose_profile_id")
