"""command outbox: commands to meters, written with the decision that caused them

One row per command (cut, restore, read status, time sync) to one meter. The
row is inserted in the same transaction as the decision; dispatchers claim due
rows after the commit (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several
processes share the work without sending one command twice) and move them
through their lifecycle (``meterpay.control.commands``). ``cause_key`` is the
idempotency key of the decision (e.g. the arrears episode that asked for a cut):
deciding again never queues a second command.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "commands",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column(
            "meter_id",
            sa.Integer(),
            sa.ForeignKey("meters.id", name="fk_commands_meter_id_meters"),
            nullable=False,
        ),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("cause_key", sa.String(200), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False, server_default=""),
        sa.Column("requested_by", sa.String(120), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.String(500), nullable=False, server_default=""),
        sa.PrimaryKeyConstraint("id", name="pk_commands"),
        sa.UniqueConstraint("cause_key", name="uq_commands_cause_key"),
        sa.CheckConstraint(
            "kind IN ('cut', 'restore', 'read_status', 'time_sync')", name="ck_commands_kind"
        ),
        sa.CheckConstraint(
            "state IN ('pending', 'sent', 'acknowledged', 'verified', 'failed', 'expired')",
            name="ck_commands_state",
        ),
        sa.CheckConstraint("attempts >= 0", name="ck_commands_attempts"),
    )
    op.create_index("ix_commands_state_next_attempt_at", "commands", ["state", "next_attempt_at"])
    op.create_index("ix_commands_meter_id_id", "commands", ["meter_id", "id"])


def downgrade() -> None:
    op.drop_table("commands")
