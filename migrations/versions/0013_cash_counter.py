"""cash counter: receipts for cash and POS payments, their reversals, receipt numbering

- ``receipt_sequences``: the last receipt number used per site and year (the site's
  calendar); taken by an upsert that holds the row until the payment commits, so the
  numbers are gapless and never shared, across processes too;
- ``counter_receipts``: one row per payment taken at the counter, under the top-up
  transfer's unique key; ``receipt_no`` unique (``<site code>-<year>-<6 digits>``);
- ``counter_reversals``: at most one per receipt (unique ``receipt_id``), with the
  reversing transfer's key, the reason (never blank) and who reversed it.

Receipts and reversals are append-only: triggers refuse UPDATE and DELETE on both
databases, as on ``transfers``.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)
APPEND_ONLY = ("counter_receipts", "counter_reversals")


def upgrade() -> None:
    op.create_table(
        "receipt_sequences",
        sa.Column(
            "site_id",
            sa.Integer(),
            sa.ForeignKey("sites.id", name="fk_receipt_sequences_site_id_sites"),
            nullable=False,
        ),
        sa.Column("year", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("site_id", "year", name="pk_receipt_sequences"),
    )
    _create_receipts()
    _create_reversals()
    for table in APPEND_ONLY:
        _append_only(table)


def _create_receipts() -> None:
    op.create_table(
        "counter_receipts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("receipt_no", sa.String(64), nullable=False),
        sa.Column(
            "site_id",
            sa.Integer(),
            sa.ForeignKey("sites.id", name="fk_counter_receipts_site_id_sites"),
            nullable=False,
        ),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("transfer_key", sa.String(200), nullable=False),
        sa.Column(
            "account_id",
            sa.Integer(),
            sa.ForeignKey("accounts.id", name="fk_counter_receipts_account_id_accounts"),
            nullable=False,
        ),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("cashier", sa.String(120), nullable=False),
        sa.Column("at", TZ, nullable=False),
        sa.Column("note", sa.String(500), nullable=False, server_default=""),
        sa.Column("balance_after_fen", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_counter_receipts"),
        sa.UniqueConstraint("receipt_no", name="uq_counter_receipts_receipt_no"),
        sa.UniqueConstraint("transfer_key", name="uq_counter_receipts_transfer_key"),
        sa.UniqueConstraint("site_id", "year", "seq", name="uq_counter_receipts_site_id_year_seq"),
        sa.CheckConstraint("amount_fen > 0", name="ck_counter_receipts_positive"),
        sa.CheckConstraint("method IN ('cash', 'pos')", name="ck_counter_receipts_method"),
    )
    op.create_index("ix_counter_receipts_cashier_at", "counter_receipts", ["cashier", "at"])
    op.create_index("ix_counter_receipts_site_id_at", "counter_receipts", ["site_id", "at"])


def _create_reversals() -> None:
    op.create_table(
        "counter_reversals",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column(
            "receipt_id",
            sa.Integer(),
            sa.ForeignKey(
                "counter_receipts.id", name="fk_counter_reversals_receipt_id_counter_receipts"
            ),
            nullable=False,
        ),
        sa.Column("transfer_key", sa.String(200), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("reversed_by", sa.String(120), nullable=False),
        sa.Column("at", TZ, nullable=False),
        sa.Column("balance_after_fen", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_counter_reversals"),
        sa.UniqueConstraint("receipt_id", name="uq_counter_reversals_receipt_id"),
        sa.UniqueConstraint("transfer_key", name="uq_counter_reversals_transfer_key"),
        sa.CheckConstraint("length(trim(reason)) > 0", name="ck_counter_reversals_reason"),
    )
    op.create_index("ix_counter_reversals_at", "counter_reversals", ["at"])


def _append_only(table: str) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"CREATE FUNCTION {table}_append_only() RETURNS trigger LANGUAGE plpgsql AS $$"
            f" BEGIN RAISE EXCEPTION '{table} is append-only'; END $$"
        )
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}"
            f" FOR EACH ROW EXECUTE FUNCTION {table}_append_only()"
        )
        return
    for event in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER {table}_no_{event.lower()} BEFORE {event} ON {table}"
            f" BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
        )


def downgrade() -> None:
    op.drop_table("counter_reversals")
    op.drop_table("counter_receipts")
    op.drop_table("receipt_sequences")
    if op.get_bind().dialect.name == "postgresql":
        for table in APPEND_ONLY:
            op.execute(f"DROP FUNCTION IF EXISTS {table}_append_only CASCADE")
