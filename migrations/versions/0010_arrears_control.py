"""arrears control: site policies, account arrears episodes, supply events, alarms, manual control

- ``arrears_policies``: one row per site and utility with its thresholds, notice
  period, friendly hours and cut-off rules (no row: the defaults of
  ``meterpay.control.model``);
- ``accounts`` gains the current arrears episode (when the arrears notice and
  the final notice were given, when the scheduler decides again), the days-based
  warning overrides and the protection (保电) with its reason and who set it;
- ``supply_events``: every supply state change of an account, with its cause;
- ``holiday_overrides``: day types for dates the holiday calendar does not know;
- ``commands`` gains ``option``: how a restore closes a relay (1BH or 1CH);
- ``alarms``: calls for a person, de-duplicated by key while open;
- ``control_actions``: manual cut/restore of a meter, floor, building or site,
  with the preview of who is affected and a second person's approval.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)

ACCOUNT_COLUMNS = (
    ("warning1_days", sa.Integer()),
    ("warning2_days", sa.Integer()),
    ("supply_changed_at", TZ),
    ("notice_given_at", TZ),
    ("final_notice_given_at", TZ),
    ("next_decision_at", TZ),
    ("protected_reason", sa.String(200)),
    ("protected_by", sa.String(120)),
    ("protected_since", TZ),
)


def upgrade() -> None:
    op.create_table(
        "arrears_policies",
        sa.Column(
            "site_id",
            sa.Integer(),
            sa.ForeignKey("sites.id", name="fk_arrears_policies_site_id_sites"),
            nullable=False,
        ),
        sa.Column("utility", sa.String(16), nullable=False),
        sa.Column("warning1_fen", sa.BigInteger(), nullable=True),
        sa.Column("warning1_days", sa.Integer(), nullable=True),
        sa.Column("warning2_fen", sa.BigInteger(), nullable=True),
        sa.Column("warning2_days", sa.Integer(), nullable=True),
        sa.Column("credit_limit_fen", sa.BigInteger(), nullable=False),
        sa.Column("cutoff_fen", sa.BigInteger(), nullable=False),
        sa.Column("restore_fen", sa.BigInteger(), nullable=False),
        sa.Column("notice_period_s", sa.Integer(), nullable=False),
        sa.Column("final_notice_lead_s", sa.Integer(), nullable=False),
        sa.Column("friendly_start", sa.String(5), nullable=True),
        sa.Column("friendly_end", sa.String(5), nullable=True),
        sa.Column("no_cutoff_on_rest_days", sa.Boolean(), nullable=False),
        sa.Column("automatic_cutoff", sa.Boolean(), nullable=False),
        sa.Column("restore_style", sa.String(16), nullable=False),
        sa.Column("alarm_margin_fen", sa.BigInteger(), nullable=False),
        sa.Column("alarm_max_deferral_s", sa.Integer(), nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.Column("updated_by", sa.String(120), nullable=False),
        sa.PrimaryKeyConstraint("site_id", "utility", name="pk_arrears_policies"),
        sa.CheckConstraint(
            "utility IN ('electricity', 'water')", name="ck_arrears_policies_utility"
        ),
        sa.CheckConstraint(
            "restore_style IN ('close_now', 'close_allowed')",
            name="ck_arrears_policies_restore_style",
        ),
    )
    # Plain ADD COLUMN: a batch (copy-and-swap) on SQLite would drop the trigger
    # and the fillfactor of the accounts table.
    for name, kind in ACCOUNT_COLUMNS:
        op.add_column("accounts", sa.Column(name, kind, nullable=True))
    op.create_index("ix_accounts_next_decision_at", "accounts", ["next_decision_at"])
    # How a restore closes a DL/T 645 relay (the site's restore style), when it matters.
    op.add_column("commands", sa.Column("option", sa.String(16), nullable=True))
    op.create_index("ix_commands_account_id_id", "commands", ["account_id", "id"])
    op.create_table(
        "supply_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "account_id",
            sa.Integer(),
            sa.ForeignKey("accounts.id", name="fk_supply_events_account_id_accounts"),
            nullable=False,
        ),
        sa.Column("at", TZ, nullable=False),
        sa.Column("from_state", sa.String(24), nullable=False),
        sa.Column("to_state", sa.String(24), nullable=False),
        sa.Column("event", sa.String(40), nullable=False),
        sa.Column("balance_fen", sa.BigInteger(), nullable=False),
        sa.Column("cause", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_supply_events"),
    )
    op.create_index("ix_supply_events_account_id_id", "supply_events", ["account_id", "id"])
    op.create_table(
        "holiday_overrides",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("day_type", sa.String(16), nullable=False),
        sa.Column("note", sa.String(200), nullable=False, server_default=""),
        sa.Column("updated_by", sa.String(120), nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("day", name="pk_holiday_overrides"),
        sa.CheckConstraint(
            "day_type IN ('workday', 'weekend', 'holiday')", name="ck_holiday_overrides_day_type"
        ),
    )
    op.create_table(
        "alarms",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("object_type", sa.String(32), nullable=False),
        sa.Column("object_id", sa.String(64), nullable=False),
        sa.Column("dedupe_key", sa.String(200), nullable=False),
        sa.Column("message", sa.String(500), nullable=False),
        sa.Column("details", sa.JSON(), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("opened_at", TZ, nullable=False),
        sa.Column("last_seen_at", TZ, nullable=False),
        sa.Column("occurrences", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("closed_at", TZ, nullable=True),
        sa.Column("closed_by", sa.String(120), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_alarms"),
        sa.UniqueConstraint("dedupe_key", name="uq_alarms_dedupe_key"),
        sa.CheckConstraint(
            "severity IN ('info', 'warning', 'critical')", name="ck_alarms_severity"
        ),
        sa.CheckConstraint("state IN ('open', 'acknowledged', 'closed')", name="ck_alarms_state"),
    )
    op.create_index("ix_alarms_state_site_id", "alarms", ["state", "site_id"])
    op.create_index("ix_alarms_object_type_object_id", "alarms", ["object_type", "object_id"])
    op.create_table(
        "control_actions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column(
            "site_id",
            sa.Integer(),
            sa.ForeignKey("sites.id", name="fk_control_actions_site_id_sites"),
            nullable=False,
        ),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("scope_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("state", sa.String(24), nullable=False),
        sa.Column("requested_by", sa.String(120), nullable=False),
        sa.Column("requested_at", TZ, nullable=False),
        sa.Column("decided_by", sa.String(120), nullable=True),
        sa.Column("decided_at", TZ, nullable=True),
        sa.Column("preview", sa.JSON(), nullable=False),
        sa.Column("commands_queued", sa.Integer(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("id", name="pk_control_actions"),
        sa.CheckConstraint(
            "scope IN ('meter', 'floor', 'building', 'site')", name="ck_control_actions_scope"
        ),
        sa.CheckConstraint("kind IN ('cut', 'restore')", name="ck_control_actions_kind"),
        sa.CheckConstraint(
            "state IN ('awaiting_approval', 'rejected', 'executed')",
            name="ck_control_actions_state",
        ),
    )
    op.create_index("ix_control_actions_site_id_id", "control_actions", ["site_id", "id"])


def downgrade() -> None:
    op.drop_table("control_actions")
    op.drop_table("alarms")
    op.drop_table("holiday_overrides")
    op.drop_table("supply_events")
    op.drop_index("ix_commands_account_id_id", table_name="commands")
    op.execute("ALTER TABLE commands DROP COLUMN option")
    op.drop_index("ix_accounts_next_decision_at", table_name="accounts")
    for name, _ in reversed(ACCOUNT_COLUMNS):  # plain DROP COLUMN, as in 0007
        op.execute(f"ALTER TABLE accounts DROP COLUMN {name}")
    op.drop_table("arrears_policies")
