"""notifications: the outbox of messages, its delivery log, webhook endpoints, languages

- ``notifications``: one row per event, channel and recipient (in-app, SMS, email,
  WeChat, webhook), written with the decision that caused it and delivered after the
  commit; ``(dedupe_key, channel, recipient)`` is unique, so deciding again queues
  nothing; claimed with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL;
- ``notification_deliveries``: every attempt with its outcome, the provider's id or the
  error;
- ``webhook_endpoints``: integrators' URLs per site with the secret that signs them;
- ``customers.language``: which language a customer is written to (default zh-CN).

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def _site_id(table: str) -> sa.Column[int]:
    return sa.Column(
        "site_id",
        sa.Integer(),
        sa.ForeignKey("sites.id", name=f"fk_{table}_site_id_sites"),
        nullable=False,
    )


def upgrade() -> None:
    # Plain ADD COLUMN with a default: no copy-and-swap of the customers table on SQLite.
    op.add_column(
        "customers",
        sa.Column("language", sa.String(8), nullable=False, server_default="zh-CN"),
    )
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        _site_id("webhook_endpoints"),
        sa.Column("url", sa.String(500), nullable=False),
        sa.Column("secret", sa.String(128), nullable=False),
        sa.Column("description", sa.String(200), nullable=False, server_default=""),
        sa.Column("topics", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_endpoints"),
    )
    op.create_index("ix_webhook_endpoints_site_id", "webhook_endpoints", ["site_id"])
    _create_notifications()
    _create_deliveries()


def _create_notifications() -> None:
    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        _site_id("notifications"),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("endpoint_id", sa.Integer(), nullable=True),
        sa.Column("topic", sa.String(24), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("recipient", sa.String(500), nullable=False),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("dedupe_key", sa.String(200), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("variables", sa.JSON(), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_attempt_at", TZ, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.Column("sent_at", TZ, nullable=True),
        sa.Column("read_at", TZ, nullable=True),
        sa.Column("provider_id", sa.String(200), nullable=False, server_default=""),
        sa.Column("last_error", sa.String(500), nullable=False, server_default=""),
        sa.PrimaryKeyConstraint("id", name="pk_notifications"),
        sa.UniqueConstraint(
            "dedupe_key",
            "channel",
            "recipient",
            name="uq_notifications_dedupe_key_channel_recipient",
        ),
        sa.CheckConstraint(
            "topic IN ('warning1', 'warning2', 'arrears_notice', 'final_notice', 'cut_off',"
            " 'restored', 'top_up_receipt')",
            name="ck_notifications_topic",
        ),
        sa.CheckConstraint(
            "channel IN ('in_app', 'sms', 'email', 'wechat', 'webhook')",
            name="ck_notifications_channel",
        ),
        sa.CheckConstraint(
            "state IN ('pending', 'sending', 'sent', 'failed', 'skipped')",
            name="ck_notifications_state",
        ),
        sa.CheckConstraint("attempts >= 0", name="ck_notifications_attempts"),
    )
    op.create_index(
        "ix_notifications_state_next_attempt_at", "notifications", ["state", "next_attempt_at"]
    )
    op.create_index(
        "ix_notifications_account_id_channel_id", "notifications", ["account_id", "channel", "id"]
    )
    op.create_index(
        "ix_notifications_channel_recipient_id", "notifications", ["channel", "recipient", "id"]
    )


def _create_deliveries() -> None:
    op.create_table(
        "notification_deliveries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "message_id",
            sa.Integer(),
            sa.ForeignKey(
                "notifications.id", name="fk_notification_deliveries_message_id_notifications"
            ),
            nullable=False,
        ),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("recipient", sa.String(500), nullable=False),
        sa.Column("at", TZ, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("provider_id", sa.String(200), nullable=False, server_default=""),
        sa.Column("error", sa.String(500), nullable=False, server_default=""),
        sa.PrimaryKeyConstraint("id", name="pk_notification_deliveries"),
        sa.CheckConstraint(
            "outcome IN ('sent', 'retry', 'failed', 'skipped', 'delayed')",
            name="ck_notification_deliveries_outcome",
        ),
    )
    op.create_index(
        "ix_notification_deliveries_message_id_id",
        "notification_deliveries",
        ["message_id", "id"],
    )
    op.create_index(
        "ix_notification_deliveries_channel_recipient_at",
        "notification_deliveries",
        ["channel", "recipient", "at"],
    )


def downgrade() -> None:
    op.drop_table("notification_deliveries")
    op.drop_table("notifications")
    op.drop_table("webhook_endpoints")
    op.execute("ALTER TABLE customers DROP COLUMN language")  # plain DROP COLUMN, as in 0010
