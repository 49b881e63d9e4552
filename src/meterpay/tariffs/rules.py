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
  time-zone or calendar work at all; other versions keep the cut of each
  interval they priced (bounded), as it depends only on the version, the
  interval, the zone and the day types, which are pure.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence, Set
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

    The interval's cut into cycle pieces and schedule windows depends only on
    the version, the interval, the zone and ``day_type`` (a pure function of
    the date), so it is kept per version for the next usage of the same
    interval (the ingest path prices many accounts over the same 15 minutes).
    """
    registers = usage.registers
    difference = None if registers is None else usage.quantity - sum(registers.values())
    if components.is_flat:
        return Priced(_flat_lines(components, usage.quantity), state, difference)
    memo = _memo_of(components)
    layout = memo.layout(usage, day_type)
    total = to_units(usage.quantity)
    single = layout.single
    if single is not None and (
        not registers or components.time_of_use is None or not any(registers.values())
    ):  # all the time in one cell, the units with it
        cells: dict[Cell, int] = {single: total} if total else {}
    else:
        cells = _cells(_period_volumes(components, registers, total, layout), layout)
    tiers = components.tiers
    if tiers is not None and len(layout.pieces) == 1 and len(cells) <= 1 and adjustment is None:
        within = _within_one_tier(
            memo, tiers, layout.pieces[0], cells, total=total, usage=usage, state=state
        )
        if within is not None:  # the usual case: one cycle, one cell, one tier
            one_tier, moved = within
            if components.surcharges:
                one_tier += _surcharge_lines(components, usage.quantity)
            return Priced(one_tier, moved, difference)
    if tiers is None:
        energy: dict[Slot, int] = {
            (None, sched, period): u for (_, sched, period), u in cells.items()
        }
        new_state = state
    else:
        energy, new_state = _tiered(tiers, layout.pieces, cells, state, adjustment)
    lines = _energy_lines(memo, energy)
    if components.surcharges:
        lines += _surcharge_lines(components, usage.quantity)
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
Spot = tuple[int, int | None]  # (cycle piece, schedule)
Spread = tuple[tuple[Spot, ...], tuple[int, ...]]  # spots and their microseconds
LayoutKey = tuple[object, ...]

MAX_VERSIONS: Final = 64  # versions whose layouts are kept (cleared all at once beyond)
MAX_LAYOUTS: Final = 1024  # intervals kept per version (idem)


class _Layout(NamedTuple):
    """An interval cut for one version: what pricing needs besides the quantities.

    ``single``: the one (piece, schedule, period) cell all the interval's
    time is in, if so (always for tiers without time-of-use inside one
    cycle, which need no weights). ``periods`` and ``period_micros`` are the
    periods the schedules show and their time; ``spreads`` each one's
    (piece, schedule) spots and their time; ``everywhere`` the same whatever
    the period.
    """

    pieces: tuple[CyclePiece, ...]
    single: Cell | None
    periods: tuple[Period | None, ...]
    period_micros: tuple[int, ...]
    spreads: dict[Period | None, Spread]
    everywhere: Spread


class _Memo:
    """What one version keeps between calls: interval layouts and unit prices."""

    __slots__ = ("components", "layouts", "prices")

    def __init__(self, components: TariffComponents) -> None:
        self.components = components  # held, so its id is not reused while kept
        self.layouts: dict[LayoutKey, _Layout] = {}
        self.prices: dict[Slot, Decimal] = {}

    def layout(self, usage: Usage, day_type: DayTypeSource) -> _Layout:
        start, end = usage.start, usage.end
        if isinstance(day_type, Set):  # a calendar built for this call: nothing to keep
            return _layout(self.components, usage, holiday_calendar(day_type))
        # same tzinfo, fold and wall time: the same instant (== alone ignores fold)
        zone, fold = usage.time_zone, (start.tzinfo, start.fold, end.tzinfo, end.fold)
        key: LayoutKey = (start, end, zone, day_type, *fold)
        found = self.layouts.get(key)
        if found is None:
            if len(self.layouts) >= MAX_LAYOUTS:
                self.layouts.clear()
            found = self.layouts[key] = _layout(self.components, usage, day_type)
        return found

    def unit_price(self, tier: int | None, schedule: int | None, period: Period | None) -> Decimal:
        key = (tier, schedule, period)
        price = self.prices.get(key)
        if price is None:
            price = self.components.unit_price(tier, period, schedule or 0)
            self.prices[key] = price
        return price


# Keyed by identity, not by value: hashing a frozen version walks all its
# fields (over a microsecond), while the ingest path hands the same object
# to every reading of a batch. An equal copy only gets its own memo.
_MEMOS: dict[int, _Memo] = {}


def _memo_of(components: TariffComponents) -> _Memo:
    memo = _MEMOS.get(id(components))
    if memo is None or memo.components is not components:
        if len(_MEMOS) >= MAX_VERSIONS:
            _MEMOS.clear()
        memo = _MEMOS[id(components)] = _Memo(components)
    return memo


def _layout(components: TariffComponents, usage: Usage, day_type_of: DayTypeOf) -> _Layout:
    zone = usage.zone
    start, end = instants(usage.start, usage.end)
    tiers = components.tiers
    if tiers is None:
        pieces = [CyclePiece(date.min, start, end)]
    else:
        pieces = cycle_pieces(tiers, start, end, zone)
    if len(pieces) == 1 and components.time_of_use is None:
        return _Layout(tuple(pieces), (0, None, None), (), (), {}, ((), ()))
    weights = _time_weights(components, pieces, zone, day_type_of)
    spreads = {period: (tuple(spots), tuple(spots.values())) for period, spots in weights.items()}
    everywhere = _everywhere(weights)
    single: Cell | None = None
    if len(everywhere) == 1 and len(weights) == 1:
        [(period, ((piece, schedule),))] = [(p, keys) for p, (keys, _) in spreads.items()]
        single = (piece, schedule, period)
    return _Layout(
        tuple(pieces),
        single,
        tuple(weights),
        tuple(sum(spots.values()) for spots in weights.values()),
        spreads,
        (tuple(everywhere), tuple(everywhere.values())),
    )


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
    components: TariffComponents,
    registers: Mapping[Period, Decimal] | None,
    total: int,
    layout: _Layout,
) -> dict[Period | None, int]:
    """The usage's units per period: by registers when they say anything, else by time."""
    if components.time_of_use is None:
        return {None: total}
    if registers and any(registers.values()):
        periods: Sequence[Period | None] = list(registers)
        shares = divide_units(total, [to_units(registers[p]) for p in registers])
    else:
        periods = layout.periods
        shares = divide_units(total, layout.period_micros)
    return dict(zip(periods, shares, strict=True))


