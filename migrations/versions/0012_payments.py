"""payments: top-up orders, the provider notification inbox, per-site top-up limits

- ``topup_orders``: one row per order we ask a provider to collect; ``out_trade_no``
  unique and never reused, the provider's ``transaction_id`` unique per provider;
  ``state`` moves by ``meterpay.payments.model.TRANSITIONS``;
- ``payment_notifications``: every verified notification stored under its unique key
  (WeChat ``id``, Alipay ``notify_id``) before it is processed, raw headers and body
  kept; a duplicate key is answered "received" and changes nothing;
- ``topup_limits``: per site: the smallest and largest top-up, the most per account and day.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "topup_orders",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("out_trade_no", sa.String(32), nullable=False),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column(
            "site_id",
            sa.Integer(),
            sa.ForeignKey("sites.id", name="fk_topup_orders_site_id_sites"),
            nullable=False,
        ),
        sa.Column(
            "account_id",
            sa.Integer(),
            sa.ForeignKey("accounts.id", name="fk_topup_orders_account_id_accounts"),
            nullable=False,
        ),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("requested_by", sa.String(120), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("expires_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.Column("next_query_at", TZ, nullable=True),
        sa.Column("transaction_id", sa.String(64), nullable=True),
        sa.Column("paid_at", TZ, nullable=True),
        sa.Column("credited_at", TZ, nullable=True),
        sa.Column("code_url", sa.String(500), nullable=True),
        sa.Column("pay_url", sa.String(500), nullable=True),
        sa.Column("refunded_fen", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("note", sa.String(500), nullable=False, server_default=""),
        sa.PrimaryKeyConstraint("id", name="pk_topup_orders"),
        sa.UniqueConstraint("out_trade_no", name="uq_topup_orders_out_trade_no"),
        sa.UniqueConstraint(
            "provider", "transaction_id", name="uq_topup_orders_provider_transaction_id"
        ),
        sa.CheckConstraint("amount_fen > 0", name="ck_topup_orders_positive"),
        sa.CheckConstraint(
            "state IN ('created', 'paid', 'credited', 'closed', 'refunded')",
            name="ck_topup_orders_state",
        ),
        sa.CheckConstraint(
            "provider IN ('wechat', 'alipay', 'sandbox')", name="ck_topup_orders_provider"
        ),
        sa.CheckConstraint(
            "refunded_fen >= 0 AND refunded_fen <= amount_fen", name="ck_topup_orders_refunded"
        ),
    )
    op.create_index("ix_topup_orders_account_id_id", "topup_orders", ["account_id", "id"])
    op.create_index(
        "ix_topup_orders_state_next_query_at", "topup_orders", ["state", "next_query_at"]
    )
    op.create_table(
        "payment_notifications",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("received_at", TZ, nullable=False),
        sa.Column("remote_addr", sa.String(64), nullable=True),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("out_trade_no", sa.String(32), nullable=True),
        sa.Column("outcome", sa.String(24), nullable=False),
        sa.Column("detail", sa.String(500), nullable=False, server_default=""),
        sa.PrimaryKeyConstraint("id", name="pk_payment_notifications"),
        sa.UniqueConstraint("provider", "key", name="uq_payment_notifications_provider_key"),
    )
    op.create_index(
        "ix_payment_notifications_out_trade_no", "payment_notifications", ["out_trade_no"]
    )
    op.create_table(
        "topup_limits",
        sa.Column(
            "site_id",
            sa.Integer(),
            sa.ForeignKey("sites.id", name="fk_topup_limits_site_id_sites"),
            nullable=False,
        ),
        sa.Column("min_fen", sa.BigInteger(), nullable=False),
        sa.Column("max_fen", sa.BigInteger(), nullable=False),
        sa.Column("daily_cap_fen", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.Column("updated_by", sa.String(120), nullable=False),
        sa.PrimaryKeyConstraint("site_id", name="pk_topup_limits"),
        sa.CheckConstraint(
            "min_fen > 0 AND max_fen >= min_fen AND daily_cap_fen >= max_fen",
            name="ck_topup_limits_ordered",
        ),
    )


def downgrade() -> None:
    op.drop_table("topup_limits")
    op.drop_table("payment_notifications")
    op.drop_table("topup_orders")
