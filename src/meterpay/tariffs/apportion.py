"""Exact sharing of whole units: quantities in 0.0001 steps, money in fen.

Invariants:
- shares are whole units, never negative, and add up exactly to the whole;
- ``divide_units`` (D'Hondt, for quantities) gives every weight at least the
  floor of its pro-rata share and never takes a unit away from anyone when
  the whole grows, so more consumption never lands in a cheaper piece;
- ``split_table`` fills a table whose row sums and column sums are both
  given (period volumes by tier pieces), each column shared pro rata to what
  is left of every row, so no cell is negative and no row is over-drawn;
- ``largest_remainders`` (Hamilton, for money) keeps every share within one
  fen of its exact pro-rata value.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from decimal import Decimal
from fractions import Fraction
from typing import Final, TypeVar

from meterpay.kernel.quantity import QUANTITY_QUANTUM

K = TypeVar("K", bound=Hashable)

UNITS_PER_QUANTITY: Final = 10_000


def to_units(quantity: Decimal) -> int:
    """A quantity with at most 4 decimals as a whole number of 0.0001 steps."""
    return int(quantity * UNITS_PER_QUANTITY)


def from_units(units: int) -> Decimal:
    return Decimal(units) * QUANTITY_QUANTUM


def divide_units(units: int, weights: Sequence[int]) -> list[int]:
    """Share ``units`` pro rata to non-negative ``weights`` (D'Hondt), exactly.

    Everyone first gets the floor of their share; each left-over unit then
    goes to the smallest ``(share + 1) / weight`` (the earliest on ties).
    That picks the same units as handing them out one by one from zero, so a
    larger whole only ever adds units. Zero weights get nothing.
    """
    total = sum(weights)
    if total <= 0 or min(weights) < 0:
        raise ValueError(f"cannot share {units} units by weights {list(weights)}")
    if len(weights) == 1:  # the usual case: one period, one cycle, one schedule
        return [units]
    shares = [units * weight // total for weight in weights]
    for _ in range(units - sum(shares)):
        best = -1
        for index, weight in enumerate(weights):
            if weight and (
                best < 0 or (shares[index] + 1) * weights[best] < (shares[best] + 1) * weight
            ):
                best = index
        shares[best] += 1
    return shares


def split_table(rows: Sequence[int], columns: Sequence[int]) -> list[list[int]]:
    """Cells ``[row][column]`` with the given row and column sums, close to pro rata.

    Each column but the last is shared over what remains of the rows; the
    last column takes the rest. A share of ``c`` over remains ``r`` (with
    ``c <= sum(r)``) never exceeds any remain, so every cell is at least 0.
    """
    if sum(rows) != sum(columns):
        raise ValueError(f"rows add up to {sum(rows)} but columns to {sum(columns)}")
    if len(rows) == 1:
        return [list(columns)]
    remains = list(rows)
    cells = [[0] * len(columns) for _ in rows]
    for column, amount in enumerate(columns[:-1]):
        if amount == 0:
            continue
        for row, share in enumerate(divide_units(amount, remains)):
            cells[row][column] = share
            remains[row] -= share
    for row, rest in enumerate(remains):
        cells[row][-1] = rest
    return cells


def largest_remainders(whole: int, weights: Mapping[K, Decimal]) -> dict[K, int]:
    """Share ``whole`` (fen) pro rata to ``weights`` by largest remainders (Hamilton).

    Everyone gets the floor of their exact share; the left-over fen go to the
    largest fractional parts (in the mapping's order on ties). All weights
    zero shares a zero whole as zeros and refuses anything else.
    """
    if whole < 0 or any(weight < 0 for weight in weights.values()):
        raise ValueError("the whole and every weight must be at least 0")
    total = sum(weights.values(), Decimal(0))
    if total == 0:
        if whole:
            raise ValueError(f"cannot share {whole} by weights that add up to 0")
        return dict.fromkeys(weights, 0)
    quotas = {
        key: Fraction(whole) * Fraction(weight) / Fraction(total) for key, weight in weights.items()
    }
    shares = {key: int(quota) for key, quota in quotas.items()}
    order = sorted(quotas, key=lambda key: quotas[key] - shares[key], reverse=True)
    for key in order[: whole - sum(shares.values())]:
        shares[key] += 1
    return shares
