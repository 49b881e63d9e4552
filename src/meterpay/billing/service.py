"""Readings -> consumption -> charges -> ledger transfers, inside the caller's
transaction (the ingest use case), exactly once per reading.

Invariants:
- a reading is charged at most once: ``charges.reading_id`` is unique and the
  transfer's idempotency key is ``charge:reading:<id>``;
- per meter, charges carry the sub-fen remainder (``meters.charge_carry``,
  read under the meter's row lock) so a run of readings' charges sums to the
  fen to the price of its total consumption;
- the wallet moves by an atomic increment of its posted totals, so concurrent
  charges and top-ups on one account lose nothing;
- tiers count an account's use over all its meters: the caller reads each
  account's tier position under the account's row lock, taken after the ledger
  rows the charges post to (``lock_posting_rows``: the product's lock order), so
  two batches billing meters of one account take turns instead of racing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

from sqlalchemy import Connection

from meterpay.billing.model import BillingTarget
from meterpay.billing.repository import save_tier_states
from meterpay.billing.rules import PriceVersion, charge_with_carry, pieces_by_version
from meterpay.db.bulk import copy_rows
from meterpay.db.schema import charges
from meterpay.kernel.money import Money
from meterpay.ledger import repository as ledger
from meterpay.ledger.model import Transfer, TransferKind
from meterpay.ledger.repository import Posting
from meterpay.tariffs.apportion import largest_remainders
from meterpay.tariffs.components import Period, TariffComponents, UnpricedPeriod
from meterpay.tariffs.holidays import china_day_type
from meterpay.tariffs.rules import Priced, PriceLine, TierState, Usage, price_usage

CHARGE_COLUMNS = (
    "account_id",
    "meter_id",
    "reading_id",
    "transfer_key",
    "period_start",
    "period_end",
    "quantity",
    "amount_fen",
    "lines",
    "created_at",
)


ENERGY = "energy"


@dataclass(frozen=True, slots=True)
class Billable:
    """A valid reading's consumption over [start, end), for the meter's account."""

    reading_id: int
    meter_id: int
    account_id: int
    start: datetime
    end: datetime
    quantity: Decimal
    registers: Mapping[str, Decimal] | None = None
    """Per-period consumption from the meter's TOU registers (尖峰平谷), if it has them."""


def charge(
    conn: Connection,
    billables: Sequence[Billable],
    schedules: dict[int, list[PriceVersion]],
    targets: Mapping[int, BillingTarget],
    carries: dict[int, Decimal],
    *,
    tiers: Mapping[int, TierState | None],
    actor: str,
    now: datetime,
) -> dict[int, int]:
    """Charge each billable to its meter's target account at its tariff
    (``schedules`` by tariff id), carrying sub-fen remainders per meter in
    ``carries`` (updated in place); return the amount in fen by reading id.

    ``tiers`` holds each account's tier position as read under its row lock; the
    new positions are written back with a compare-and-set, a guard that never
    fails while the caller holds those locks (``TierStateMoved`` if it does).
    Readings are priced in time order, so tiers accumulate as consumption did.
    One charge is rounded once; its amount is shared over the revenue streams
    (energy, each surcharge) by largest remainders, one transfer per stream.
    """
    states = _tier_states(billables, schedules, targets, tiers)
    amounts: dict[int, int] = {}
    charge_rows: list[dict[str, object]] = []
    postings: list[tuple[Posting, str | None]] = []
    for b in sorted(billables, key=lambda b: (b.end, b.meter_id)):
        target = targets[b.meter_id]
        lines = _price(b, target, schedules[target.tariff_id], states)
        money, carries[b.meter_id] = charge_with_carry(lines, carries[b.meter_id])
        amounts[b.reading_id] = money.fen
        streams = _streams(money.fen, lines)
        charge_rows.append(_charge_row(b, lines, money.fen, streams, now))
        postings.extend(_postings(b, target, streams))
    copy_rows(conn, charges, CHARGE_COLUMNS, charge_rows)
    # Ledger rows before account rows: the product's lock order (see control.repository).
    ledger.post_fresh(conn, _resolve_revenue(conn, postings), actor=actor, now=now)
    if states:
        save_tier_states(conn, tiers, states)
    return amounts


def lock_posting_rows(
    conn: Connection,
    billables: Sequence[Billable],
    schedules: Mapping[int, list[PriceVersion]],
    targets: Mapping[int, BillingTarget],
) -> None:
    """Row-lock every ledger account the charges of ``billables`` may post to — the
    wallets, the energy revenue and each surcharge's revenue under any version of the
    tariffs — in id order, before the caller locks the accounts' rows and prices.

    The ledger's rows come before the accounts' in the product's lock order (a top-up
    moves the wallet, then settles the account); taking them all here, at once, keeps
    the posting from adding any row out of order later."""
    billed = {targets[b.meter_id] for b in billables}
    ids = {t.wallet_id for t in billed} | {t.revenue_id for t in billed}
    codes = {
        _surcharge_code(target, surcharge.component)
        for target in billed
        for version in schedules.get(target.tariff_id, ())
        if version.components is not None
        for surcharge in version.components.surcharges
    }
    ledger.lock_ledger_accounts(conn, ids, codes)


def _tier_states(
    billables: Sequence[Billable],
    schedules: dict[int, list[PriceVersion]],
    targets: Mapping[int, BillingTarget],
    tiers: Mapping[int, TierState | None],
) -> dict[int, TierState | None]:
    """The starting positions of the accounts whose tariffs have tiers."""
    tiered_tariffs = {
        tariff_id
        for tariff_id, versions in schedules.items()
        if any(v.components is not None and v.components.tiers is not None for v in versions)
    }
    return {
        b.account_id: tiers.get(b.account_id)
        for b in billables
        if targets[b.meter_id].tariff_id in tiered_tariffs
    }


