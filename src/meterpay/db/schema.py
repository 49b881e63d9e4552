"""The relational schema, as SQLAlchemy Core tables.

Repositories query these tables; Alembic migrations in ``migrations/`` create
them (the readings table is partitioned by month on PostgreSQL, which the
migration spells out in DDL). Invariants kept by constraints:
- money is BIGINT fen, quantities and prices are scaled integers (exact);
- every write that comes from outside has a unique idempotency key;
- a meter has one reading per timestamp; a reading is charged at most once;
- transfers and the audit log are append-only (triggers refuse UPDATE/DELETE).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

from meterpay.db.types import ScaledDecimal, UTCDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Quantity = ScaledDecimal(4)
Price = ScaledDecimal(4)
SubFen = ScaledDecimal(8)


def _id() -> Column[int]:
    return Column("id", Integer, primary_key=True, autoincrement=True)


def _created() -> Column[object]:
    return Column("created_at", UTCDateTime(), nullable=False)


# --- places and people ------------------------------------------------------

sites = Table(
    "sites",
    metadata,
    _id(),
    Column("code", String(32), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("timezone", String(64), nullable=False),
    _created(),
)

buildings = Table(
    "buildings",
    metadata,
    _id(),
    Column("site_id", ForeignKey("sites.id"), nullable=False),
    Column("code", String(32), nullable=False),
    Column("name", String(200), nullable=False),
    UniqueConstraint("site_id", "code"),
)

floors = Table(
    "floors",
    metadata,
    _id(),
    Column("building_id", ForeignKey("buildings.id"), nullable=False),
    Column("level", Integer, nullable=False),
    Column("name", String(100), nullable=False),
    UniqueConstraint("building_id", "level"),
)

units = Table(
    "units",
    metadata,
    _id(),
    Column("site_id", ForeignKey("sites.id"), nullable=False),
    Column("floor_id", ForeignKey("floors.id"), nullable=True),
    Column("code", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("area_m2", ScaledDecimal(2), nullable=True),
    UniqueConstraint("site_id", "code"),
    CheckConstraint("kind IN ('home', 'shop', 'office', 'common')", name="kind"),
)

customers = Table(
    "customers",
    metadata,
    _id(),
    Column("site_id", ForeignKey("sites.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("phone", String(32), nullable=True),
    Column("email", String(254), nullable=True),
    Column("wechat_openid", String(128), nullable=True),
    _created(),
    Column("language", String(8), nullable=False, default="zh-CN", server_default="zh-CN"),
    CheckConstraint("kind IN ('person', 'company')", name="kind"),
    Index(None, "site_id", "phone"),
)

# --- ledger -----------------------------------------------------------------

ledger_accounts = Table(
    "ledger_accounts",
    metadata,
    _id(),
    Column("code", String(120), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),
    Column("site_id", ForeignKey("sites.id"), nullable=True),
    Column("debits_posted", BigInteger, nullable=False, default=0),
    Column("credits_posted", BigInteger, nullable=False, default=0),
    _created(),
    CheckConstraint("kind IN ('asset', 'liability', 'revenue', 'expense', 'equity')", name="kind"),
)

transfers = Table(
    "transfers",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("idempotency_key", String(200), nullable=False, unique=True),
    Column("debit_account_id", ForeignKey("ledger_accounts.id"), nullable=False),
    Column("credit_account_id", ForeignKey("ledger_accounts.id"), nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("reverses_key", String(200), nullable=True, unique=True),
    Column("account_id", ForeignKey("accounts.id"), nullable=True),
    Column("memo", String(500), nullable=False, default=""),
    Column("actor", String(120), nullable=False, default="system"),
    _created(),
    CheckConstraint("amount_fen > 0", name="positive"),
    CheckConstraint("debit_account_id <> credit_account_id", name="two_sides"),
    Index(None, "account_id", "id"),
    # the console's "today" and its trends scan transfers by time; they are appended in time
    # order, so on PostgreSQL a BRIN index (a few pages) serves without slowing ingest
    Index(None, "created_at", postgresql_using="brin"),
)

# --- tariffs ----------------------------------------------------------------

tariffs = Table(
    "tariffs",
    metadata,
    _id(),
    Column("site_id", ForeignKey("sites.id"), nullable=False),
    Column("code", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    Column("utility", String(16), nullable=False),
    _created(),
    UniqueConstraint("site_id", "code"),
)

tariff_versions = Table(
    "tariff_versions",
    metadata,
    _id(),
    Column("tariff_id", ForeignKey("tariffs.id"), nullable=False),
    Column("effective_from", UTCDateTime(), nullable=False),
    Column("unit_price", Price, nullable=False),
    Column("components", JSON, nullable=True),
    _created(),
    UniqueConstraint("tariff_id", "effective_from"),
    CheckConstraint("unit_price >= 0", name="price"),
)

# --- accounts ---------------------------------------------------------------

accounts = Table(
    "accounts",
    metadata,
    _id(),
    Column("site_id", ForeignKey("sites.id"), nullable=False),
    Column("unit_id", ForeignKey("units.id"), nullable=False),
    Column("customer_id", ForeignKey("customers.id"), nullable=True),
    Column("number", String(64), nullable=False),
    Column("utility", String(16), nullable=False),
    Column("tariff_id", ForeignKey("tariffs.id"), nullable=False),
    Column("wallet_id", ForeignKey("ledger_accounts.id"), nullable=False, unique=True),
    Column("status", String(16), nullable=False),
    Column("supply_state", String(24), nullable=False, default="normal"),
    Column("warning1_fen", BigInteger, nullable=True),
    Column("warning2_fen", BigInteger, nullable=True),
    Column("credit_limit_fen", BigInteger, nullable=True),
    Column("disconnect_fen", BigInteger, nullable=True),
    Column("reconnect_fen", BigInteger, nullable=True),
    Column("opened_at", UTCDateTime(), nullable=False),
    Column("closed_at", UTCDateTime(), nullable=True),
    # Where the account stands in its tier cycle (阶梯): the cycle's first day and the
    # use counted in it so far; moved by each charge on a tiered tariff.
    Column("tier_cycle_start", Date, nullable=True),
    Column("tier_consumed", Quantity, nullable=False, default=0, server_default="0"),
    # Days-based warning overrides ("N days of average use left").
    Column("warning1_days", Integer, nullable=True),
    Column("warning2_days", Integer, nullable=True),
    # The supply state's last change and the current arrears episode: when the
    # arrears notice and the final notice were given, when to decide again.
    Column("supply_changed_at", UTCDateTime(), nullable=True),
    Column("notice_given_at", UTCDateTime(), nullable=True),
    Column("final_notice_given_at", UTCDateTime(), nullable=True),
    Column("next_decision_at", UTCDateTime(), nullable=True),
    # 保电: never cut automatically; who set it and why.
    Column("protected_reason", String(200), nullable=True),
    Column("protected_by", String(120), nullable=True),
    Column("protected_since", UTCDateTime(), nullable=True),
    UniqueConstraint("site_id", "number"),
    CheckConstraint("utility IN ('electricity', 'water')", name="utility"),
    CheckConstraint("status IN ('open', 'closed')", name="status"),
    Index(None, "unit_id"),
    Index(None, "customer_id"),
    Index(None, "next_decision_at"),
)

# --- meters and readings ----------------------------------------------------

gateways = Table(
    "gateways",
    metadata,
    _id(),
    Column("site_id", ForeignKey("sites.id"), nullable=False),
    Column("code", String(64), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("transport", String(16), nullable=False),
    Column("status", String(16), nullable=False, default="offline"),
    Column("last_seen_at", UTCDateTime(), nullable=True),
    Column("remote_addr", String(64), nullable=True),
    Column("connected_at", UTCDateTime(), nullable=True),
)

meters = Table(
    "meters",
    metadata,
    _id(),
    Column("site_id", ForeignKey("sites.id"), nullable=False),
    Column("unit_id", ForeignKey("units.id"), nullable=False),
    Column("account_id", ForeignKey("accounts.id"), nullable=True),
    Column("gateway_id", ForeignKey("gateways.id"), nullable=True),
    Column("utility", String(16), nullable=False),
    Column("protocol", String(24), nullable=False),
    Column("address", String(32), nullable=False),
    Column("serial", String(64), nullable=True),
    Column("model", String(64), nullable=True),
    Column("multiplier", Integer, nullable=False, default=1),
    Column("register_capacity", Quantity, nullable=True),
    Column("max_rate_per_hour", Quantity, nullable=True),
    Column("has_switch", Boolean, nullable=False, default=False),
    Column("status", String(16), nullable=False),
    Column("installed_at", UTCDateTime(), nullable=False),
    Column("removed_at", UTCDateTime(), nullable=True),
    Column("last_read_at", UTCDateTime(), nullable=True),
    Column("last_total", Quantity, nullable=True),
    Column("charge_carry", SubFen, nullable=False, default=0, server_default="0"),
    Column("last_tip", Quantity, nullable=True),
    Column("last_peak", Quantity, nullable=True),
    Column("last_flat", Quantity, nullable=True),
    Column("last_valley", Quantity, nullable=True),
    # Link state: whether the meter answers, apart from whether its readings bill.
    Column("link_status", String(16), nullable=False, default="unknown", server_default="unknown"),
    Column("last_heard_at", UTCDateTime(), nullable=True),
    CheckConstraint("utility IN ('electricity', 'water')", name="utility"),
    CheckConstraint("status IN ('active', 'removed', 'faulty')", name="status"),
    CheckConstraint("multiplier >= 1", name="multiplier"),
    Index(None, "account_id"),
    Index(None, "gateway_id"),
    Index(None, "unit_id"),
    Index(
        "uq_meters_site_id_protocol_address_active",
        "site_id",
        "protocol",
        "address",
        unique=True,
        sqlite_where=Column("status") != "removed",
        postgresql_where=Column("status") != "removed",
    ),
)

meter_installations = Table(
    "meter_installations",
    metadata,
    _id(),
    Column("meter_id", ForeignKey("meters.id"), nullable=False),
    Column("unit_id", ForeignKey("units.id"), nullable=False),
    Column("account_id", ForeignKey("accounts.id"), nullable=True),
    Column("installed_at", UTCDateTime(), nullable=False),
    Column("initial_total", Quantity, nullable=False),
    Column("removed_at", UTCDateTime(), nullable=True),
    Column("final_total", Quantity, nullable=True),
    Column("replaced_by_meter_id", ForeignKey("meters.id"), nullable=True),
    Column("reason", String(500), nullable=False, default=""),
    Index(None, "meter_id"),
)

# Partitioned by month (read_at) on PostgreSQL; see the migration.
readings = Table(
    "readings",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("meter_id", Integer, nullable=False),
    Column("read_at", UTCDateTime(), nullable=False),
    Column("received_at", UTCDateTime(), nullable=False),
    Column("total", Quantity, nullable=False),
    Column("tip", Quantity, nullable=True),
    Column("peak", Quantity, nullable=True),
    Column("flat", Quantity, nullable=True),
    Column("valley", Quantity, nullable=True),
    Column("status_word", Integer, nullable=True),
    Column("source", String(16), nullable=False),
    Column("quality", String(16), nullable=False),
    Column("flags", String(120), nullable=False, default=""),
    Column("consumption", Quantity, nullable=False, default=0),
)

# Commands to meters (cut, restore, read status, time sync), written with the decision
# that caused them and dispatched after the commit; ``cause_key`` makes deciding again
# harmless. Lifecycle: meterpay.control.commands.
commands = Table(
    "commands",
    metadata,
    _id(),
    Column("meter_id", ForeignKey("meters.id"), nullable=False),
    Column("account_id", Integer, nullable=True),
    Column("kind", String(16), nullable=False),
    Column("state", String(16), nullable=False),
    Column("cause_key", String(200), nullable=False, unique=True),
    Column("reason", String(500), nullable=False, default="", server_default=""),
    Column("requested_by", String(120), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("next_attempt_at", UTCDateTime(), nullable=False),
    Column("attempts", Integer, nullable=False, default=0, server_default="0"),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("last_error", String(500), nullable=False, default="", server_default=""),
    # How a restore closes a DL/T 645 relay: "close_now" (1CH) or "close_allowed" (1BH).
    Column("option", String(16), nullable=True),
    CheckConstraint("kind IN ('cut', 'restore', 'read_status', 'time_sync')", name="kind"),
    CheckConstraint(
        "state IN ('pending', 'sent', 'acknowledged', 'verified', 'failed', 'expired')",
        name="state",
    ),
    CheckConstraint("attempts >= 0", name="attempts"),
    Index(None, "state", "next_attempt_at"),
    Index(None, "meter_id", "id"),
    Index(None, "account_id", "id"),
)

# Raw frames to and from meters, for technicians (newest last; no foreign keys:
# a DTU that is not registered yet is logged under its registration id).
frame_log = Table(
    "frame_log",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("at", UTCDateTime(), nullable=False),
    Column("gateway_code", String(64), nullable=False),
    Column("meter_id", Integer, nullable=True),
    Column("direction", String(4), nullable=False),
    Column("protocol", String(24), nullable=False),
    Column("hex", Text, nullable=False),
    Column("note", String(200), nullable=False, default="", server_default=""),
    CheckConstraint("direction IN ('rx', 'tx')", name="direction"),
    Index(None, "gateway_code", "id"),
    Index(None, "meter_id", "id"),
)

charges = Table(
    "charges",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("account_id", ForeignKey("accounts.id"), nullable=False),
    Column("meter_id", ForeignKey("meters.id"), nullable=True),
    Column("reading_id", BigInteger, nullable=True, unique=True),
    Column("kind", String(16), nullable=False, default="reading", server_default="reading"),
    Column("charge_key", String(200), nullable=True, unique=True),
    Column("transfer_key", String(200), nullable=True),
    Column("period_start", UTCDateTime(), nullable=False),
    Column("period_end", UTCDateTime(), nullable=False),
    Column("quantity", Quantity, nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("lines", JSON, nullable=False),
    _created(),
    Index(None, "account_id", "period_end"),
)

# --- resale of supply (转供电 / 转供水) ---------------------------------------------------

supply_settings = Table(
    "supply_settings",
    metadata,
    Column("site_id", ForeignKey("sites.id"), primary_key=True),
    Column("utility", String(16), primary_key=True),
    Column("resale_model", String(16), nullable=False),
    Column("catalog_price", Price, nullable=True),
    Column("updated_at", UTCDateTime(), nullable=False),
    CheckConstraint("resale_model IN ('catalog', 'shared')", name="resale_model"),
)

supplier_bills = Table(
    "supplier_bills",
    metadata,
    _id(),
    Column("site_id", ForeignKey("sites.id"), nullable=False),
    Column("utility", String(16), nullable=False),
    Column("month", Date, nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("evidence", String(500), nullable=False),
    _created(),
    Column("actor", String(120), nullable=False),
    UniqueConstraint("site_id", "utility", "month"),
    CheckConstraint("amount_fen > 0", name="positive"),
)

# --- the audit trail ----------------------------------------------------------

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("at", UTCDateTime(), nullable=False),
    Column("actor", String(120), nullable=False),
    Column("source_ip", String(64), nullable=True),
    Column("action", String(64), nullable=False),
    Column("object_type", String(32), nullable=False),
    Column("object_id", String(64), nullable=False),
    Column("site_id", Integer, nullable=True),
    Column("before", JSON, nullable=True),
    Column("after", JSON, nullable=True),
    Column("reason", String(500), nullable=False, default=""),
    Index(None, "object_type", "object_id"),
)

# --- NB-IoT platform push (CTWing, OneNET) — begin ---------------------------------------
# One row per push gateway (transport ``http``): which platform pushes to it, the shared
# token (OneNET signs with it, so it is kept as given, not hashed), how pushed devices map
# to meter addresses and which decoded fields make a reading (``push_formats.FieldMapping``).
push_endpoints = Table(
    "push_endpoints",
    metadata,
    Column("gateway_id", ForeignKey("gateways.id"), primary_key=True),
    Column("platform", String(16), nullable=False),
    Column("token", String(128), nullable=False),
    Column("address_by", String(16), nullable=False),
    Column("fields", JSON, nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    CheckConstraint("platform IN ('ctwing', 'onenet')", name="platform"),
    CheckConstraint("address_by IN ('imei', 'device_id')", name="address_by"),
)
# --- NB-IoT platform push — end -----------------------------------------------------------


# --- arrears and remote control -------------------------------------------------

arrears_policies = Table(
    "arrears_policies",
    metadata,
    Column("site_id", ForeignKey("sites.id"), primary_key=True),
    Column("utility", String(16), primary_key=True),
    Column("warning1_fen", BigInteger, nullable=True),
    Column("warning1_days", Integer, nullable=True),
    Column("warning2_fen", BigInteger, nullable=True),
    Column("warning2_days", Integer, nullable=True),
    Column("credit_limit_fen", BigInteger, nullable=False),
    Column("cutoff_fen", BigInteger, nullable=False),
    Column("restore_fen", BigInteger, nullable=False),
    Column("notice_period_s", Integer, nullable=False),
    Column("final_notice_lead_s", Integer, nullable=False),
    Column("friendly_start", String(5), nullable=True),
    Column("friendly_end", String(5), nullable=True),
    Column("no_cutoff_on_rest_days", Boolean, nullable=False),
    Column("automatic_cutoff", Boolean, nullable=False),
    Column("restore_style", String(16), nullable=False),
    Column("alarm_margin_fen", BigInteger, nullable=False),
    Column("alarm_max_deferral_s", Integer, nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("updated_by", String(120), nullable=False),
    CheckConstraint("utility IN ('electricity', 'water')", name="utility"),
    CheckConstraint("restore_style IN ('close_now', 'close_allowed')", name="restore_style"),
)

supply_events = Table(
    "supply_events",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("account_id", ForeignKey("accounts.id"), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Column("from_state", String(24), nullable=False),
    Column("to_state", String(24), nullable=False),
    Column("event", String(40), nullable=False),
    Column("balance_fen", BigInteger, nullable=False),
    Column("cause", String(200), nullable=False),
    Index(None, "account_id", "id"),
)

holiday_overrides = Table(
    "holiday_overrides",
    metadata,
    Column("day", Date, primary_key=True),
    Column("day_type", String(16), nullable=False),
    Column("note", String(200), nullable=False, default="", server_default=""),
    Column("updated_by", String(120), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    CheckConstraint("day_type IN ('workday', 'weekend', 'holiday')", name="day_type"),
)

alarms = Table(
    "alarms",
    metadata,
    _id(),
    Column("site_id", Integer, nullable=True),
    Column("kind", String(40), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("object_type", String(32), nullable=False),
    Column("object_id", String(64), nullable=False),
    Column("dedupe_key", String(200), nullable=False, unique=True),
    Column("message", String(500), nullable=False),
    Column("details", JSON, nullable=True),
    Column("state", String(16), nullable=False),
    Column("opened_at", UTCDateTime(), nullable=False),
    Column("last_seen_at", UTCDateTime(), nullable=False),
    Column("occurrences", Integer, nullable=False, default=1, server_default="1"),
    Column("closed_at", UTCDateTime(), nullable=True),
    Column("closed_by", String(120), nullable=True),
    CheckConstraint("severity IN ('info', 'warning', 'critical')", name="severity"),
    CheckConstraint("state IN ('open', 'acknowledged', 'closed')", name="state"),
    Index(None, "state", "site_id"),
    Index(None, "object_type", "object_id"),
)

control_actions = Table(
    "control_actions",
    metadata,
    _id(),
    Column("site_id", ForeignKey("sites.id"), nullable=False),
    Column("scope", String(16), nullable=False),
    Column("scope_id", Integer, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("reason", String(500), nullable=False),
    Column("state", String(24), nullable=False),
    Column("requested_by", String(120), nullable=False),
    Column("requested_at", UTCDateTime(), nullable=False),
    Column("decided_by", String(120), nullable=True),
    Column("decided_at", UTCDateTime(), nullable=True),
    Column("preview", JSON, nullable=False),
    Column("commands_queued", Integer, nullable=False, default=0, server_default="0"),
    CheckConstraint("scope IN ('meter', 'floor', 'building', 'site')", name="scope"),
    CheckConstraint("kind IN ('cut', 'restore')", name="kind"),
    CheckConstraint("state IN ('awaiting_approval', 'rejected', 'executed')", name="state"),
    Index(None, "site_id", "id"),
)


# --- notifications ----------------------------------------------------------------------
# Integrators' endpoints, one site each: the secret signs every delivery (kept as given,
# like a push token: we need it to sign); ``topics`` empty means every topic.
webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    _id(),
    Column("site_id", ForeignKey("sites.id"), nullable=False),
    Column("url", String(500), nullable=False),
    Column("secret", String(128), nullable=False),
    Column("description", String(200), nullable=False, default="", server_default=""),
    Column("topics", JSON, nullable=False),
    Column("enabled", Boolean, nullable=False, default=True),
    _created(),
    Index(None, "site_id"),
)

# The notification outbox: one row per event, channel and recipient, written with the
# decision and delivered after the commit (meterpay.notify.outbox). The text is rendered
# when queued, in the recipient's language and the site's time zone.
notifications = Table(
    "notifications",
    metadata,
    _id(),
    Column("site_id", ForeignKey("sites.id"), nullable=False),
    Column("account_id", Integer, nullable=True),
    Column("customer_id", Integer, nullable=True),
    Column("endpoint_id", Integer, nullable=True),
    Column("topic", String(24), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("recipient", String(500), nullable=False),
    Column("language", String(8), nullable=False),
    Column("dedupe_key", String(200), nullable=False),
    Column("params", JSON, nullable=False),
    Column("variables", JSON, nullable=False),
    Column("title", String(200), nullable=False),
    Column("body", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0, server_default="0"),
    Column("next_attempt_at", UTCDateTime(), nullable=False),
    _created(),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("sent_at", UTCDateTime(), nullable=True),
    Column("read_at", UTCDateTime(), nullable=True),
    Column("provider_id", String(200), nullable=False, default="", server_default=""),
    Column("last_error", String(500), nullable=False, default="", server_default=""),
    UniqueConstraint("dedupe_key", "channel", "recipient"),
    CheckConstraint(
        "topic IN ('warning1', 'warning2', 'arrears_notice', 'final_notice', 'cut_off',"
        " 'restored', 'top_up_receipt', 'ticket_update')",
        name="topic",
    ),
    CheckConstraint("channel IN ('in_app', 'sms', 'email', 'wechat', 'webhook')", name="channel"),
    CheckConstraint("state IN ('pending', 'sending', 'sent', 'failed', 'skipped')", name="state"),
    CheckConstraint("attempts >= 0", name="attempts"),
    Index(None, "state", "next_attempt_at"),
    Index(None, "account_id", "channel", "id"),
    Index(None, "channel", "recipient", "id"),
)

# The delivery log: every attempt (and every decision not to attempt) with its outcome.
notification_deliveries = Table(
    "notification_deliveries",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("message_id", ForeignKey("notifications.id"), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("channel", String(16), nullable=False),
    Column("recipient", String(500), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("provider_id", String(200), nullable=False, default="", server_default=""),
    Column("error", String(500), nullable=False, default="", server_default=""),
    CheckConstraint("outcome IN ('sent', 'retry', 'failed', 'skipped', 'delayed')", name="outcome"),
    Index(None, "message_id", "id"),
    Index(None, "channel", "recipient", "at"),
)


# --- payments -------------------------------------------------------------------

topup_orders = Table(
    "topup_orders",
    metadata,
    _id(),
    Column("out_trade_no", String(32), nullable=False, unique=True),
    Column("provider", String(16), nullable=False),
    Column("merchant", String(32), nullable=False, default="", server_default=""),
    Column("channel", String(16), nullable=False),
    Column("site_id", ForeignKey("sites.id"), nullable=False),
    Column("account_id", ForeignKey("accounts.id"), nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("state", String(16), nullable=False),
    Column("requested_by", String(120), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("next_query_at", UTCDateTime(), nullable=True),
    Column("transaction_id", String(64), nullable=True),
    Column("paid_at", UTCDateTime(), nullable=True),
    Column("credited_at", UTCDateTime(), nullable=True),
    Column("code_url", String(500), nullable=True),
    Column("pay_url", String(500), nullable=True),
    Column("refunded_fen", BigInteger, nullable=False, default=0, server_default="0"),
    Column("note", String(500), nullable=False, default="", server_default=""),
    UniqueConstraint("provider", "transaction_id"),
    CheckConstraint("amount_fen > 0", name="positive"),
    CheckConstraint("state IN ('created', 'paid', 'credited', 'closed', 'refunded')", name="state"),
    CheckConstraint("provider IN ('wechat', 'alipay', 'sandbox')", name="provider"),
    CheckConstraint("refunded_fen >= 0 AND refunded_fen <= amount_fen", name="refunded"),
    Index(None, "account_id", "id"),
    Index(None, "state", "next_query_at"),
)

payment_notifications = Table(
    "payment_notifications",
    metadata,
    _id(),
    Column("provider", String(16), nullable=False),
    Column("merchant", String(32), nullable=False, default="", server_default=""),
    Column("key", String(128), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("received_at", UTCDateTime(), nullable=False),
    Column("remote_addr", String(64), nullable=True),
    Column("headers", JSON, nullable=False),
    Column("body", Text, nullable=False),
    Column("out_trade_no", String(32), nullable=True),
    Column("outcome", String(24), nullable=False),
    Column("detail", String(500), nullable=False, default="", server_default=""),
    UniqueConstraint("provider", "key"),
    Index(None, "out_trade_no"),
)

topup_limits = Table(
    "topup_limits",
    metadata,
    Column("site_id", ForeignKey("sites.id"), primary_key=True),
    Column("min_fen", BigInteger, nullable=False),
    Column("max_fen", BigInteger, nullable=False),
    Column("daily_cap_fen", BigInteger, nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("updated_by", String(120), nullable=False),
    CheckConstraint(
        "min_fen > 0 AND max_fen >= min_fen AND daily_cap_fen >= max_fen", name="ordered"
    ),
)


# --- cash counter ---------------------------------------------------------------
# Money taken at the counter (收费台, cash or bank-card POS): one receipt per payment,
# numbered without gaps per site and year of the site's calendar (``HOME-2026-000123``);
# a reversal row for a receipt reversed, at most one (unique ``receipt_id``). Receipts
# and reversals are append-only (triggers), like the transfers they describe.

receipt_sequences = Table(
    "receipt_sequences",
    metadata,
    Column("site_id", ForeignKey("sites.id"), primary_key=True),
    Column("year", Integer, primary_key=True, autoincrement=False),
    Column("last_seq", Integer, nullable=False),
)

counter_receipts = Table(
    "counter_receipts",
    metadata,
    _id(),
    Column("receipt_no", String(64), nullable=False, unique=True),
    Column("site_id", ForeignKey("sites.id"), nullable=False),
    Column("year", Integer, nullable=False),
    Column("seq", Integer, nullable=False),
    Column("transfer_key", String(200), nullable=False, unique=True),
    Column("account_id", ForeignKey("accounts.id"), nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("method", String(8), nullable=False),
    Column("cashier", String(120), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Column("note", String(500), nullable=False, default="", server_default=""),
    Column("balance_after_fen", BigInteger, nullable=False),
    UniqueConstraint("site_id", "year", "seq"),
    CheckConstraint("amount_fen > 0", name="positive"),
    CheckConstraint("method IN ('cash', 'pos')", name="method"),
    Index(None, "cashier", "at"),
    Index(None, "site_id", "at"),
)

counter_reversals = Table(
    "counter_reversals",
    metadata,
    _id(),
    Column("receipt_id", ForeignKey("counter_receipts.id"), nullable=False, unique=True),
    Column("transfer_key", String(200), nullable=False, unique=True),
    Column("reason", String(500), nullable=False),
    Column("reversed_by", String(120), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Column("balance_after_fen", BigInteger, nullable=False),
    CheckConstraint("length(trim(reason)) > 0", name="reason"),
    Index(None, "at"),
)


# --- reconciliation ---------------------------------------------------------------

reconciliation_runs = Table(
    "reconciliation_runs",
    metadata,
    _id(),
    Column("provider", String(16), nullable=False),
    Column("merchant", String(32), nullable=False, default="", server_default=""),
    Column("day", Date, nullable=False),
    Column("ran_at", UTCDateTime(), nullable=False),
    Column("ran_by", String(120), nullable=False),
    Column("status", String(16), nullable=False),
    Column("matched", Integer, nullable=False, default=0, server_default="0"),
    Column("totals", JSON, nullable=False),
    Column("error", String(500), nullable=False, default="", server_default=""),
    CheckConstraint("status IN ('clean', 'discrepancies', 'failed')", name="status"),
    Index(None, "provider", "merchant", "day"),
)

reconciliation_items = Table(
    "reconciliation_items",
    metadata,
    _id(),
    Column("run_id", ForeignKey("reconciliation_runs.id"), nullable=False),
    Column("finding", String(24), nullable=False),
    Column("out_trade_no", String(32), nullable=False),
    Column("ours_fen", BigInteger, nullable=True),
    Column("theirs_fen", BigInteger, nullable=True),
    Column("transaction_id", String(64), nullable=True),
    Column("action", String(200), nullable=False, default="", server_default=""),
    Index(None, "run_id"),
)


# --- refunds ----------------------------------------------------------------------

topup_refunds = Table(
    "topup_refunds",
    metadata,
    _id(),
    Column("order_id", ForeignKey("topup_orders.id"), nullable=False),
    Column("out_refund_no", String(64), nullable=False, unique=True),
    Column("amount_fen", BigInteger, nullable=False),
    Column("state", String(16), nullable=False),
    Column("reason", String(200), nullable=False),
    Column("requested_by", String(120), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("refund_id", String(64), nullable=True),
    Column("done_at", UTCDateTime(), nullable=True),
    Column("note", String(500), nullable=False, default="", server_default=""),
    CheckConstraint("amount_fen > 0", name="positive"),
    CheckConstraint("state IN ('processing', 'succeeded', 'failed')", name="state"),
    Index(None, "order_id"),
)


# --- move-out settlements ---------------------------------------------------------
# 退费: one row per account closed at move-out (unique ``account_id``: an account is settled
# once), under the caller's unique idempotency key with a digest of the request it named;
# what was read and charged last, the balance then, what was paid out (cash) or transferred
# (to the next occupant's account), the debt left, and the meters handed over. The amounts
# add up (balance = payout - debt; never both). Append-only (triggers), like the transfers.

move_out_settlements = Table(
    "move_out_settlements",
    metadata,
    _id(),
    Column("idempotency_key", String(200), nullable=False, unique=True),
    Column("request_digest", String(64), nullable=False),
    Column("site_id", ForeignKey("sites.id"), nullable=False),
    Column("account_id", ForeignKey("accounts.id"), nullable=False, unique=True),
    Column("final_readings", JSON, nullable=False),
    Column("charges_fen", BigInteger, nullable=False),
    Column("balance_fen", BigInteger, nullable=False),
    Column("payout", String(16), nullable=False),
    Column("payout_fen", BigInteger, nullable=False),
    Column("to_account_id", ForeignKey("accounts.id"), nullable=True),
    Column("transfer_key", String(200), nullable=True, unique=True),
    Column("debt_fen", BigInteger, nullable=False),
    Column("meters", JSON, nullable=False),
    Column("settled_by", String(120), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Column("reason", String(500), nullable=False),
    CheckConstraint("payout IN ('cash', 'transfer')", name="payout"),
    CheckConstraint("charges_fen >= 0 AND payout_fen >= 0 AND debt_fen >= 0", name="amounts"),
    CheckConstraint("balance_fen = payout_fen - debt_fen", name="adds_up"),
    CheckConstraint("payout <> 'transfer' OR to_account_id IS NOT NULL", name="target"),
    CheckConstraint("length(trim(reason)) > 0", name="reason"),
    Index(None, "to_account_id"),
)


# --- sign-in, sessions, roles, API tokens (meterpay.auth) ------------------------------
# Secrets are stored only as hashes: passwords (argon2id), session and API tokens and
# sign-in codes (SHA-256 of a random value: a stolen table opens nothing). A user is a
# staff member (username) or an owner (a mobile number, matched to customers' phones).

users = Table(
    "users",
    metadata,
    _id(),
    Column("kind", String(8), nullable=False),
    Column("username", String(40), nullable=True, unique=True),
    Column("phone", String(16), nullable=True, unique=True),
    Column("display_name", String(100), nullable=False),
    Column("password_hash", String(200), nullable=True),
    Column("must_change_password", Boolean, nullable=False, default=False, server_default=false()),
    Column("totp_secret", String(64), nullable=True),
    Column("totp_last_step", BigInteger, nullable=True),
    Column("failed_count", Integer, nullable=False, default=0, server_default="0"),
    Column("locked_until", UTCDateTime(), nullable=True),
    Column("disabled_at", UTCDateTime(), nullable=True),
    Column("language", String(8), nullable=False, default="zh-CN", server_default="zh-CN"),
    _created(),
    Column("password_changed_at", UTCDateTime(), nullable=True),
    Column("last_sign_in_at", UTCDateTime(), nullable=True),
    CheckConstraint("kind IN ('staff', 'owner')", name="kind"),
    CheckConstraint(
        "(kind = 'staff' AND username IS NOT NULL) OR (kind = 'owner' AND phone IS NOT NULL)",
        name="identity",
    ),
)

user_roles = Table(
    "user_roles",
    metadata,
    _id(),
    Column("user_id", ForeignKey("users.id"), nullable=False),
    Column("role", String(16), nullable=False),
    Column("site_id", ForeignKey("sites.id"), nullable=True),
    UniqueConstraint("user_id", "role", "site_id"),
    CheckConstraint("role IN ('admin', 'operator', 'cashier', 'technician')", name="role"),
)

user_sessions = Table(
    "user_sessions",
    metadata,
    _id(),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("user_id", ForeignKey("users.id"), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("last_seen_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("ended_at", UTCDateTime(), nullable=True),
    Column("source_ip", String(64), nullable=True),
    Column("user_agent", String(300), nullable=True),
    Index(None, "user_id"),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    _id(),
    Column("name", String(80), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(12), nullable=False),
    Column("scopes", JSON, nullable=False),
    Column("site_ids", JSON, nullable=True),
    Column("created_by", String(120), nullable=False),
    _created(),
    Column("expires_at", UTCDateTime(), nullable=True),
    Column("last_used_at", UTCDateTime(), nullable=True),
    Column("revoked_at", UTCDateTime(), nullable=True),
)

sign_in_attempts = Table(
    "sign_in_attempts",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("at", UTCDateTime(), nullable=False),
    Column("who", String(64), nullable=False),
    Column("source_ip", String(64), nullable=True),
    Column("ok", Boolean, nullable=False),
    Index(None, "source_ip", "at"),
    Index(None, "who", "at"),
)

sign_in_codes = Table(
    "sign_in_codes",
    metadata,
    _id(),
    Column("phone", String(16), nullable=False),
    Column("code_hash", String(64), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("tries", Integer, nullable=False, default=0, server_default="0"),
    Column("used_at", UTCDateTime(), nullable=True),
    Column("source_ip", String(64), nullable=True),
    Index(None, "phone", "created_at"),
)

# --- work orders (报修, meterpay.tickets) -------------------------------------------------
# A ticket names the account (and so the site, unit and customer, copied when it is filed:
# the guard resolves a ticket to them); its photos live in the database so every process
# serves them; each move is a row of ticket_events (and an audit entry).


tickets = Table(
    "tickets",
    metadata,
    _id(),
    Column("site_id", ForeignKey("sites.id"), nullable=False),
    Column("account_id", ForeignKey("accounts.id"), nullable=False),
    Column("unit_id", ForeignKey("units.id"), nullable=False),
    Column("customer_id", ForeignKey("customers.id"), nullable=True),
    Column("description", String(1000), nullable=False),
    Column("state", String(16), nullable=False),
    Column("filed_by", String(120), nullable=False),
    Column("assignee", String(120), nullable=True),
    Column("request_key", String(64), nullable=False, unique=True),
    _created(),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("closed_at", UTCDateTime(), nullable=True),
    CheckConstraint(
        "state IN ('open', 'assigned', 'in_progress', 'done', 'cancelled')", name="state"
    ),
    Index(None, "site_id", "state", "id"),
    Index(None, "account_id", "id"),
)

ticket_photos = Table(
    "ticket_photos",
    metadata,
    _id(),
    Column("ticket_id", ForeignKey("tickets.id"), nullable=False),
    Column("position", Integer, nullable=False),
    Column("media_type", String(16), nullable=False),
    Column("size", Integer, nullable=False),
    Column("data", LargeBinary, nullable=False),
    _created(),
    UniqueConstraint("ticket_id", "position"),
    CheckConstraint("position BETWEEN 1 AND 3", name="position"),
    CheckConstraint("size BETWEEN 1 AND 5242880", name="size"),
)

ticket_events = Table(
    "ticket_events",
    metadata,
    _id(),
    Column("ticket_id", ForeignKey("tickets.id"), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Column("actor", String(120), nullable=False),
    Column("from_state", String(16), nullable=True),
    Column("to_state", String(16), nullable=False),
    Column("note", String(500), nullable=False, default="", server_default=""),
    Index(None, "ticket_id", "id"),
)

# --- background jobs ----------------------------------------------------------

jobs = Table(
    "jobs",
    metadata,
    _id(),
    Column("kind", String(32), nullable=False),
    Column("state", String(16), nullable=False),
    Column("site_id", ForeignKey("sites.id"), nullable=True),
    Column("params", JSON, nullable=False),
    Column("started_by", String(120), nullable=False),
    Column("started_by_user", Integer, nullable=True),
    Column("stage", String(32), nullable=False, default="", server_default=""),
    Column("done", Integer, nullable=False, default=0, server_default="0"),
    Column("total", Integer, nullable=False, default=0, server_default="0"),
    Column("result", JSON, nullable=True),
    Column("error", String(500), nullable=False, default="", server_default=""),
    Column("attempts", Integer, nullable=False, default=0, server_default="0"),
    Column("runner", String(64), nullable=True),
    _created(),
    Column("started_at", UTCDateTime(), nullable=True),
    Column("heartbeat_at", UTCDateTime(), nullable=True),
    Column("finished_at", UTCDateTime(), nullable=True),
    CheckConstraint("state IN ('queued', 'running', 'done', 'failed')", name="state"),
    Index(None, "state", "id"),
    Index(None, "started_by_user", "id"),
)

job_files = Table(
    "job_files",
    metadata,
    _id(),
    Column("job_id", ForeignKey("jobs.id"), nullable=False),
    Column("role", String(8), nullable=False),
    Column("name", String(200), nullable=False),
    Column("media_type", String(100), nullable=False),
    Column("size", Integer, nullable=False),
    Column("data", LargeBinary, nullable=False),
    _created(),
    UniqueConstraint("job_id", "role"),
    CheckConstraint("role IN ('input', 'output')", name="role"),
)
