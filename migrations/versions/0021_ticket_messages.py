"""owners hear of their repair requests: the notification topic ``ticket_update``

Revision ID: 0021
Revises: 0020
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BEFORE = (
    "topic IN ('warning1', 'warning2', 'arrears_notice', 'final_notice', 'cut_off',"
    " 'restored', 'top_up_receipt')"
)
AFTER = BEFORE[:-1] + ", 'ticket_update')"
NAME = "ck_notifications_topic"


def _topics(rule: str) -> None:
    # SQLite cannot alter a CHECK in place: batch mode rebuilds the table around it
    with op.batch_alter_table("notifications", recreate="auto") as batch:
        batch.drop_constraint(NAME, type_="check")
        batch.create_check_constraint(NAME, rule)


def upgrade() -> None:
    _topics(AFTER)


def downgrade() -> None:
    kept = op.get_bind().execute(
        sa.text("SELECT count(*) FROM notifications WHERE topic = 'ticket_update'")
    )
    if kept.scalar_one():  # messages are never deleted: going back would need them gone
        raise RuntimeError("ticket_update messages exist: 0021 cannot be downgraded")
    _topics(BEFORE)
