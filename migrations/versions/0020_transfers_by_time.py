"""an index of transfers by time (BRIN on PostgreSQL) for the console's dashboard

Revision ID: 0020
Revises: 0019
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_transfers_created_at", "transfers", ["created_at"], postgresql_using="brin")


def downgrade() -> None:
    op.drop_index("ix_transfers_created_at", table_name="transfers")
