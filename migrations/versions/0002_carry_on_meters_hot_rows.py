"""billing carry per meter; room for in-place updates of hot rows

The sub-fen rounding carry moves from accounts to meters: a run of readings
is one meter's, and ingest then updates one row per meter instead of one per
meter and one per account. On PostgreSQL the rows updated on every ingest
(meters, ledger_accounts) get a fill factor that leaves room for HOT updates.
The debit/credit indexes of transfers go: statements are read by prepaid
account (``ix_transfers_account_id_id``) and verification scans everything.

On PostgreSQL the append-only hot tables (transfers, charges) drop their
foreign-key triggers, which cost a quarter of ingest time: every id they hold
is read from a row of the same transaction, ledger accounts, accounts and
meters are never deleted (triggers refuse it), and ``meterpay ledger verify``
checks that every transfer names a known ledger account.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HOT_TABLES = ("meters", "ledger_accounts")
UNCHECKED_REFERENCES = (
    ("transfers", "debit_account_id", "ledger_accounts"),
    ("transfers", "credit_account_id", "ledger_accounts"),
    ("transfers", "account_id", "accounts"),
    ("charges", "account_id", "accounts"),
    ("charges", "meter_id", "meters"),
)
NEVER_DELETED = ("ledger_accounts", "accounts", "meters")


def upgrade() -> None:
    op.add_column(
        "meters", sa.Column("charge_carry", sa.BigInteger(), nullable=False, server_default="0")
    )
    op.execute("ALTER TABLE accounts DROP COLUMN charge_carry")
    op.drop_index("ix_transfers_debit_account_id", table_name="transfers")
    op.drop_index("ix_transfers_credit_account_id", table_name="transfers")
    if op.get_bind().dialect.name == "postgresql":
        for table in HOT_TABLES:
            op.execute(f"ALTER TABLE {table} SET (fillfactor = 70)")
        for table, column, target in UNCHECKED_REFERENCES:
            op.drop_constraint(f"fk_{table}_{column}_{target}", table, type_="foreignkey")
    for table in NEVER_DELETED:
        _refuse_delete(table)


def _refuse_delete(table: str) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"CREATE FUNCTION {table}_never_deleted() RETURNS trigger LANGUAGE plpgsql AS $$"
            f" BEGIN RAISE EXCEPTION '{table} rows are never deleted'; END $$"
        )
        op.execute(
            f"CREATE TRIGGER {table}_never_deleted BEFORE DELETE ON {table}"
            f" FOR EACH ROW EXECUTE FUNCTION {table}_never_deleted()"
        )
        return
    op.execute(
        f"CREATE TRIGGER {table}_never_deleted BEFORE DELETE ON {table}"
        f" BEGIN SELECT RAISE(ABORT, '{table} rows are never deleted'); END"
    )


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table in NEVER_DELETED:
        op.execute(f"DROP TRIGGER {table}_never_deleted" + (f" ON {table}" if postgres else ""))
        if postgres:
            op.execute(f"DROP FUNCTION {table}_never_deleted()")
    if postgres:
        for table, column, target in UNCHECKED_REFERENCES:
            op.create_foreign_key(f"fk_{table}_{column}_{target}", table, target, [column], ["id"])
        for table in HOT_TABLES:
            op.execute(f"ALTER TABLE {table} RESET (fillfactor)")
    op.create_index("ix_transfers_credit_account_id", "transfers", ["credit_account_id"])
    op.create_index("ix_transfers_debit_account_id", "transfers", ["debit_account_id"])
    op.add_column(
        "accounts", sa.Column("charge_carry", sa.BigInteger(), nullable=False, server_default="0")
    )
    op.execute("ALTER TABLE meters DROP COLUMN charge_carry")
