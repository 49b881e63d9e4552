"""tickets: work orders (报修) with their photos and moves

Revision ID: 0019
Revises: 0018
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def _fk(column: str, table: str, target: str, *, nullable: bool = False) -> sa.Column[int]:
    return sa.Column(
        column,
        sa.Integer(),
        sa.ForeignKey(f"{target}.id", name=f"fk_{table}_{column}_{target}"),
        nullable=nullable,
    )


def upgrade() -> None:
    op.create_table(
        "tickets",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        _fk("site_id", "tickets", "sites"),
        _fk("account_id", "tickets", "accounts"),
        _fk("unit_id", "tickets", "units"),
        _fk("customer_id", "tickets", "customers", nullable=True),
        sa.Column("description", sa.String(1000), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("filed_by", sa.String(120), nullable=False),
        sa.Column("assignee", sa.String(120), nullable=True),
        sa.Column("request_key", sa.String(64), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.Column("closed_at", TZ, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_tickets"),
        sa.UniqueConstraint("request_key", name="uq_tickets_request_key"),
        sa.CheckConstraint(
            "state IN ('open', 'assigned', 'in_progress', 'done', 'cancelled')",
            name="ck_tickets_state",
        ),
    )
    op.create_index("ix_tickets_site_id_state_id", "tickets", ["site_id", "state", "id"])
    op.create_index("ix_tickets_account_id_id", "tickets", ["account_id", "id"])
    op.create_table(
        "ticket_photos",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        _fk("ticket_id", "ticket_photos", "tickets"),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("media_type", sa.String(16), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ticket_photos"),
        sa.UniqueConstraint("ticket_id", "position", name="uq_ticket_photos_ticket_id_position"),
        sa.CheckConstraint("position BETWEEN 1 AND 3", name="ck_ticket_photos_position"),
        sa.CheckConstraint("size BETWEEN 1 AND 5242880", name="ck_ticket_photos_size"),
    )
    op.create_table(
        "ticket_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        _fk("ticket_id", "ticket_events", "tickets"),
        sa.Column("at", TZ, nullable=False),
        sa.Column("actor", sa.String(120), nullable=False),
        sa.Column("from_state", sa.String(16), nullable=True),
        sa.Column("to_state", sa.String(16), nullable=False),
        sa.Column("note", sa.String(500), nullable=False, server_default=""),
        sa.PrimaryKeyConstraint("id", name="pk_ticket_events"),
    )
    op.create_index("ix_ticket_events_ticket_id_id", "ticket_events", ["ticket_id", "id"])


def downgrade() -> None:
    for table in ("ticket_events", "ticket_photos", "tickets"):
        op.drop_table(table)
