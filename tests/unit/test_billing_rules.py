"""Flat versioned pricing: splitting at tariff changes, and carrying the sub-fen remainder."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterpay.billing.rules import (
    ChargeLine,
    NoTariffInForce,
    PriceVersion,
    charge_with_carry,
    split_by_versions,
)
from meterpay.kernel.errors import DomainError
from meterpay.kernel.money import InvalidAmount, Money, round_to_fen
from meterpay.kernel.quantity import InvalidQuantity

T0 = datetime(2025, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
JAN_PRICE = PriceVersion(1, T0, Decimal("0.4883"))


def d(text: str) -> Decimal:
    return Decimal(text)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def line(version_id: int, quantity: str, price: str) -> ChargeLine:
    return ChargeLine(version_id, d(quantity), d(price), d(quantity) * d(price))


# --- the reference figure ----------------------------------------------------------------------


def test_reference_figure_2880_kwh_at_0_4883_bills_1406_30_and_carries_0_004() -> None:
    lines = split_by_versions(d("2880"), at(0), at(720), [JAN_PRICE])
    assert lines == [ChargeLine(1, d("2880"), d("0.4883"), d("1406.304"))]
    amount, carry = charge_with_carry(lines, Decimal(0))
    assert amount == Money(140630)
    assert str(amount) == "1406.30"
    assert carry == d("0.004")


# --- splitting by versions ---------------------------------------------------------------------


def test_interval_inside_one_version_is_one_line() -> None:
    assert split_by_versions(d("12.5"), at(1), at(2), [JAN_PRICE]) == [
        ChargeLine(1, d("12.5"), d("0.4883"), d("6.10375"))
    ]


def test_interval_spanning_a_change_is_split_pro_rata_by_time() -> None:
    versions = [JAN_PRICE, PriceVersion(2, at(11), d("0.6"))]
    lines = split_by_versions(d("100"), at(10), at(14), versions)
    assert lines == [
        ChargeLine(1, d("25.0000"), d("0.4883"), d("12.20750000")),
        ChargeLine(2, d("75.0000"), d("0.6000"), d("45.00000000")),
    ]


def test_interval_spanning_two_changes_gives_three_lines_in_time_order() -> None:
    versions = [
        PriceVersion(3, at(20), d("0.7")),
        JAN_PRICE,
        PriceVersion(2, at(10), d("0.6")),
    ]
    lines = split_by_versions(d("1"), at(0), at(30), versions)
    assert [(piece.version_id, piece.quantity) for piece in lines] == [
        (1, d("0.3334")),
        (2, d("0.3333")),
        (3, d("0.3333")),
    ]


def test_pieces_add_up_exactly_even_when_shares_do_not_divide() -> None:
    versions = [JAN_PRICE, PriceVersion(2, at(1), d("1")), PriceVersion(3, at(2), d("2"))]
    lines = split_by_versions(d("0.0002"), at(0), at(3), versions)
    assert sum(piece.quantity for piece in lines) == d("0.0002")
    assert all(piece.quantity >= 0 for piece in lines)


def test_a_split_never_moves_consumption_to_a_cheaper_version_as_it_grows() -> None:
    """Giving the remainder to the last piece would price 0.0002 below 0.0001 here."""
    versions = [
        PriceVersion(1, at(0), d("0.1")),
        PriceVersion(2, at(1), d("0.1")),
        PriceVersion(3, at(2), d("0.9")),
    ]
    smaller = split_by_versions(d("0.0001"), at(0), at(3), versions)
    larger = split_by_versions(d("0.0002"), at(0), at(3), versions)
    assert [piece.quantity for piece in smaller] == [d("0.0001"), d("0"), d("0")]
    assert [piece.quantity for piece in larger] == [d("0.0001"), d("0.0001"), d("0")]
    assert sum(p.exact_amount for p in smaller) < sum(p.exact_amount for p in larger)


def test_the_version_in_force_at_start_is_the_latest_that_began_by_then() -> None:
    versions = [JAN_PRICE, PriceVersion(2, at(5), d("0.6")), PriceVersion(3, at(50), d("0.9"))]
    lines = split_by_versions(d("3"), at(6), at(7), versions)
    assert [piece.version_id for piece in lines] == [2]


def test_a_version_starting_exactly_at_start_applies_and_one_starting_at_end_does_not() -> None:
    versions = [JAN_PRICE, PriceVersion(2, at(2), d("0.6")), PriceVersion(3, at(3), d("0.9"))]
    lines = split_by_versions(d("3"), at(2), at(3), versions)
    assert [piece.version_id for piece in lines] == [2]


def test_zero_length_interval_uses_the_version_in_force_at_its_end() -> None:
    versions = [JAN_PRICE, PriceVersion(2, at(4), d("0.6"))]
    assert split_by_versions(d("1.5"), at(4), at(4), versions) == [
        ChargeLine(2, d("1.5"), d("0.6"), d("0.9"))
    ]


def test_zero_consumption_still_names_the_versions_in_force() -> None:
    versions = [JAN_PRICE, PriceVersion(2, at(1), d("0.6"))]
    lines = split_by_versions(d("0"), at(0), at(2), versions)
    assert [(piece.version_id, piece.exact_amount) for piece in lines] == [(1, 0), (2, 0)]


def test_consumption_before_the_first_version_has_no_tariff_in_force() -> None:
    with pytest.raises(NoTariffInForce) as raised:
        split_by_versions(d("10"), at(-2), at(2), [JAN_PRICE])
    assert raised.value.code == "no_tariff_in_force"
    assert isinstance(raised.value, DomainError)


def test_consumption_without_any_version_has_no_tariff_in_force() -> None:
    with pytest.raises(NoTariffInForce):
        split_by_versions(d("10"), at(0), at(2), [])


def test_interval_ending_before_it_starts_is_refused() -> None:
    with pytest.raises(ValueError, match="before it starts"):
        split_by_versions(d("1"), at(2), at(1), [JAN_PRICE])


@pytest.mark.parametrize("quantity", [d("-1"), d("0.00001")])
def test_negative_or_too_precise_consumption_is_refused(quantity: Decimal) -> None:
    with pytest.raises(InvalidQuantity):
        split_by_versions(quantity, at(0), at(1), [JAN_PRICE])


def test_two_versions_taking_effect_at_the_same_moment_are_refused() -> None:
    with pytest.raises(ValueError, match="both take effect"):
        split_by_versions(d("1"), at(0), at(1), [JAN_PRICE, PriceVersion(2, T0, d("1"))])


def test_naive_interval_bounds_are_refused() -> None:
    naive = datetime(2025, 1, 2)  # noqa: DTZ001  the point of the test
    with pytest.raises(ValueError, match="time zone"):
        split_by_versions(d("1"), naive, naive, [JAN_PRICE])


def test_price_version_keeps_four_decimals_and_refuses_more() -> None:
    assert str(PriceVersion(1, T0, d("0.5")).unit_price) == "0.5000"
    with pytest.raises(InvalidAmount):
        PriceVersion(1, T0, d("0.48835"))
    with pytest.raises(ValueError, match="time zone"):
        PriceVersion(1, datetime(2025, 1, 1), d("0.5"))  # noqa: DTZ001  the point of the test


# --- the rounding carry ------------------------------------------------------------------------


def test_sub_fen_remainders_are_carried_instead_of_lost() -> None:
    carry = Decimal(0)
    charges = []
    for _ in range(3):
        amount, carry = charge_with_carry([line(1, "0.01", "0.4")], carry)
        charges.append(amount)
    assert charges == [Money(0), Money(1), Money(0)]
    assert carry == d("0.002")
    assert sum(charges, Money.zero()) == round_to_fen(d("0.012"))


def test_lines_of_one_reading_are_rounded_together() -> None:
    amount, carry = charge_with_carry([line(1, "1", "0.003"), line(2, "1", "0.003")], d("0"))
    assert amount == Money(1)
    assert carry == d("-0.004")


def test_zero_consumption_after_a_half_fen_carry_charges_nothing() -> None:
    amount, carry = charge_with_carry([line(1, "0.015", "1")], Decimal(0))
    assert (amount, carry) == (Money(2), d("-0.005"))
    assert charge_with_carry([line(1, "0", "1")], carry) == (Money(0), d("-0.005"))


def test_no_lines_charge_only_what_the_carry_rounds_to() -> None:
    assert charge_with_carry([], d("0.0049")) == (Money(0), d("0.0049"))


@pytest.mark.parametrize("carry", [d("0.005"), d("-0.0051"), d("1")])
def test_a_carry_outside_half_a_fen_is_refused(carry: Decimal) -> None:
    with pytest.raises(ValueError, match="carry"):
        charge_with_carry([], carry)


# --- properties --------------------------------------------------------------------------------

# small quantities too: a split's rounding shows in the last 0.0001
quantities = st.one_of(
    st.decimals(min_value=0, max_value=d("0.0100"), places=4),
    st.decimals(min_value=0, max_value=10**7, places=4),
)
prices = st.decimals(min_value=0, max_value=100, places=4)


@st.composite
def schedules(draw: st.DrawFn, span_minutes: int = 60 * 24 * 60) -> list[PriceVersion]:
    """One to five versions at distinct minutes, the first in force from T0."""
    minutes = draw(st.lists(st.integers(1, span_minutes), unique=True, max_size=4))
    starts = [0, *sorted(minutes)]
    return [
        PriceVersion(index + 1, T0 + timedelta(minutes=start), draw(prices))
        for index, start in enumerate(starts)
    ]


@st.composite
def intervals(draw: st.DrawFn, span_minutes: int = 60 * 24 * 70) -> tuple[datetime, datetime]:
    start = draw(st.integers(0, span_minutes))
    length = draw(st.integers(0, span_minutes))
    seconds = draw(st.integers(0, 59))
    return T0 + timedelta(minutes=start), T0 + timedelta(minutes=start + length, seconds=seconds)


@given(quantity=quantities, interval=intervals(), versions=schedules())
def test_split_pieces_add_up_exactly_and_stay_close_to_their_pro_rata_share(
    quantity: Decimal, interval: tuple[datetime, datetime], versions: list[PriceVersion]
) -> None:
    start, end = interval
    lines = split_by_versions(quantity, start, end, versions)
    assert sum(piece.quantity for piece in lines) == quantity
    for piece in lines:
        assert piece.quantity >= 0
        assert piece.quantity == piece.quantity.quantize(d("0.0001"))
        assert piece.exact_amount == piece.quantity * piece.unit_price
    shares = _pro_rata_shares(quantity, start, end, versions)
    for piece, share in zip(lines, shares, strict=True):
        assert abs(piece.quantity - share) < d("0.0001") * len(lines)


def _pro_rata_shares(
    quantity: Decimal, start: datetime, end: datetime, versions: list[PriceVersion]
) -> list[Decimal]:
    """The unrounded share of each version in force, by the overlap of its validity."""
    if start == end:
        return [quantity]
    never = datetime.max.replace(tzinfo=UTC)
    ends = [version.effective_from for version in versions[1:]] + [never]
    overlaps = [
        max(min(end, until) - max(start, version.effective_from), timedelta(0))
        for version, until in zip(versions, ends, strict=True)
    ]
    whole = _microseconds(end - start)
    return [quantity * _microseconds(overlap) / whole for overlap in overlaps if overlap]


def _microseconds(span: timedelta) -> Decimal:
    return Decimal(span // timedelta(microseconds=1))


@given(
    smaller=quantities,
    extra=st.one_of(st.sampled_from([d("0.0001"), d("0.0002")]), quantities),
    # versions minutes apart, so that small intervals often span several
    interval=intervals(span_minutes=8),
    versions=schedules(span_minutes=8),
)
def test_more_consumption_never_costs_less(
    smaller: Decimal,
    extra: Decimal,
    interval: tuple[datetime, datetime],
    versions: list[PriceVersion],
) -> None:
    start, end = interval
    less = split_by_versions(smaller, start, end, versions)
    more = split_by_versions(smaller + extra, start, end, versions)
    for fewer_piece, more_piece in zip(less, more, strict=True):
        assert fewer_piece.quantity <= more_piece.quantity
    assert sum(p.exact_amount for p in less) <= sum(p.exact_amount for p in more)
    assert charge_with_carry(less, Decimal(0))[0] <= charge_with_carry(more, Decimal(0))[0]


@given(st.lists(st.tuples(quantities, prices), max_size=60))
def test_a_run_of_charges_adds_up_to_the_rounded_price_of_the_run(
    run: list[tuple[Decimal, Decimal]],
) -> None:
    carry, charged, exact_total = Decimal(0), Money.zero(), Decimal(0)
    for quantity, price in run:
        lines = [ChargeLine(1, quantity, price, quantity * price)]
        amount, carry = charge_with_carry(lines, carry)
        assert d("-0.005") <= carry < d("0.005")
        charged += amount
        exact_total += quantity * price
    assert charged == round_to_fen(exact_total)


@given(
    versions=schedules(),
    readings=st.lists(
        st.tuples(st.integers(0, 60 * 24 * 3), st.integers(0, 59), quantities), max_size=40
    ),
)
def test_charges_across_tariff_changes_add_up_to_the_rounded_price_of_all_lines(
    versions: list[PriceVersion], readings: list[tuple[int, int, Decimal]]
) -> None:
    """The rounding carry never leaks, whatever the readings and version changes."""
    moment, carry, charged, exact_total = T0, Decimal(0), Money.zero(), Decimal(0)
    for minutes, seconds, quantity in readings:
        following = moment + timedelta(minutes=minutes, seconds=seconds)
        lines = split_by_versions(quantity, moment, following, versions)
        amount, carry = charge_with_carry(lines, carry)
        assert amount >= Money.zero()
        charged += amount
        exact_total += sum(piece.exact_amount for piece in lines)
        moment = following
    assert charged == round_to_fen(exact_total)


@given(price=prices, quantities_run=st.lists(quantities, max_size=40))
def test_under_one_price_the_run_bills_the_rounded_price_of_its_total_consumption(
    price: Decimal, quantities_run: list[Decimal]
) -> None:
    version = PriceVersion(1, T0, price)
    carry, charged = Decimal(0), Money.zero()
    for index, quantity in enumerate(quantities_run):
        lines = split_by_versions(quantity, at(index), at(index + 1), [version])
        amount, carry = charge_with_carry(lines, carry)
        charged += amount
    assert charged == round_to_fen(sum(quantities_run, Decimal(0)) * version.unit_price)
