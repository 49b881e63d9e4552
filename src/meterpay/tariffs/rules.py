"""Pricing consumption under one tariff version: pure, exact, explainable line by line.

``price_usage`` prices one reading interval from the account's ``TierState``
and returns the lines and the new state; ``quote`` prices a whole profile
without touching any account; ``fixed_fees_due`` lists the monthly fees.

Invariants:
- a line is a quantity (4 decimals) x a unit price (4 decimals) with its
  exact, unrounded amount; rounding to the fen happens once per charge with
  the carry of ``billing.rules.charge_with_carry`` (lines have
  ``exact_amount``), or once per quote;
- the energy lines of a usage add up exactly to its quantity; every
  surcharge line carries the whole quantity (surcharges are not tiered);
  lines of zero quantity are left out;
- tiers are cumulative within a cycle: consumption priced in one reading or
  in several, in order, lands in the same tiers (a step boundary inside an
  interval splits it exactly at the boundary), so the exact total is the
  same; an interval crossing a cycle start is split pro rata by time, and the
  new cycle starts from 0;
- time-of-use volumes come from the meter's registers when given: the
  registers decide the split between periods, the total decides the quantity
  (a difference is reported, not billed twice); otherwise from the interval's
  timestamps against the day schedule in the site's zone, pro rata by time;
- with tiers and time-of-use, tiers count the combined volume and a boundary
  splits every period's volume pro rata (浙江: 按高峰、低谷合计电量执行阶梯电价);
  as each cell costs period price + tier mark-up, the exact total does not
  depend on how that split rounds;
- a flat version (no tiers, no time-of-use) takes a short path that does no
  time-zone or calendar work at all.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Final, NamedTuple
from zoneinfo import ZoneInfo

from meterpay.kernel.money import Money, round_to_fen
from meterpay.tariffs.apportion import (
    divide_units,
    from_units,
    largest_remainders,
    split_table,
    to_units,
)
from meterpay.tariffs.components import AccountTierAdjustment, TariffComponents
from meterpay.tariffs.fees import FeeDue, fixed_fees_due
from meterpay.tariffs.resale import resale_warnings, share_bill
from meterpay.tariffs.tiers import Tiers, split_by_tiers
from meterpay.tariffs.timeline import (
    CyclePiece,
    cycle_pieces,
    instants,
    microseconds,
    window_durations,
)
from meterpay.tariffs.tou import PERIOD_ORDER, DayTypeOf, Period, holiday_calendar, weekday_day_type
from meterpay.tariffs.usage import InvalidUsage, TierState, Usage, UsageOutOfOrder

__all__ = [
    "ENERGY",
    "FeeDue",
    "InvalidUsage",
    "PriceLine",
    "Priced",
    "Quote",
    "TierState",
    "Usage",
    "UsageOutOfOrder",
    "fixed_fees_due",
    "merge_lines",
    "price_usage",
    "quote",
    "resale_warnings",
    "share_bill",
]

ENERGY: Final = "energy"

DayTypeSource = DayTypeOf | Set[date]  # a function of the date, or the rest days besides weekends
Cell = tuple[int, int | None, Period | None]  # (cycle piece, schedule, period)
Slot = tuple[int | None, int | None, Period | None]  # (tier, schedule, period)


class PriceLine(NamedTuple):
    """One line of a charge: ``component`` is ``"energy"`` or ``"surcharge:<code>"``.

    A named tuple rather than a frozen dataclass: it is built for every
    reading on the ingest path and costs less than half as much to make.
    """

    component: str
    tier: int | None
    period: Period | None
    quantity: Decimal
    unit_price: Decimal
    exact_amount: Decimal


class Priced(NamedTuple):
    """The lines of one usage and the tier state after it (a named tuple, as ``PriceLine``).

    ``state`` is ``None`` only for a version without tiers priced from no
    state. ``register_difference`` is quantity minus the sum of the registers,
    when registers were given: a meter whose registers disagree with its total.
    """

    lines: tuple[PriceLine, ...]
    state: TierState | None
    register_difference: Decimal | None = None

    @property
    def exact_total(self) -> Decimal:
        return sum((line.exact_amount for line in self.lines), Decimal(0))


def price_usage(
    components: TariffComponents,
    usage: Usage,
    state: TierState | None = None,
    *,
    adjustment: AccountTierAdjustment | None = None,
    day_type: DayTypeSource = weekday_day_type,
) -> Priced:
    """Price one usage from ``state``; see the module docstring for the rules.

    ``day_type`` is a function of the local date, or a set of holidays that
    rest besides weekends (rebuilt into a function per call: on the ingest
    path pass ``holiday_calendar(...)`` built once). Raises
    ``UsageOutOfOrder`` if the usage starts in a cycle before the state's,
    ``UnpricedPeriod`` if registers report a period without a price.
    """
    registers = usage.registers
    difference = None if registers is None else usage.quantity - sum(registers.values())
    if components.is_flat:
        return Priced(_flat_lines(components, usage.quantity), state, difference)
    day_type_of = holiday_calendar(day_type) if isinstance(day_type, Set) else day_type
    start, end = instants(usage.start, usage.end)
    tiers = components.tiers
    if tiers is None:
        pieces = [CyclePiece(date.min, start, end)]
    else:
        pieces = cycle_pieces(tiers, start, end, usage.zone)
    if len(pieces) == 1 and components.time_of_use is None:  # tiers only, within one cycle
        cells: dict[Cell, int] = {(0, None, None): to_units(usage.quantity)}
    else:
        weights = _time_weights(components, pieces, usage.zone, day_type_of)
        cells = _cells(_period_volumes(components, usage, weights), weights)
    if tiers is None:
        energy: dict[Slot, int] = {
            (None, sched, period): u for (_, sched, period), u in cells.items()
        }
        new_state = state
    else:
        energy, new_state = _tiered(tiers, pieces, cells, state, adjustment)
    lines = _energy_lines(components, energy) + _surcharge_lines(components, usage.quantity)
    return Priced(lines, new_state, difference)


def _flat_lines(components: TariffComponents, quantity: Decimal) -> tuple[PriceLine, ...]:
    if not quantity:
        return ()
    price = components.energy.unit_price
    energy = PriceLine(ENERGY, None, None, quantity, price, quantity * price)
    if not components.surcharges:
        return (energy,)
    return (energy, *_surcharge_lines(components, quantity))


def _surcharge_lines(components: TariffComponents, quantity: Decimal) -> tuple[PriceLine, ...]:
    if not quantity:
        return ()
    return tuple(
        PriceLine(s.component, None, None, quantity, s.unit_price, quantity * s.unit_price)
        for s in components.surcharges
    )


Weights = dict[Period | None, dict[tuple[int, int | None], int]]


def _time_weights(
    components: TariffComponents, pieces: list[CyclePiece], zone: ZoneInfo, day_type_of: DayTypeOf
) -> Weights:
    """Microseconds per period, then per (cycle piece, schedule)."""
    tou = components.time_of_use
    weights: Weights = defaultdict(dict)
    for index, piece in enumerate(pieces):
        if tou is None:
            weights[None][(index, None)] = microseconds(piece.start, piece.end)
            continue
        durations = window_durations(tou, piece.start, piece.end, zone, day_type_of)
        for (schedule, period), micros in durations.items():
            weights[period][(index, schedule)] = micros
    return weights


def _period_volumes(
    components: TariffComponents, usage: Usage, weights: Weights
) -> dict[Period | None, int]:
    """The usage's units per period: by registers when they say anything, else by time."""
    total = to_units(usage.quantity)
    registers = usage.registers
    if components.time_of_use is None:
        return {None: total}
    if registers and any(registers.values()):
        periods: list[Period | None] = list(registers)
        shares = divide_units(total, [to_units(registers[p]) for p in registers])
    else:
        periods = list(weights)
        shares = divide_units(total, [sum(weights[p].values()) for p in periods])
    return dict(zip(periods, shares, strict=True))


