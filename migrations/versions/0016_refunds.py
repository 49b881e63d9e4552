"""refunds of online top-ups, each with its own out_refund_no and lifecycle

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "topup_refunds",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column(
            "order_id",
            sa.Integer(),
            sa.ForeignKey("topup_orders.id", name="fk_topup_refunds_order_id_topup_orders"),
            nullable=False,
        ),
        sa.Column("out_refund_no", sa.String(64), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.Column("requested_by", sa.String(120), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.Column("refund_id", sa.String(64), nullable=True),
        sa.Column("done_at", TZ, nullable=True),
        sa.Column("note", sa.String(500), nullable=False, server_default=""),
        sa.PrimaryKeyConstraint("id", name="pk_topup_refunds"),
        sa.UniqueConstraint("out_refund_no", name="uq_topup_refunds_out_refund_no"),
        sa.CheckConstraint("amount_fen > 0", name="ck_topup_refunds_positive"),
        sa.CheckConstraint(
            "state IN ('processing', 'succeeded', 'failed')", name="ck_topup_refunds_state"
        ),
    )
    op.create_index("ix_topup_refunds_order_id", "topup_refunds", ["order_id"])


def downgrade() -> None:
    op.drop_table("topup_refunds")
