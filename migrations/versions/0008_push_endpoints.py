"""NB-IoT platform push: per-gateway push settings

- ``push_endpoints``: for a gateway that stands for a CTWing or OneNET product
  (transport ``http``), the platform, the shared token, whether pushed devices are
  found by IMEI or by the platform's device id, and the field mapping (JSON) that
  turns the platform-decoded fields into a reading.

Revision ID: 0008
Revises: 0007

(Written as 0007, it follows ``0007_tier_state_on_accounts`` that landed alongside: one
line of history. The file keeps its first name until it is renamed to ``0008_…``.)
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "push_endpoints",
        sa.Column(
            "gateway_id",
            sa.Integer(),
            sa.ForeignKey("gateways.id", name="fk_push_endpoints_gateway_id_gateways"),
            nullable=False,
        ),
        sa.Column("platform", sa.String(16), nullable=False),
        sa.Column("token", sa.String(128), nullable=False),
        sa.Column("address_by", sa.String(16), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("gateway_id", name="pk_push_endpoints"),
        sa.CheckConstraint("platform IN ('ctwing', 'onenet')", name="ck_push_endpoints_platform"),
        sa.CheckConstraint(
            "address_by IN ('imei', 'device_id')", name="ck_push_endpoints_address_by"
        ),
    )


def downgrade() -> None:
    op.drop_table("push_endpoints")
