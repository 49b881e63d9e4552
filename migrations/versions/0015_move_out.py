"""move-out settlements (退费): one record per account closed at move-out

- ``move_out_settlements``: under the caller's unique idempotency key (with a digest of
  the request, so the same key for another request is refused); one per account (unique
  ``account_id``); the final readings, the charges they made, the balance then, the
  payout (cash, or a transfer to the next occupant's account) or the debt left, the
  meters handed over, who settled it, when and why. The amounts add up
  (``balance = payout - debt``; never both) and the reason is never blank.

Settlements are append-only: triggers refuse UPDATE and DELETE on both databases, as on
``transfers``.

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)
TABLE = "move_out_settlements"


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=False),
        sa.Column("request_digest", sa.String(64), nullable=False),
        sa.Column(
            "site_id",
            sa.Integer(),
            sa.ForeignKey("sites.id", name=f"fk_{TABLE}_site_id_sites"),
            nullable=False,
        ),
        sa.Column(
            "account_id",
            sa.Integer(),
            sa.ForeignKey("accounts.id", name=f"fk_{TABLE}_account_id_accounts"),
            nullable=False,
        ),
        sa.Column("final_readings", sa.JSON(), nullable=False),
        sa.Column("charges_fen", sa.BigInteger(), nullable=False),
        sa.Column("balance_fen", sa.BigInteger(), nullable=False),
        sa.Column("payout", sa.String(16), nullable=False),
        sa.Column("payout_fen", sa.BigInteger(), nullable=False),
        sa.Column(
            "to_account_id",
            sa.Integer(),
            sa.ForeignKey("accounts.id", name=f"fk_{TABLE}_to_account_id_accounts"),
            nullable=True,
        ),
        sa.Column("transfer_key", sa.String(200), nullable=True),
        sa.Column("debt_fen", sa.BigInteger(), nullable=False),
        sa.Column("meters", sa.JSON(), nullable=False),
        sa.Column("settled_by", sa.String(120), nullable=False),
        sa.Column("at", TZ, nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.PrimaryKeyConstraint("id", name=f"pk_{TABLE}"),
        sa.UniqueConstraint("idempotency_key", name=f"uq_{TABLE}_idempotency_key"),
        sa.UniqueConstraint("account_id", name=f"uq_{TABLE}_account_id"),
        sa.UniqueConstraint("transfer_key", name=f"uq_{TABLE}_transfer_key"),
        sa.CheckConstraint("payout IN ('cash', 'transfer')", name=f"ck_{TABLE}_payout"),
        sa.CheckConstraint(
            "charges_fen >= 0 AND payout_fen >= 0 AND debt_fen >= 0", name=f"ck_{TABLE}_amounts"
        ),
        sa.CheckConstraint("balance_fen = payout_fen - debt_fen", name=f"ck_{TABLE}_adds_up"),
        sa.CheckConstraint(
            "payout <> 'transfer' OR to_account_id IS NOT NULL", name=f"ck_{TABLE}_target"
        ),
        sa.CheckConstraint("length(trim(reason)) > 0", name=f"ck_{TABLE}_reason"),
    )
    op.create_index(f"ix_{TABLE}_to_account_id", TABLE, ["to_account_id"])
    _append_only()


def _append_only() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"CREATE FUNCTION {TABLE}_append_only() RETURNS trigger LANGUAGE plpgsql AS $$"
            f" BEGIN RAISE EXCEPTION '{TABLE} is append-only'; END $$"
        )
        op.execute(
            f"CREATE TRIGGER {TABLE}_append_only BEFORE UPDATE OR DELETE ON {TABLE}"
            f" FOR EACH ROW EXECUTE FUNCTION {TABLE}_append_only()"
        )
        return
    for event in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER {TABLE}_no_{event.lower()} BEFORE {event} ON {TABLE}"
            f" BEGIN SELECT RAISE(ABORT, '{TABLE} is append-only'); END"
        )


def downgrade() -> None:
    op.drop_table(TABLE)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION IF EXISTS {TABLE}_append_only CASCADE")
