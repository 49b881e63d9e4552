"""time-of-use register cursor on meters; charges that are not for a reading

- meters keep the last accepted values of their TOU registers (尖峰平谷), so
  a reading's per-period consumption is the difference, like the total's;
- charges may be for something other than a reading (a monthly fixed fee, a
  share of a supplier's bill): ``reading_id`` becomes optional, ``kind`` says
  which, and ``charge_key`` (unique) makes each such charge happen once.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REGISTERS = ("last_tip", "last_peak", "last_flat", "last_valley")


def upgrade() -> None:
    for name in REGISTERS:
        op.add_column("meters", sa.Column(name, sa.BigInteger(), nullable=True))
    with op.batch_alter_table("charges") as batch:
        batch.alter_column("reading_id", existing_type=sa.BigInteger(), nullable=True)
        batch.alter_column("meter_id", existing_type=sa.Integer(), nullable=True)
        batch.add_column(sa.Column("kind", sa.String(16), nullable=False, server_default="reading"))
        batch.add_column(sa.Column("charge_key", sa.String(200), nullable=True))
        batch.create_unique_constraint("uq_charges_charge_key", ["charge_key"])


def downgrade() -> None:
    with op.batch_alter_table("charges") as batch:
        batch.drop_constraint("uq_charges_charge_key", type_="unique")
        batch.drop_column("charge_key")
        batch.drop_column("kind")
        batch.alter_column("meter_id", existing_type=sa.Integer(), nullable=False)
        batch.alter_column("reading_id", existing_type=sa.BigInteger(), nullable=False)
    for name in reversed(REGISTERS):
        op.execute(f"ALTER TABLE meters DROP COLUMN {name}")
