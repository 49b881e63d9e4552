"""Monthly fixed fees (月服务费, 表计租赁费 …): charged once per account, fee and month.

Invariants:
- the charge key ``fee:<account>:<code>:<YYYY-MM>`` is unique in charges and
  in transfers, so a run repeated, or run by two processes at once, charges
  each fee exactly once;
- the fee comes from the tariff version in force on the month's first day
  (site time), and goes to its own revenue account;
- only open accounts are charged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from typing import NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, select

from meterpay.db.rows import insert_ignoring_conflicts
from meterpay.db.schema import accounts, charges, sites
from meterpay.kernel.errors import InvalidInput
from meterpay.kernel.quantity import Utility
from meterpay.ledger import repository as ledger
from meterpay.ledger.model import LedgerAccountKind, Transfer, TransferKind
from meterpay.ledger.repository import Posting
from meterpay.runtime import Runtime
from meterpay.sites.model import revenue_code
from meterpay.tariffs.components import TariffComponents
from meterpay.tariffs.fees import FeeDue, fixed_fees_due
from meterpay.tariffs.repository import price_schedules


@dataclass
class FeeRun:
    month: date
    charged: list[tuple[int, str, int]] = field(default_factory=list)  # account, code, fen
    already: int = 0

    @property
    def total_fen(self) -> int:
        return sum(fen for _, _, fen in self.charged)


def fee_revenue_code(site_code: str, utility: Utility, fee_code: str) -> str:
    return f"{revenue_code(site_code, utility)}:fee:{fee_code}"


class _FeeAccount(NamedTuple):
    id: int
    wallet_id: int
    tariff_id: int
    utility: str
    site_code: str
    time_zone: str
    site_id: int


def charge_monthly_fees(
    rt: Runtime, *, month: date, site_id: int | None = None, actor: str
) -> FeeRun:
    """Charge every open account the fixed fees its tariff sets for ``month``."""
    if month.day != 1:
        raise InvalidInput(f"{month} is not the first day of a month", field="month")
    run = FeeRun(month)
    now = rt.clock.now()
    with rt.db.write() as conn:
        for account in _open_accounts(conn, site_id):
            start = datetime.combine(month, time(0), ZoneInfo(account.time_zone))
            components = _in_force(conn, account.tariff_id, start)
            if components is None:
                continue
            for due in fixed_fees_due(components, month, _next_month(month)):
                fen = _charge_fee(conn, account, due, start=start, actor=actor, now=now)
                if fen is None:
                    run.already += 1
                else:
                    run.charged.append((account.id, due.code, fen))
    return run


def _open_accounts(conn: Connection, site_id: int | None) -> list[_FeeAccount]:
    query = (
        select(
            accounts.c.id,
            accounts.c.wallet_id,
            accounts.c.tariff_id,
            accounts.c.utility,
            sites.c.code,
            sites.c.timezone,
            sites.c.id,
        )
        .join(sites, sites.c.id == accounts.c.site_id)
        .where(accounts.c.status == "open")
        .order_by(accounts.c.id)
    )
    if site_id is not None:
        query = query.where(accounts.c.site_id == site_id)
    return [_FeeAccount(*row) for row in conn.execute(query)]


def _in_force(conn: Connection, tariff_id: int, at: datetime) -> TariffComponents | None:
    versions = price_schedules(conn, [tariff_id]).get(tariff_id, [])
    current = [v for v in versions if v.effective_from <= at]
    return current[-1].components if current else None


def _charge_fee(
    conn: Connection,
    account: _FeeAccount,
    due: FeeDue,
    *,
    start: datetime,
    actor: str,
    now: datetime,
) -> int | None:
    """Charge one fee once; None when it was charged before."""
    key = f"fee:{account.id}:{due.code}:{due.period_key}"
    inserted = conn.execute(
        insert_ignoring_conflicts(conn, charges).returning(charges.c.id),
        [
            {
                "account_id": account.id,
                "meter_id": None,
                "reading_id": None,
                "kind": "fee",
                "charge_key": key,
                "transfer_key": key,
                "period_start": start,
                "period_end": start,
                "quantity": Decimal(0),
                "amount_fen": due.amount.fen,
                "created_at": now,
                "lines": [
                    {"component": due.component, "name": due.name, "amount": str(due.amount)}
                ],
            }
        ],
    ).first()
    if inserted is None:
        return None
    code = fee_revenue_code(account.site_code, Utility(account.utility), due.code)
    revenue_id = ledger.ensure_ledger_account(
        conn, code, LedgerAccountKind.REVENUE, account.site_id, now
    )
    transfer = Transfer(key, account.wallet_id, revenue_id, due.amount.fen, TransferKind.CHARGE)
    ledger.post(
        conn, [Posting(transfer, account.id, f"{due.name} {due.period_key}")], actor=actor, now=now
    )
    return due.amount.fen


def _next_month(month: date) -> date:
    return date(month.year + 1, 1, 1) if month.month == 12 else date(month.year, month.month + 1, 1)