def _cells(volumes: Mapping[Period | None, int], layout: _Layout) -> dict[Cell, int]:
    """Each period's units spread over its (cycle piece, schedule) pro rata by its time.

    A period the schedules never show in the interval (registers only) is
    spread by the interval's time as a whole.
    """
    cells: dict[Cell, int] = {}
    spreads = layout.spreads
    for period, units in volumes.items():
        if not units:
            continue
        keys, micros = spreads.get(period) or layout.everywhere
        if len(keys) == 1:
            piece, schedule = keys[0]
            cells[(piece, schedule, period)] = units
            continue
        for (piece, schedule), share in zip(keys, divide_units(units, micros), strict=True):
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
    pieces: Sequence[CyclePiece],
    cells: Mapping[Cell, int],
    state: TierState | None,
    adjustment: AccountTierAdjustment | None,
) -> tuple[dict[Slot, int], TierState]:
    """Cells re-keyed by (tier, schedule, period), each cycle's tiers from its opening use."""
    bounds = tiers.boundaries_in_units(adjustment)
    consumed = _opening(tiers, state, pieces[0].cycle_start)
    if len(pieces) == 1:  # the usual case: every cell is in the one cycle piece
        used = sum(cells.values())
        if not used:
            return {}, TierState.counted(pieces[0].cycle_start, consumed)
        # a step covers (previous bound, bound]: the steps of the first and last unit
        first, last = bisect_left(bounds, consumed + 1), bisect_left(bounds, consumed + used)
        if first == last:  # within one step: every cell whole in it
            energy: dict[Slot, int] = {
                (first + 1, schedule, period): units
                for (_, schedule, period), units in cells.items()
            }
        else:
            energy = {}
            _add_tiers(energy, list(cells.items()), split_by_tiers(consumed, used, bounds))
        return energy, TierState.counted(pieces[0].cycle_start, consumed + used)
    energy = defaultdict(int)
    for index in range(len(pieces)):
        if index:
            consumed = 0
        rows = [(key, units) for key, units in cells.items() if key[0] == index]
        used = sum(units for _, units in rows)
        if used:
            _add_tiers(energy, rows, split_by_tiers(consumed, used, bounds))
        consumed += used
    return energy, TierState.counted(pieces[-1].cycle_start, consumed)


