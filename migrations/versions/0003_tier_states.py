"""tier state: consumption so far in each account's billing cycle

Tiered tariffs (阶梯) price by the consumption accumulated in a cycle (a month
or a year from a configurable start day). One row per account and cycle
holds that running total, moved in the same transaction as the charge.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tier_states",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("cycle_start", sa.Date(), nullable=False),
        sa.Column("consumed", sa.BigInteger(), nullable=False, server_default="0"),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_tier_states_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("account_id", "cycle_start", name=op.f("pk_tier_states")),
    )


def downgrade() -> None:
    op.drop_table("tier_states")
