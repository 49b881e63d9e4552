"""tier state on the account row: where each account stands in its tier cycle

The running total of a tier cycle (阶梯) moves with every charge. Kept on the
account row itself (``tier_cycle_start``, ``tier_consumed``), ingest reads it
with the meters it locks and writes it back with a compare-and-set, instead
of locking the accounts and then reading and upserting a table of its own:
two statements less per batch. The latest cycle of each account moves over;
``tier_states`` goes (the charges keep every tier line).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MOVE_LATEST = (
    "UPDATE accounts SET tier_cycle_start = latest.cycle_start,"
    " tier_consumed = latest.consumed"
    " FROM (SELECT t.account_id, t.cycle_start, t.consumed FROM tier_states t"
    " WHERE t.cycle_start = (SELECT max(cycle_start) FROM tier_states u"
    " WHERE u.account_id = t.account_id)) AS latest"
    " WHERE accounts.id = latest.account_id"
)


def upgrade() -> None:
    # Plain ADD COLUMN: a batch (copy-and-swap) on SQLite would drop the trigger
    # that refuses to delete accounts.
    op.add_column("accounts", sa.Column("tier_cycle_start", sa.Date(), nullable=True))
    op.add_column(
        "accounts",
        sa.Column("tier_consumed", sa.BigInteger(), nullable=False, server_default="0"),
    )
    op.execute(MOVE_LATEST)
    op.drop_table("tier_states")
    if op.get_bind().dialect.name == "postgresql":
        # Accounts on tiered tariffs are rewritten by every charge: room on the page
        # for the new row version keeps the update HOT (no index entries).
        op.execute("ALTER TABLE accounts SET (fillfactor = 70)")


def downgrade() -> None:
    op.create_table(
        "tier_states",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("cycle_start", sa.Date(), nullable=False),
        sa.Column("consumed", sa.BigInteger(), nullable=False, server_default="0"),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_tier_states_account_id_accounts"
        ),
        sa.PrimaryKeyConstraint("account_id", "cycle_start", name="pk_tier_states"),
    )
    op.execute(
        "INSERT INTO tier_states (account_id, cycle_start, consumed)"
        " SELECT id, tier_cycle_start, tier_consumed FROM accounts"
        " WHERE tier_cycle_start IS NOT NULL"
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE accounts RESET (fillfactor)")
    op.execute("ALTER TABLE accounts DROP COLUMN tier_consumed")
    op.execute("ALTER TABLE accounts DROP COLUMN tier_cycle_start")
