"""Resale of supply (转供电/转供水) by a property company, the two lawful models.

Model 1 (``catalog``): each end user pays the catalog price for their own
sub-meter — ordinary per-reading billing; tariffs are checked against the
catalog price (``tariffs.resale.resale_warnings``).

Model 2 (``shared``): the supplier's monthly bill is shared over the
sub-meters by their consumption. Invariants of a share run:
- the shares add up to the bill exactly, to the fen (largest remainders);
- the landlord's own use (its own accounts) is never passed on;
- each account is charged its share once (key ``share:<bill>:<account>``),
  with the bill as evidence on the charge.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from enum import StrEnum
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, func, select

from meterpay.audit import repository as audit
from meterpay.db.rows import insert_ignoring_conflicts, insert_row
from meterpay.db.schema import accounts, charges, supplier_bills, supply_settings
from meterpay.kernel.errors import Conflict, InvalidInput
from meterpay.kernel.money import Money, parse_unit_price
from meterpay.kernel.quantity import Utility
from meterpay.ledger import repository as ledger
from meterpay.ledger.model import LedgerAccountKind, Transfer, TransferKind
from meterpay.ledger.repository import Posting
from meterpay.runtime import Runtime
from meterpay.sites import repository as sites
from meterpay.sites.model import revenue_code
from meterpay.tariffs.resale import share_bill


class ResaleModel(StrEnum):
    CATALOG = "catalog"
    SHARED = "shared"


@dataclass(frozen=True)
class ShareRun:
    bill_id: int
    shares: dict[int, int]  # account id -> fen
    landlord_fen: int


def set_supply(
    rt: Runtime,
    *,
    site_id: int,
    utility: Utility,
    model: ResaleModel,
    catalog_price: Decimal | str | None,
    actor: str,
) -> None:
    """Record how a site resells a utility and the catalog price it pays."""
    price = parse_unit_price(catalog_price) if catalog_price is not None else None
    now = rt.clock.now()
    with rt.db.write() as conn:
        sites.site(conn, site_id)
        key = (supply_settings.c.site_id == site_id) & (supply_settings.c.utility == utility)
        conn.execute(supply_settings.delete().where(key))
        conn.execute(
            supply_settings.insert().values(
                site_id=site_id,
                utility=Utility(utility).value,
                resale_model=model.value,
                catalog_price=price,
                updated_at=now,
            )
        )
        audit.record(
            conn,
            at=now,
            actor=actor,
            action="site.supply",
            object_type="site",
            object_id=site_id,
            site_id=site_id,
            after={"utility": utility, "model": model, "catalog_price": price},
        )


def share_supplier_bill(
    rt: Runtime,
    *,
    site_id: int,
    utility: Utility,
    month: date,
    amount: Money,
    evidence: str,
    landlord_account_ids: set[int],
    actor: str,
) -> ShareRun:
    """Share one month's supplier bill over the site's accounts (model 2), once."""
    if month.day != 1:
        raise InvalidInput(f"{month} is not the first day of a month", field="month")
    if amount.fen <= 0 or not evidence.strip():
        raise InvalidInput(
            "a bill needs a positive amount and its evidence (bill number)",
            field="amount" if amount.fen <= 0 else "evidence",
        )
    now = rt.clock.now()
    with rt.db.write() as conn:
        site = sites.site(conn, site_id)
        bill_id = _bill(
            conn, site_id, utility, month, amount=amount, evidence=evidence, actor=actor, now=now
        )
        start = datetime.combine(month, time(0), ZoneInfo(site.timezone))
        end = datetime.combine(_next_month(month), time(0), ZoneInfo(site.timezone))
        used = _consumption(conn, site_id, utility, start, end)
        shares = share_bill(amount.fen, used, frozenset(landlord_account_ids))
        revenue_id = ledger.ensure_ledger_account(
            conn,
            f"{revenue_code(site.code, utility)}:shared",
            LedgerAccountKind.REVENUE,
            site_id,
            now,
        )
        for account_id, fen in sorted(shares.items()):
            if fen > 0:
                _charge_share(
                    conn,
                    account_id,
                    bill_id,
                    fen=fen,
                    revenue_id=revenue_id,
                    usage=(used[account_id], start, end),
                    actor=actor,
                    now=now,
                )
        return ShareRun(bill_id, shares, amount.fen - sum(shares.values()))


def _bill(
    conn: Connection,
    site_id: int,
    utility: Utility,
    month: date,
    *,
    amount: Money,
    evidence: str,
    actor: str,
    now: datetime,
) -> int:
    """The bill's id; the same bill again is fine, a different one for the month is not."""
    found = conn.execute(
        select(supplier_bills.c.id, supplier_bills.c.amount_fen).where(
            supplier_bills.c.site_id == site_id,
            supplier_bills.c.utility == utility,
            supplier_bills.c.month == month,
        )
    ).first()
    if found is not None:
        if found.amount_fen != amount.fen:
            raise Conflict(
                f"the {month:%Y-%m} bill was already shared for "
                f"{Money(found.amount_fen)} 元; correct it with an adjustment"
            )
        return int(found.id)
    return insert_row(
        conn,
        supplier_bills,
        {
            "site_id": site_id,
            "utility": Utility(utility).value,
            "month": month,
            "amount_fen": amount.fen,
            "evidence": evidence,
            "created_at": now,
            "actor": actor,
        },
    )


def _consumption(
    conn: Connection, site_id: int, utility: Utility, start: datetime, end: datetime
) -> dict[int, Decimal]:
    query = (
        select(charges.c.account_id, func.sum(charges.c.quantity))
        .join(accounts, accounts.c.id == charges.c.account_id)
        .where(
            accounts.c.site_id == site_id,
            accounts.c.utility == Utility(utility).value,
            charges.c.kind == "reading",
            charges.c.period_end > start,
            charges.c.period_end <= end,
        )
        .group_by(charges.c.account_id)
    )
    return {int(aid): total for aid, total in conn.execute(query)}


def _charge_share(
    conn: Connection,
    account_id: int,
    bill_id: int,
    *,
    fen: int,
    revenue_id: int,
    usage: tuple[Decimal, datetime, datetime],
    actor: str,
    now: datetime,
) -> None:
    quantity, start, end = usage
    key = f"share:{bill_id}:{account_id}"
    inserted = conn.execute(
        insert_ignoring_conflicts(conn, charges).returning(charges.c.id),
        [
            {
                "account_id": account_id,
                "meter_id": None,
                "reading_id": None,
                "kind": "share",
                "charge_key": key,
                "transfer_key": key,
                "period_start": start,
                "period_end": end,
                "quantity": quantity,
                "amount_fen": fen,
                "created_at": now,
                "lines": [
                    {
                        "component": "share",
                        "supplier_bill_id": bill_id,
                        "quantity": str(quantity),
                        "amount": str(Money(fen)),
                    }
                ],
            }
        ],
    ).first()
    if inserted is None:
        return  # shared before
    wallet_id = sites.account(conn, account_id).wallet_id
    transfer = Transfer(key, wallet_id, revenue_id, fen, TransferKind.CHARGE)
    ledger.post(
        conn, [Posting(transfer, account_id, f"分摊 supplier bill {bill_id}")], actor=actor, now=now
    )


def _next_month(month: date) -> date:
    return date(month.year + 1, 1, 1) if month.month == 12 else date(month.year, month.month + 1, 1)
