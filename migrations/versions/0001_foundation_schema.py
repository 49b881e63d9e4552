"""foundation schema: places, accounts, ledger, tariffs, meters, readings, audit

Quantities and prices are BIGINT scaled by 10**4 (sub-fen carry by 10**8),
money is BIGINT fen, times are TIMESTAMPTZ (UTC text on SQLite). On
PostgreSQL the readings table is partitioned by month on read_at; partitions
are created ahead by ``meterpay.db.partitions``. Transfers and the audit log
are append-only: triggers refuse UPDATE and DELETE on both databases.

Revision ID: 0001
Revises: -
Create Date: 2026-11-26 20:31:08.349659
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=120), nullable=False),
        sa.Column("source_ip", sa.String(length=64), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("object_type", sa.String(length=32), nullable=False),
        sa.Column("object_id", sa.String(length=64), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=True),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_audit_log_object_type_object_id"),
            ["object_type", "object_id"],
            unique=False,
        )

    _create_readings()
    op.create_table(
        "sites",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sites")),
        sa.UniqueConstraint("code", name=op.f("uq_sites_code")),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("token_hash", sa.String(length=128), nullable=False),
        sa.Column("scopes", sa.String(length=500), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_api_tokens_site_id_sites")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    op.create_table(
        "buildings",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], name=op.f("fk_buildings_site_id_sites")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_buildings")),
        sa.UniqueConstraint("site_id", "code", name=op.f("uq_buildings_site_id_code")),
    )
    op.create_table(
        "customers",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("wechat_openid", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('person', 'company')", name=op.f("ck_customers_kind")),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], name=op.f("fk_customers_site_id_sites")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customers")),
    )
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_customers_site_id_phone"), ["site_id", "phone"], unique=False
        )

    op.create_table(
        "gateways",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("transport", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], name=op.f("fk_gateways_site_id_sites")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gateways")),
        sa.UniqueConstraint("code", name=op.f("uq_gateways_code")),
    )
    op.create_table(
        "ledger_accounts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("code", sa.String(length=120), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=True),
        sa.Column("debits_posted", sa.BigInteger(), nullable=False),
        sa.Column("credits_posted", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind IN ('asset', 'liability', 'revenue', 'expense', 'equity')",
            name=op.f("ck_ledger_accounts_kind"),
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_ledger_accounts_site_id_sites")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_accounts")),
        sa.UniqueConstraint("code", name=op.f("uq_ledger_accounts_code")),
    )
    op.create_table(
        "tariffs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("utility", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], name=op.f("fk_tariffs_site_id_sites")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tariffs")),
        sa.UniqueConstraint("site_id", "code", name=op.f("uq_tariffs_site_id_code")),
    )
    op.create_table(
        "floors",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("building_id", sa.Integer(), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(
            ["building_id"], ["buildings.id"], name=op.f("fk_floors_building_id_buildings")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_floors")),
        sa.UniqueConstraint("building_id", "level", name=op.f("uq_floors_building_id_level")),
    )
    op.create_table(
        "tariff_versions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tariff_id", sa.Integer(), nullable=False),
        sa.Column("effective_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("unit_price", sa.BigInteger(), nullable=False),
        sa.Column("components", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("unit_price >= 0", name=op.f("ck_tariff_versions_price")),
        sa.ForeignKeyConstraint(
            ["tariff_id"], ["tariffs.id"], name=op.f("fk_tariff_versions_tariff_id_tariffs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tariff_versions")),
        sa.UniqueConstraint(
            "tariff_id", "effective_from", name=op.f("uq_tariff_versions_tariff_id_effective_from")
        ),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=True),
        sa.Column("totp_secret", sa.String(length=64), nullable=True),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_users_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    op.create_table(
        "units",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("floor_id", sa.Integer(), nullable=True),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("area_m2", sa.BigInteger(), nullable=True),
        sa.CheckConstraint(
            "kind IN ('home', 'shop', 'office', 'common')", name=op.f("ck_units_kind")
        ),
        sa.ForeignKeyConstraint(["floor_id"], ["floors.id"], name=op.f("fk_units_floor_id_floors")),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], name=op.f("fk_units_site_id_sites")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_units")),
        sa.UniqueConstraint("site_id", "code", name=op.f("uq_units_site_id_code")),
    )
    op.create_table(
        "user_roles",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=True),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.CheckConstraint(
            "role IN ('admin', 'operator', 'cashier', 'technician', 'owner')",
            name=op.f("ck_user_roles_role"),
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_user_roles_site_id_sites")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_user_roles_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_roles")),
        sa.UniqueConstraint(
            "user_id", "site_id", "role", name=op.f("uq_user_roles_user_id_site_id_role")
        ),
    )
    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("number", sa.String(length=64), nullable=False),
        sa.Column("utility", sa.String(length=16), nullable=False),
        sa.Column("tariff_id", sa.Integer(), nullable=False),
        sa.Column("wallet_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("charge_carry", sa.BigInteger(), nullable=False),
        sa.Column("supply_state", sa.String(length=24), nullable=False),
        sa.Column("warning1_fen", sa.BigInteger(), nullable=True),
        sa.Column("warning2_fen", sa.BigInteger(), nullable=True),
        sa.Column("credit_limit_fen", sa.BigInteger(), nullable=True),
        sa.Column("disconnect_fen", sa.BigInteger(), nullable=True),
        sa.Column("reconnect_fen", sa.BigInteger(), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('open', 'closed')", name=op.f("ck_accounts_status")),
        sa.CheckConstraint("utility IN ('electricity', 'water')", name=op.f("ck_accounts_utility")),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_accounts_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], name=op.f("fk_accounts_site_id_sites")),
        sa.ForeignKeyConstraint(
            ["tariff_id"], ["tariffs.id"], name=op.f("fk_accounts_tariff_id_tariffs")
        ),
        sa.ForeignKeyConstraint(["unit_id"], ["units.id"], name=op.f("fk_accounts_unit_id_units")),
        sa.ForeignKeyConstraint(
            ["wallet_id"],
            ["ledger_accounts.id"],
            name=op.f("fk_accounts_wallet_id_ledger_accounts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
        sa.UniqueConstraint("site_id", "number", name=op.f("uq_accounts_site_id_number")),
        sa.UniqueConstraint("wallet_id", name=op.f("uq_accounts_wallet_id")),
    )
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_accounts_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_accounts_unit_id"), ["unit_id"], unique=False)

    op.create_table(
        "meters",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("gateway_id", sa.Integer(), nullable=True),
        sa.Column("utility", sa.String(length=16), nullable=False),
        sa.Column("protocol", sa.String(length=24), nullable=False),
        sa.Column("address", sa.String(length=32), nullable=False),
        sa.Column("serial", sa.String(length=64), nullable=True),
        sa.Column("model", sa.String(length=64), nullable=True),
        sa.Column("multiplier", sa.Integer(), nullable=False),
        sa.Column("register_capacity", sa.BigInteger(), nullable=True),
        sa.Column("max_rate_per_hour", sa.BigInteger(), nullable=True),
        sa.Column("has_switch", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("installed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_read_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_total", sa.BigInteger(), nullable=True),
        sa.CheckConstraint(
            "status IN ('active', 'removed', 'faulty')", name=op.f("ck_meters_status")
        ),
        sa.CheckConstraint("utility IN ('electricity', 'water')", name=op.f("ck_meters_utility")),
        sa.CheckConstraint("multiplier >= 1", name=op.f("ck_meters_multiplier")),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_meters_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["gateway_id"], ["gateways.id"], name=op.f("fk_meters_gateway_id_gateways")
        ),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], name=op.f("fk_meters_site_id_sites")),
        sa.ForeignKeyConstraint(["unit_id"], ["units.id"], name=op.f("fk_meters_unit_id_units")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_meters")),
    )
    with op.batch_alter_table("meters", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_meters_account_id"), ["account_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_meters_unit_id"), ["unit_id"], unique=False)
        batch_op.create_index(
            "uq_meters_site_id_protocol_address_active",
            ["site_id", "protocol", "address"],
            unique=True,
            sqlite_where=sa.text("status != 'removed'"),
            postgresql_where=sa.text("status != 'removed'"),
        )

    op.create_table(
        "transfers",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("debit_account_id", sa.Integer(), nullable=False),
        sa.Column("credit_account_id", sa.Integer(), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("reverses_key", sa.String(length=200), nullable=True),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("memo", sa.String(length=500), nullable=False),
        sa.Column("actor", sa.String(length=120), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("amount_fen > 0", name=op.f("ck_transfers_positive")),
        sa.CheckConstraint(
            "debit_account_id <> credit_account_id", name=op.f("ck_transfers_two_sides")
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_transfers_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["credit_account_id"],
            ["ledger_accounts.id"],
            name=op.f("fk_transfers_credit_account_id_ledger_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["debit_account_id"],
            ["ledger_accounts.id"],
            name=op.f("fk_transfers_debit_account_id_ledger_accounts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transfers")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_transfers_idempotency_key")),
        sa.UniqueConstraint("reverses_key", name=op.f("uq_transfers_reverses_key")),
    )
    with op.batch_alter_table("transfers", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_transfers_account_id_id"), ["account_id", "id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_transfers_credit_account_id"), ["credit_account_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_transfers_debit_account_id"), ["debit_account_id"], unique=False
        )

    op.create_table(
        "charges",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("meter_id", sa.Integer(), nullable=False),
        sa.Column("reading_id", sa.BigInteger(), nullable=False),
        sa.Column("transfer_key", sa.String(length=200), nullable=True),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("lines", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_charges_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["meter_id"], ["meters.id"], name=op.f("fk_charges_meter_id_meters")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_charges")),
        sa.UniqueConstraint("reading_id", name=op.f("uq_charges_reading_id")),
    )
    with op.batch_alter_table("charges", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_charges_account_id_period_end"),
            ["account_id", "period_end"],
            unique=False,
        )

    op.create_table(
        "meter_installations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("meter_id", sa.Integer(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("installed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("initial_total", sa.BigInteger(), nullable=False),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("final_total", sa.BigInteger(), nullable=True),
        sa.Column("replaced_by_meter_id", sa.Integer(), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_meter_installations_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["meter_id"], ["meters.id"], name=op.f("fk_meter_installations_meter_id_meters")
        ),
        sa.ForeignKeyConstraint(
            ["replaced_by_meter_id"],
            ["meters.id"],
            name=op.f("fk_meter_installations_replaced_by_meter_id_meters"),
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"], ["units.id"], name=op.f("fk_meter_installations_unit_id_units")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_meter_installations")),
    )
    with op.batch_alter_table("meter_installations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_meter_installations_meter_id"), ["meter_id"], unique=False
        )

    _append_only("transfers")
    _append_only("audit_log")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS transfers_append_only CASCADE")
        op.execute("DROP FUNCTION IF EXISTS audit_log_append_only CASCADE")
    with op.batch_alter_table("meter_installations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_meter_installations_meter_id"))

    op.drop_table("meter_installations")
    with op.batch_alter_table("charges", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_charges_account_id_period_end"))

    op.drop_table("charges")
    with op.batch_alter_table("transfers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_transfers_debit_account_id"))
        batch_op.drop_index(batch_op.f("ix_transfers_credit_account_id"))
        batch_op.drop_index(batch_op.f("ix_transfers_account_id_id"))

    op.drop_table("transfers")
    with op.batch_alter_table("meters", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_meters_site_id_protocol_address_active",
            sqlite_where=sa.text("status != 'removed'"),
            postgresql_where=sa.text("status != 'removed'"),
        )
        batch_op.drop_index(batch_op.f("ix_meters_unit_id"))
        batch_op.drop_index(batch_op.f("ix_meters_account_id"))

    op.drop_table("meters")
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_accounts_unit_id"))
        batch_op.drop_index(batch_op.f("ix_accounts_customer_id"))

    op.drop_table("accounts")
    op.drop_table("user_roles")
    op.drop_table("units")
    op.drop_table("users")
    op.drop_table("tariff_versions")
    op.drop_table("floors")
    op.drop_table("tariffs")
    op.drop_table("ledger_accounts")
    op.drop_table("gateways")
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_customers_site_id_phone"))

    op.drop_table("customers")
    op.drop_table("buildings")
    op.drop_table("api_tokens")
    op.drop_table("sites")
    op.execute("DROP TABLE readings")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_log_object_type_object_id"))

    op.drop_table("audit_log")


READINGS_COLUMNS = """
    meter_id integer NOT NULL,
    read_at timestamp with time zone NOT NULL,
    received_at timestamp with time zone NOT NULL,
    total bigint NOT NULL,
    tip bigint, peak bigint, flat bigint, valley bigint,
    status_word integer,
    source varchar(16) NOT NULL,
    quality varchar(16) NOT NULL,
    flags varchar(120) NOT NULL DEFAULT '',
    consumption bigint NOT NULL DEFAULT 0
"""


def _create_readings() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # The partition key must be part of every unique constraint.
        op.execute(
            "CREATE TABLE readings (id bigserial,"
            + READINGS_COLUMNS
            + ", CONSTRAINT pk_readings PRIMARY KEY (id, read_at),"
            " CONSTRAINT uq_readings_meter_id_read_at UNIQUE (meter_id, read_at))"
            " PARTITION BY RANGE (read_at)"
        )
    else:
        op.execute(
            "CREATE TABLE readings (id integer PRIMARY KEY,"
            + READINGS_COLUMNS
            + ", CONSTRAINT uq_readings_meter_id_read_at UNIQUE (meter_id, read_at))"
        )


def _append_only(table: str) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"CREATE FUNCTION {table}_append_only() RETURNS trigger LANGUAGE plpgsql AS $$"
            f" BEGIN RAISE EXCEPTION '{table} is append-only'; END $$"
        )
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}"
            f" FOR EACH ROW EXECUTE FUNCTION {table}_append_only()"
        )
        return
    for event in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER {table}_no_{event.lower()} BEFORE {event} ON {table}"
            f" BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
        )
