"""meter links: gateways' connection state, meters' link state, the raw frame log

- ``gateways``: where a DTU last connected from and since when;
- ``meters``: ``link_status`` (online/offline/unknown) and ``last_heard_at``,
  the last time the meter answered or published, kept apart from the billing
  cursor (``last_read_at``): a meter can answer while its reading is refused;
- ``frame_log``: raw frames in hex with direction and time, for technicians
  in the console. Written in batches, no foreign keys (a frame from a DTU that
  is not registered yet is logged under its registration id).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LINK_COLUMNS = (
    ("gateways", "remote_addr"),
    ("gateways", "connected_at"),
    ("meters", "link_status"),
    ("meters", "last_heard_at"),
)


def upgrade() -> None:
    # Plain ADD COLUMN: a batch (copy-and-swap) on SQLite would drop the meters'
    # never-deleted trigger. The link status values are kept by the code.
    op.add_column("gateways", sa.Column("remote_addr", sa.String(64), nullable=True))
    op.add_column("gateways", sa.Column("connected_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "meters",
        sa.Column("link_status", sa.String(16), nullable=False, server_default="unknown"),
    )
    op.add_column("meters", sa.Column("last_heard_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_meters_gateway_id", "meters", ["gateway_id"])
    op.create_table(
        "frame_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("gateway_code", sa.String(64), nullable=False),
        sa.Column("meter_id", sa.Integer(), nullable=True),
        sa.Column("direction", sa.String(4), nullable=False),
        sa.Column("protocol", sa.String(24), nullable=False),
        sa.Column("hex", sa.Text(), nullable=False),
        sa.Column("note", sa.String(200), nullable=False, server_default=""),
        sa.PrimaryKeyConstraint("id", name="pk_frame_log"),
        sa.CheckConstraint("direction IN ('rx', 'tx')", name="ck_frame_log_direction"),
    )
    op.create_index("ix_frame_log_gateway_code_id", "frame_log", ["gateway_code", "id"])
    op.create_index("ix_frame_log_meter_id_id", "frame_log", ["meter_id", "id"])


def downgrade() -> None:
    op.drop_table("frame_log")
    op.drop_index("ix_meters_gateway_id", "meters")
    for table, column in LINK_COLUMNS[::-1]:
        op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
