"""The audit trail records every change to money, meters and tariffs; SQLite is set up safely."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from sqlalchemy import select, text

from meterpay.db.schema import audit_log
from meterpay.kernel.money import Money
from meterpay.ledger import service as ledger
from meterpay.metering import service as metering
from meterpay.runtime import Runtime
from meterpay.sites import service as sites
from meterpay.tariffs import service as tariffs
from tests.integration.builders import a_home


def test_money_meter_and_tariff_changes_are_in_the_audit_log_with_who_and_why(
    rt: Runtime,
) -> None:
    """Top-up, account change, tariff version and meter replacement each leave an entry."""
    home = a_home(rt, max_rate_per_hour=None)
    ledger.cash_top_up(
        rt,
        account_id=home.account.id,
        amount=Money.from_yuan("50"),
        idempotency_key="A-1",
        cashier="cashier:王",
    )
    sites.update_account(
        rt, home.account.id, warning1_fen=2000, actor="operator:李", reason="业主要求"
    )
    tariffs.add_version(
        rt,
        home.tariff_id,
        unit_price="0.5000",
        effective_from=rt.clock.now() + timedelta(days=1),
        actor="admin:张",
        reason="调价",
    )
    rt.clock.advance(timedelta(hours=2))  # type: ignore[attr-defined]
    metering.replace_meter(
        rt,
        home.meter.id,
        final_total=Decimal("5"),
        replaced_at=rt.clock.now() - timedelta(hours=1),
        new_address="000000000909",
        new_initial_total=Decimal(0),
        reason="表计损坏",
        actor="technician:赵",
    )
    with rt.db.read() as conn:
        entries = {
            (row.action, row.actor, row.reason)
            for row in conn.execute(
                select(audit_log.c.action, audit_log.c.actor, audit_log.c.reason)
            )
        }
    assert ("money.top_up", "cashier:王", "") in entries
    assert ("account.update", "operator:李", "业主要求") in entries
    assert ("tariff.version", "admin:张", "调价") in entries
    assert ("meter.replace", "technician:赵", "表计损坏") in entries


def test_sqlite_runs_in_wal_mode_with_foreign_keys_enforced(rt: Runtime) -> None:
    """Readers never block the writer, and references are checked on SQLite too."""
    if rt.db.is_postgres:
        return
    with rt.db.read() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL: durable commits
