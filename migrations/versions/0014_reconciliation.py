"""reconciliation: each day's provider statement matched to our top-up orders

- ``reconciliation_runs``: one row per provider, day and run (a day may be run again:
  the latest run stands), with its totals and status;
- ``reconciliation_items``: every finding of a run that is not a plain match, and
  what was done about it (credited through the query path, an alarm raised).

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "reconciliation_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("ran_at", TZ, nullable=False),
        sa.Column("ran_by", sa.String(120), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("matched", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("totals", sa.JSON(), nullable=False),
        sa.Column("error", sa.String(500), nullable=False, server_default=""),
        sa.PrimaryKeyConstraint("id", name="pk_reconciliation_runs"),
        sa.CheckConstraint(
            "status IN ('clean', 'discrepancies', 'failed')", name="ck_reconciliation_runs_status"
        ),
    )
    op.create_index(
        "ix_reconciliation_runs_provider_day", "reconciliation_runs", ["provider", "day"]
    )
    op.create_table(
        "reconciliation_items",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column(
            "run_id",
            sa.Integer(),
            sa.ForeignKey(
                "reconciliation_runs.id", name="fk_reconciliation_items_run_id_reconciliation_runs"
            ),
            nullable=False,
        ),
        sa.Column("finding", sa.String(24), nullable=False),
        sa.Column("out_trade_no", sa.String(32), nullable=False),
        sa.Column("ours_fen", sa.BigInteger(), nullable=True),
        sa.Column("theirs_fen", sa.BigInteger(), nullable=True),
        sa.Column("transaction_id", sa.String(64), nullable=True),
        sa.Column("action", sa.String(200), nullable=False, server_default=""),
        sa.PrimaryKeyConstraint("id", name="pk_reconciliation_items"),
    )
    op.create_index("ix_reconciliation_items_run_id", "reconciliation_items", ["run_id"])


def downgrade() -> None:
    op.drop_table("reconciliation_items")
    op.drop_table("reconciliation_runs")
