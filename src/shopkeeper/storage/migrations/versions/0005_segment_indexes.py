"""an index of applied track events by name and profile, for segment conditions

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 14:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_events_event_profile_id_timestamp",
            ["event", "profile_id", "timestamp"],
            unique=False,
            sqlite_where=sa.text("status = 1 AND type = 'track'"),
            postgresql_where=sa.text("status = 1 AND type = 'track'"),
        )


def downgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_event_profile_id_timestamp")
