"""resale of utility supply (转供电/转供水): the site's model and the supplier's bills

- ``supply_settings``: per site and utility, which resale model the property
  uses (1: each end user at the catalog price of their own sub-meter;
  2: the supplier's bill shared by sub-meter consumption) and the catalog
  price it pays;
- ``supplier_bills``: each supplier bill (amount, period, evidence) that a
  model-2 run shares out; one per site, utility and month.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "supply_settings",
        sa.Column(
            "site_id",
            sa.Integer(),
            sa.ForeignKey("sites.id", name="fk_supply_settings_site_id_sites"),
            nullable=False,
        ),
        sa.Column("utility", sa.String(16), nullable=False),
        sa.Column("resale_model", sa.String(16), nullable=False),
        sa.Column("catalog_price", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("site_id", "utility", name="pk_supply_settings"),
        sa.CheckConstraint(
            "resale_model IN ('catalog', 'shared')", name="ck_supply_settings_resale_model"
        ),
    )
    op.create_table(
        "supplier_bills",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column(
            "site_id",
            sa.Integer(),
            sa.ForeignKey("sites.id", name="fk_supplier_bills_site_id_sites"),
            nullable=False,
        ),
        sa.Column("utility", sa.String(16), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("evidence", sa.String(500), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(120), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_supplier_bills"),
        sa.UniqueConstraint(
            "site_id", "utility", "month", name="uq_supplier_bills_site_id_utility_month"
        ),
        sa.CheckConstraint("amount_fen > 0", name="ck_supplier_bills_positive"),
    )


def downgrade() -> None:
    op.drop_table("supplier_bills")
    op.drop_table("supply_settings")