def _within_one_tier(
    memo: _Memo,
    tiers: Tiers,
    piece: CyclePiece,
    cells: Mapping[Cell, int],
    *,
    total: int,
    usage: Usage,
    state: TierState | None,
) -> tuple[tuple[PriceLine, ...], TierState] | None:
    """What ``_tiered`` and ``_energy_lines`` give for at most one cell whose units all
    fall in one tier of one cycle, without their tables; None when they cross a step."""
    consumed = _opening(tiers, state, piece.cycle_start)
    if not cells:
        return (), TierState.counted(piece.cycle_start, consumed)
    [(cell, units)] = cells.items()
    bounds = tiers.boundary_units
    step = bisect_left(bounds, consumed + 1)  # a step covers (previous bound, bound]
    if bisect_left(bounds, consumed + units) != step:
        return None
    _, schedule, period = cell
    slot = (step + 1, schedule, period)
    price = memo.prices.get(slot) or memo.unit_price(*slot)
    quantity = usage.quantity if units == total else from_units(units)
    line = PriceLine(ENERGY, step + 1, period, quantity, price, quantity * price)
    return (line,), TierState.counted(piece.cycle_start, consumed + units)


def _add_tiers(energy: dict[Slot, int], rows: list[tuple[Cell, int]], steps: list[int]) -> None:
    """Add the cells of one cycle piece, split over the tiers ``steps``, to ``energy``."""
    nonzero = [tier for tier, units in enumerate(steps, start=1) if units]
    if len(nonzero) == 1:  # within one tier: every cell whole in it
        tier = nonzero[0]
        for (_, schedule, period), units in rows:
            slot = (tier, schedule, period)
            energy[slot] = energy.get(slot, 0) + units
        return
    table = split_table([units for _, units in rows], steps)
    for ((_, schedule, period), _), row in zip(rows, table, strict=True):
        for tier, units in enumerate(row, start=1):
            if units:
                slot = (tier, schedule, period)
                energy[slot] = energy.get(slot, 0) + units


def _energy_lines(memo: _Memo, energy: Mapping[Slot, int]) -> tuple[PriceLine, ...]:
    if len(energy) == 1:  # the usual case: one tier, one period
        [(slot, units)] = energy.items()
        tier, schedule, period = slot
        price = memo.prices.get(slot) or memo.unit_price(tier, schedule, period)
        quantity = from_units(units)
        return (PriceLine(ENERGY, tier, period, quantity, price, quantity * price),)
    merged: dict[tuple[int | None, Period | None, Decimal], int] = {}
    for (tier, schedule, period), units in energy.items():
        key = (tier, period, memo.unit_price(tier, schedule, period))
        merged[key] = merged.get(key, 0) + units
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