def _price(
    b: Billable,
    target: BillingTarget,
    versions: list[PriceVersion],
    states: dict[int, TierState | None],
) -> list[PricedLine]:
    pieces = pieces_by_version(b.quantity, b.start, b.end, versions)
    lines: list[PricedLine] = []
    for version, quantity, start, end in pieces:
        if version.is_flat:  # the common case, without building a Usage
            price = version.unit_price
            lines.append(
                PricedLine(
                    version.version_id,
                    PriceLine(ENERGY, None, None, quantity, price, quantity * price),
                )
            )
            continue
        assert version.components is not None  # noqa: S101  is_flat covers None
        registers = b.registers if len(pieces) == 1 else None
        priced = _priced(
            version.components,
            (quantity, start, end),
            registers,
            target.time_zone,
            states.get(b.account_id),
        )
        if version.components.tiers is not None:
            states[b.account_id] = priced.state
        lines.extend(PricedLine(version.version_id, line) for line in priced.lines)
    return lines


def _priced(
    components: TariffComponents,
    piece: tuple[Decimal, datetime, datetime],
    registers: Mapping[str, Decimal] | None,
    time_zone: str,
    state: TierState | None,
) -> Priced:
    """Price by the TOU registers when the tariff prices their periods, else by time."""
    quantity, start, end = piece
    if registers and components.time_of_use is not None:
        periods = {Period(name): value for name, value in registers.items()}
        try:
            return price_usage(
                components,
                Usage(quantity, start, end, registers=periods, time_zone=time_zone),
                state,
                day_type=china_day_type,
            )
        except UnpricedPeriod:
            pass  # the meter reports a period this tariff doesn't price: split by time
    return price_usage(
        components,
        Usage.measured(quantity, start, end, time_zone),
        state,
        day_type=china_day_type,
    )


def _streams(fen: int, lines: list[PricedLine]) -> dict[str, int]:
    """The charge's fen per revenue stream (component), adding up exactly to ``fen``."""
    exact: dict[str, Decimal] = {}
    for line in lines:
        exact[line.component] = exact.get(line.component, Decimal(0)) + line.exact_amount
    if len(exact) == 1:
        return {next(iter(exact)): fen}
    return largest_remainders(fen, exact) if fen > 0 else dict.fromkeys(exact, 0)


def _postings(
    b: Billable, target: BillingTarget, streams: dict[str, int]
) -> list[tuple[Posting, str | None]]:
    """One transfer per revenue stream; a surcharge's revenue account is named by code."""
    memo = f"{b.quantity} @ meter {b.meter_id}"
    found: list[tuple[Posting, str | None]] = []
    for component, fen in streams.items():
        if fen <= 0:
            continue
        if component == ENERGY:
            transfer = Transfer(
                f"charge:reading:{b.reading_id}",
                target.wallet_id,
                target.revenue_id,
                fen,
                TransferKind.CHARGE,
            )
            found.append((Posting(transfer, b.account_id, memo), None))
            continue
        code = _surcharge_code(target, component)
        transfer = Transfer(
            f"charge:reading:{b.reading_id}:{component}",
            target.wallet_id,
            target.revenue_id,
            fen,
            TransferKind.CHARGE,
        )
        found.append((Posting(transfer, b.account_id, f"{memo} [{component}]"), code))
    return found


def _surcharge_code(target: BillingTarget, component: str) -> str:
    """The revenue ledger account of a surcharge (``surcharge:<code>``) at the target's site."""
    return f"{target.revenue_code}:{component.removeprefix('surcharge:')}"


def _resolve_revenue(conn: Connection, postings: list[tuple[Posting, str | None]]) -> list[Posting]:
    """Credit each surcharge to its own revenue account (looked up once per batch)."""
    codes = {code for _, code in postings if code is not None}
    ids = ledger.ledger_account_ids(conn, codes) if codes else {}
    return [
        p if code is None else replace(p, transfer=replace(p.transfer, credit_account_id=ids[code]))
        for p, code in postings
    ]


class PricedLine(NamedTuple):
    version_id: int
    line: PriceLine

    @property
    def component(self) -> str:
        return self.line.component

    @property
    def exact_amount(self) -> Decimal:
        return self.line.exact_amount


def _charge_row(
    b: Billable, lines: list[PricedLine], fen: int, streams: dict[str, int], now: datetime
) -> dict[str, object]:
    return {
        "account_id": b.account_id,
        "meter_id": b.meter_id,
        "reading_id": b.reading_id,
        "transfer_key": f"charge:reading:{b.reading_id}" if fen > 0 else None,
        "period_start": b.start,
        "period_end": b.end,
        "quantity": b.quantity,
        "amount_fen": fen,
        "created_at": now,
        "lines": [_line_json(p) for p in lines]
        + (
            [{"streams": {k: str(Money(v)) for k, v in streams.items()}}]
            if len(streams) > 1
            else []
        ),
    }


def _line_json(p: PricedLine) -> dict[str, object]:
    line = p.line
    return {
        "version_id": p.version_id,
        "component": line.component,
        "tier": line.tier,
        "period": line.period.value if line.period is not None else None,
        "quantity": str(line.quantity),
        "unit_price": str(line.unit_price),
        "exact_amount": str(line.exact_amount),
    }