def _cells(volumes: Mapping[Period | None, int], weights: Weights) -> dict[Cell, int]:
    """Each period's units spread over its (cycle piece, schedule) pro rata by its time.

    A period the schedules never show in the interval (registers only) is
    spread by the interval's time as a whole.
    """
    cells: dict[Cell, int] = {}
    for period, units in volumes.items():
        if not units:
            continue
        spots = weights.get(period) or _everywhere(weights)
        keys = list(spots)
        for (piece, schedule), share in zip(
            keys, divide_units(units, [spots[key] for key in keys]), strict=True
        ):
            if share:
                cells[(piece, schedule, period)] = share
    return cells


def _everywhere(weights: Weights) -> dict[tuple[int, int | None], int]:
    """Microseconds per (cycle piece, schedule), whatever the period."""
    everywhere: dict[tuple[int, int | None], int] = defaultdict(int)
    for spots in weights.values():
        for spot, micros in spots.items():
            everywhere[spot] += micros
    return everywhere


def _opening(tiers: Tiers, state: TierState | None, first_cycle: date) -> int:
    """Units already used in ``first_cycle``, from the state."""
    if state is None or state.cycle_start < first_cycle:
        return 0
    if state.cycle_start == first_cycle:
        return to_units(state.consumed)
    if tiers.cycle_start_on(state.cycle_start) == state.cycle_start:
        raise UsageOutOfOrder(
            f"usage in the cycle from {first_cycle} is older than the state's cycle"
            f" from {state.cycle_start}",
            cycle_start=str(first_cycle),
            state_cycle_start=str(state.cycle_start),
        )
    return 0  # the cycle's definition changed between versions: count afresh


