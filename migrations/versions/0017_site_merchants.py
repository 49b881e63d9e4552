"""the sites' own payment merchants: which merchant an order, a notification and a
reconciliation run belong to ("" is the provider's default merchant)

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("topup_orders", "payment_notifications", "reconciliation_runs")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column("merchant", sa.String(32), nullable=False, server_default="")
            )
    op.drop_index("ix_reconciliation_runs_provider_day", table_name="reconciliation_runs")
    op.create_index(
        "ix_reconciliation_runs_provider_merchant_day",
        "reconciliation_runs",
        ["provider", "merchant", "day"],
    )


def downgrade() -> None:
    op.drop_index("ix_reconciliation_runs_provider_merchant_day", table_name="reconciliation_runs")
    op.create_index(
        "ix_reconciliation_runs_provider_day", "reconciliation_runs", ["provider", "day"]
    )
    for table in reversed(TABLES):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("merchant")
