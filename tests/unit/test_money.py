"""Money and quantities: exact parsing, no floats, half-up rounding to the fen."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterpay.kernel.money import InvalidAmount, Money, parse_unit_price, round_to_fen
from meterpay.kernel.quantity import InvalidQuantity, Utility, parse_quantity


def test_yuan_text_parses_to_whole_fen() -> None:
    assert Money.from_yuan("12.34") == Money(1234)
    assert Money.from_yuan("12.3") == Money(1230)
    assert Money.from_yuan(7) == Money(700)
    assert Money.from_yuan(Decimal("-1.50")) == Money(-150)


@pytest.mark.parametrize("text", ["12.345", "0.001", "1.0001"])
def test_yuan_with_more_than_two_decimals_is_refused(text: str) -> None:
    with pytest.raises(InvalidAmount):
        Money.from_yuan(text)


@pytest.mark.parametrize("value", [1.5, 0.1, True])
def test_money_from_a_float_or_bool_is_refused(value: object) -> None:
    with pytest.raises(InvalidAmount):
        Money.from_yuan(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [1.0, "12", Decimal("1"), True])
def test_fen_must_be_a_plain_int(value: object) -> None:
    with pytest.raises(InvalidAmount):
        Money(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["abc", "", "NaN", "Infinity", "-Infinity"])
def test_money_text_that_is_not_a_finite_number_is_refused(text: str) -> None:
    with pytest.raises(InvalidAmount):
        Money.from_yuan(text)


@pytest.mark.parametrize(
    ("fen", "text"),
    [
        (0, "0.00"),
        (1, "0.01"),
        (1234, "12.34"),
        (-1, "-0.01"),
        (-5, "-0.05"),
        (-123456, "-1234.56"),
    ],
)
def test_money_prints_as_yuan_with_two_decimals_including_negatives(fen: int, text: str) -> None:
    assert str(Money(fen)) == text


def test_money_adds_subtracts_and_negates_in_fen() -> None:
    assert Money(150) + Money(51) == Money(201)
    assert Money(150) - Money(151) == Money(-1)
    assert -Money(42) == Money(-42)
    assert Money.zero() == Money(0)
    assert Money(-1) < Money(0) < Money(1)


@pytest.mark.parametrize(
    ("exact", "fen"),
    [
        ("0.005", 1),
        ("0.004999", 0),
        ("0.015", 2),
        ("0.025", 3),
        ("1406.304", 140630),
        ("1406.305", 140631),
        ("0", 0),
    ],
)
def test_rounding_to_the_fen_is_half_up(exact: str, fen: int) -> None:
    assert round_to_fen(Decimal(exact)) == Money(fen)


def test_rounding_a_negative_half_goes_away_from_zero() -> None:
    assert round_to_fen(Decimal("-0.005")) == Money(-1)
    assert round_to_fen(Decimal("-0.004")) == Money(0)


@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_money_round_trips_through_its_yuan_text(fen: int) -> None:
    assert Money.from_yuan(str(Money(fen))) == Money(fen)


def test_unit_price_keeps_four_decimals() -> None:
    assert parse_unit_price("0.4883") == Decimal("0.4883")
    assert str(parse_unit_price("0.5")) == "0.5000"
    assert str(parse_unit_price(3)) == "3.0000"


@pytest.mark.parametrize("value", ["0.48835", "-0.1", 0.4883, "x"])
def test_unit_price_that_is_negative_too_precise_or_a_float_is_refused(value: object) -> None:
    with pytest.raises(InvalidAmount):
        parse_unit_price(value)  # type: ignore[arg-type]


def test_quantity_keeps_four_decimals() -> None:
    assert str(parse_quantity("2880")) == "2880.0000"
    assert parse_quantity(Decimal("12.3456")) == Decimal("12.3456")
    assert str(parse_quantity("-1.5")) == "-1.5000"
    assert parse_quantity("1.23450") == Decimal("1.2345")


@pytest.mark.parametrize("value", ["1.23456", 1.5, "abc", "NaN", "Infinity", False])
def test_quantity_that_is_too_precise_a_float_or_not_a_number_is_refused(value: object) -> None:
    with pytest.raises(InvalidQuantity):
        parse_quantity(value)  # type: ignore[arg-type]


def test_each_utility_names_its_unit() -> None:
    assert Utility.ELECTRICITY.unit == "kWh"
    assert Utility.WATER.unit == "m³"
    assert Utility("water") is Utility.WATER


def test_reference_figure_two_thousand_eight_hundred_eighty_kwh_at_0_4883() -> None:
    """0.4883 元/kWh x 2880 kWh = 1406.304 元, which bills as 1406.30 元."""
    exact = parse_quantity("2880") * parse_unit_price("0.4883")
    assert exact == Decimal("1406.304")
    assert str(round_to_fen(exact)) == "1406.30"