def _tiered(
    tiers: Tiers,
    pieces: list[CyclePiece],
    cells: Mapping[Cell, int],
    state: TierState | None,
    adjustment: AccountTierAdjustment | None,
) -> tuple[dict[Slot, int], TierState]:
    """Cells re-keyed by (tier, schedule, period), each cycle's tiers from its opening use."""
    bounds = tiers.boundaries_in_units(adjustment)
    consumed = _opening(tiers, state, pieces[0].cycle_start)
    energy: dict[Slot, int] = defaultdict(int)
    for index in range(len(pieces)):
        if index:
            consumed = 0
        rows = [(key, units) for key, units in cells.items() if key[0] == index]
        used = sum(units for _, units in rows)
        if used:
            steps = split_by_tiers(consumed, used, bounds)
            table = split_table([units for _, units in rows], steps)
            for ((_, schedule, period), _), row in zip(rows, table, strict=True):
                for tier, units in enumerate(row, start=1):
                    if units:
                        energy[(tier, schedule, period)] += units
        consumed += used
    return energy, TierState(pieces[-1].cycle_start, from_units(consumed))


def _energy_lines(
    components: TariffComponents, energy: Mapping[Slot, int]
) -> tuple[PriceLine, ...]:
    merged: dict[tuple[int | None, Period | None, Decimal], int] = defaultdict(int)
    for (tier, schedule, period), units in energy.items():
        price = components.unit_price(tier, period, schedule or 0)
        merged[(tier, period, price)] += units
    lines = []
    for tier, period, price in sorted(merged, key=_line_order):
        quantity = from_units(merged[(tier, period, price)])
        lines.append(PriceLine(ENERGY, tier, period, quantity, price, quantity * price))
    return tuple(lines)


def _line_order(key: tuple[int | None, Period | None, Decimal]) -> tuple[int, int, Decimal]:
    tier, period, price = key
    return (tier or 0, -1 if period is None else PERIOD_ORDER[period], price)


@dataclass(frozen=True, slots=True)
class Quote:
    """A profile priced from a starting state, rounded once to the fen.

    ``totals`` shares ``total`` over the components by largest remainders, so
    each revenue stream gets its own amount and they add up to ``total``.
    """

    priced: tuple[Priced, ...]
    lines: tuple[PriceLine, ...]
    exact_totals: dict[str, Decimal]
    totals: dict[str, Money]
    exact_total: Decimal
    total: Money
    state: TierState | None


def quote(
    components: TariffComponents,
    profile: Iterable[Usage],
    state: TierState | None = None,
    *,
    adjustment: AccountTierAdjustment | None = None,
    day_type: DayTypeSource = weekday_day_type,
) -> Quote:
    """Price ``profile`` in order from ``state`` without touching any account."""
    return quote_pieces(
        ((components, usage) for usage in profile), state, adjustment=adjustment, day_type=day_type
    )


def quote_pieces(
    pieces: Iterable[tuple[TariffComponents, Usage]],
    state: TierState | None = None,
    *,
    adjustment: AccountTierAdjustment | None = None,
    day_type: DayTypeSource = weekday_day_type,
) -> Quote:
    """``quote`` where each usage names its own components (a profile across
    tariff versions); the tier state runs on from one piece to the next."""
    priced = []
    for components, usage in pieces:
        result = price_usage(components, usage, state, adjustment=adjustment, day_type=day_type)
        priced.append(result)
        state = result.state if result.state is not None else state
    lines = merge_lines(line for result in priced for line in result.lines)
    exact_totals: dict[str, Decimal] = defaultdict(Decimal)
    for line in lines:
        exact_totals[line.component] += line.exact_amount
    exact_total = sum(exact_totals.values(), Decimal(0))
    total = round_to_fen(exact_total)
    totals = {key: Money(fen) for key, fen in largest_remainders(total.fen, exact_totals).items()}
    return Quote(tuple(priced), lines, dict(exact_totals), totals, exact_total, total, state)


def merge_lines(lines: Iterable[PriceLine]) -> tuple[PriceLine, ...]:
    """Lines of the same component, tier, period and price added together (for a bill).

    Components keep the order they first appear in; within one, lines go by
    tier, then period (尖峰平谷), then price.
    """
    rank: dict[str, int] = {}
    merged: dict[tuple[str, int | None, Period | None, Decimal], tuple[Decimal, Decimal]] = {}
    for line in lines:
        rank.setdefault(line.component, len(rank))
        key = (line.component, line.tier, line.period, line.unit_price)
        quantity, amount = merged.get(key, (Decimal(0), Decimal(0)))
        merged[key] = (quantity + line.quantity, amount + line.exact_amount)
    result = []
    for component, tier, period, price in sorted(
        merged, key=lambda key: (rank[key[0]], *_line_order(key[1:]))
    ):
        quantity, amount = merged[(component, tier, period, price)]
        result.append(PriceLine(component, tier, period, quantity, price, amount))
    return tuple(result)
