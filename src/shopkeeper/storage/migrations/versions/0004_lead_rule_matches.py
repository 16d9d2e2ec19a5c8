"""which profiles satisfy each profile-condition lead score rule

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 15:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lead_rule_matches",
        sa.Column("rule_id", sa.BigInteger(), nullable=False),
        sa.Column("profile_id", sa.BigInteger(), nullable=False),
        sa.Column("since", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("rule_id", "profile_id", name=op.f("pk_lead_rule_matches")),
    )
    with op.batch_alter_table("lead_rule_matches", schema=None) as batch_op:
        batch_op.create_index("ix_lead_rule_matches_profile_id", ["profile_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("lead_rule_matches", schema=None) as batch_op:
        batch_op.drop_index("ix_lead_rule_matches_profile_id")
    op.drop_table("lead_rule_matches")
