"""Pricing under tiered, time-of-use and surcharged tariffs: reference figures and properties."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_DOWN, Decimal
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from meterpay.billing.rules import charge_with_carry
from meterpay.kernel.errors import InvalidInput
from meterpay.kernel.money import Money, round_to_fen
from meterpay.tariffs.components import (
    AccountTierAdjustment,
    Cycle,
    DayType,
    EnergyPrice,
    FixedFee,
    Period,
    PeriodPrice,
    Surcharge,
    TariffComponents,
    Tiers,
    TierStep,
    TimeOfUse,
    TopUpFee,
    TouSchedule,
    TouWindow,
    UnpricedPeriod,
)
from meterpay.tariffs.resale import NothingToShare
from meterpay.tariffs.rules import (
    Priced,
    PriceLine,
    TierState,
    Usage,
    UsageOutOfOrder,
    fixed_fees_due,
    price_usage,
    quote,
    resale_warnings,
    share_bill,
)
from tests.unit.test_tariff_components import components as any_components

SHANGHAI = ZoneInfo("Asia/Shanghai")
PEAK, VALLEY, FLAT = Period.PEAK, Period.VALLEY, Period.FLAT


def d(text: str | int) -> Decimal:
    return Decimal(text)


def local(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=SHANGHAI)  # type: ignore[misc]


YEAR_2024 = (local(2024, 1, 1), local(2025, 1, 1))
JUNE_2024 = (local(2024, 6, 1), local(2024, 7, 1))


def usage(quantity: str | int, span: tuple[datetime, datetime], **registers: str) -> Usage:
    counted = {Period(name): d(value) for name, value in registers.items()} or None
    return Usage(d(quantity), span[0], span[1], registers=counted)


def tiers(*limits: str, markups: tuple[str, ...], cycle: Cycle = Cycle.YEARLY) -> Tiers:
    steps = [
        TierStep(d(limit), markup=d(markup)) for limit, markup in zip(limits, markups, strict=False)
    ]
    return Tiers(cycle, (*steps, TierStep(None, markup=d(markups[-1]))))


def peak_valley(peak_from: int, valley_from: int) -> TouSchedule:
    return TouSchedule(
        (
            TouWindow(PEAK, time(peak_from), time(valley_from)),
            TouWindow(VALLEY, time(valley_from), time(peak_from)),
        )
    )


def two_prices(peak: str, valley: str) -> tuple[PeriodPrice, PeriodPrice]:
    return PeriodPrice(PEAK, price=d(peak)), PeriodPrice(VALLEY, price=d(valley))


BEIJING = TariffComponents(
    EnergyPrice(d("0.4883")), tiers=tiers("2880", "4800", markups=("0", "0.05", "0.30"))
)
BEIJING_MONTHLY_2012 = TariffComponents(
    EnergyPrice(d("0.4883")),
    tiers=tiers("240", "400", markups=("0", "0.05", "0.30"), cycle=Cycle.MONTHLY),
)
ZHEJIANG_FLAT = TariffComponents(
    EnergyPrice(d("0.538")),
    tiers=Tiers(
        Cycle.YEARLY,
        (
            TierStep(d("2760"), price=d("0.538")),
            TierStep(d("4800"), price=d("0.588")),
            TierStep(None, price=d("0.838")),
        ),
    ),
)
ZHEJIANG_TOU = TariffComponents(
    EnergyPrice(d("0.538")),
    tiers=tiers("2760", "4800", markups=("0", "0.05", "0.30")),
    time_of_use=TimeOfUse(two_prices("0.568", "0.288"), (peak_valley(8, 22),)),
)
# Shanghai tier 1 (C): up to 3120 kWh/year. Tiers 2-3 are unverified; the national
# mark-ups stand in for them and no example here reaches them.
SHANGHAI_TOU = TariffComponents(
    EnergyPrice(d("0.617")),
    tiers=tiers("3120", "4800", markups=("0", "0.05", "0.30")),
    time_of_use=TimeOfUse(two_prices("0.617", "0.307"), (peak_valley(6, 22),)),
)
BEIJING_WATER = TariffComponents(
    EnergyPrice(d("2.07")),
    tiers=tiers("180", "260", markups=("0", "2", "4")),
    surcharges=(
        Surcharge("water_resource", "水资源费", d("1.57"), government_levy=True),
        Surcharge("sewage", "污水处理费", d("1.36"), government_levy=True),
    ),
)
FLAT_TARIFF = TariffComponents(EnergyPrice(d("0.6")))


def line(tier: int | None, period: Period | None, quantity: str, price: str) -> PriceLine:
    return PriceLine("energy", tier, period, d(quantity), d(price), d(quantity) * d(price))


# --- the worked examples of the reference ------------------------------------------------------


def test_beijing_3000_kwh_in_a_year_costs_1470_90() -> None:
    result = quote(BEIJING, [usage(3000, YEAR_2024)])
    assert result.total == Money(147090)
    assert result.lines == (line(1, None, "2880", "0.4883"), line(2, None, "120", "0.5383"))
    assert result.state == TierState(date(2024, 1, 1), d("3000"))


def test_zhejiang_flat_3000_kwh_in_a_year_costs_1626_00() -> None:
    assert quote(ZHEJIANG_FLAT, [usage(3000, YEAR_2024)]).total == Money(162600)


def test_zhejiang_read_monthly_costs_the_same_as_read_once_a_year() -> None:
    months = [local(2024, month, 1) for month in range(1, 13)] + [local(2025, 1, 1)]
    profile = [usage(250, (a, b)) for a, b in pairwise(months)]
    result = quote(ZHEJIANG_FLAT, profile)
    assert result.total == Money(162600)
    assert len(result.priced) == 12


def test_shanghai_tou_tier_1_peak_200_valley_100_from_registers_costs_154_10() -> None:
    result = quote(SHANGHAI_TOU, [usage(300, JUNE_2024, peak="200", valley="100")])
    assert result.total == Money(15410)
    assert result.lines == (line(1, PEAK, "200", "0.617"), line(1, VALLEY, "100", "0.307"))


def test_shanghai_tou_from_timestamps_splits_a_month_two_to_one_and_costs_154_10() -> None:
    """Peak 06-22 is 16 hours a day, valley 22-06 is 8: a steady 300 kWh splits 200 / 100."""
    result = quote(SHANGHAI_TOU, [usage(300, JUNE_2024)])
    assert result.total == Money(15410)
    assert result.lines == (line(1, PEAK, "200", "0.617"), line(1, VALLEY, "100", "0.307"))


def test_beijing_water_200_m3_costs_1040_00_in_three_revenue_streams() -> None:
    result = quote(BEIJING_WATER, [usage(200, YEAR_2024)])
    assert result.total == Money(104000)
    assert result.totals == {
        "energy": Money(45400),
        "surcharge:water_resource": Money(31400),
        "surcharge:sewage": Money(27200),
    }
    assert [(x.component, x.tier, x.quantity, x.unit_price) for x in result.lines] == [
        ("energy", 1, d("180"), d("2.07")),
        ("energy", 2, d("20"), d("4.07")),
        ("surcharge:water_resource", None, d("200"), d("1.57")),
        ("surcharge:sewage", None, d("200"), d("1.36")),
    ]


# --- tiers -------------------------------------------------------------------------------------


def test_2880_kwh_is_still_tier_1_and_the_2881st_is_tier_2() -> None:
    assert quote(BEIJING, [usage(2880, YEAR_2024)]).lines == (line(1, None, "2880", "0.4883"),)
    assert quote(BEIJING, [usage(2881, YEAR_2024)]).lines == (
        line(1, None, "2880", "0.4883"),
        line(2, None, "1", "0.5383"),
    )


def test_tiers_accumulate_over_readings_in_one_cycle() -> None:
    state = TierState(date(2024, 1, 1), d("2870"))
    priced = price_usage(BEIJING, usage(30, JUNE_2024), state)
    assert priced.lines == (line(1, None, "10", "0.4883"), line(2, None, "20", "0.5383"))
    assert priced.state == TierState(date(2024, 1, 1), d("2900"))


def test_a_household_adjustment_widens_tier_1() -> None:
    extra = AccountTierAdjustment(d("120"))
    result = quote(BEIJING, [usage(3000, YEAR_2024)], adjustment=extra)
    assert result.lines == (line(1, None, "3000", "0.4883"),)


def test_an_interval_across_a_cycle_start_is_split_by_time_and_the_new_cycle_starts_at_0() -> None:
    state = TierState(date(2025, 1, 1), d("235"))
    across = usage(20, (local(2025, 1, 31), local(2025, 2, 2)))
    priced = price_usage(BEIJING_MONTHLY_2012, across, state)
    # January's 10 kWh: 5 left in tier 1, 5 in tier 2; February's 10 start tier 1 afresh
    assert priced.lines == (line(1, None, "15", "0.4883"), line(2, None, "5", "0.5383"))
    assert priced.state == TierState(date(2025, 2, 1), d("10"))


def test_the_cycle_starts_at_local_midnight_of_its_start_day() -> None:
    steps = (TierStep(d("240"), markup=d("0")), TierStep(None, markup=d("0.05")))
    tariff = TariffComponents(
        EnergyPrice(d("0.5")), tiers=Tiers(Cycle.MONTHLY, steps, cycle_start_day=15)
    )
    state = TierState(date(2025, 2, 15), d("0"))
    before = Usage(d("1"), local(2025, 3, 14, 12), datetime(2025, 3, 14, 16, tzinfo=UTC))
    assert price_usage(tariff, before, state).state == TierState(date(2025, 2, 15), d("1"))
    after = Usage(d("1"), local(2025, 3, 14, 12), local(2025, 3, 15, 12))
    assert price_usage(tariff, after, state).state == TierState(date(2025, 3, 15), d("0.5"))


def test_a_usage_from_an_earlier_cycle_than_the_state_is_refused() -> None:
    state = TierState(date(2025, 2, 1), d("10"))
    with pytest.raises(UsageOutOfOrder):
        price_usage(BEIJING_MONTHLY_2012, usage(1, (local(2025, 1, 5), local(2025, 1, 6))), state)


def test_a_state_from_an_older_cycle_starts_the_new_cycle_at_0() -> None:
    state = TierState(date(2023, 1, 1), d("5000"))
    priced = price_usage(BEIJING, usage(10, JUNE_2024), state)
    assert priced.lines == (line(1, None, "10", "0.4883"),)
    assert priced.state == TierState(date(2024, 1, 1), d("10"))


def test_a_state_from_another_cycle_definition_counts_afresh() -> None:
    """After a change from monthly to yearly tiers, a state of 1 March is no yearly start."""
    state = TierState(date(2024, 3, 1), d("100"))
    priced = price_usage(BEIJING, usage(10, JUNE_2024), state)
    assert priced.state == TierState(date(2024, 1, 1), d("10"))


def test_zero_consumption_has_no_lines_and_keeps_the_state() -> None:
    state = TierState(date(2024, 1, 1), d("7"))
    priced = price_usage(BEIJING_WATER, usage(0, JUNE_2024), state)
    assert priced == Priced((), state, None)


# --- time of use -------------------------------------------------------------------------------


def test_with_tou_and_tiers_a_boundary_splits_peak_and_valley_pro_rata() -> None:
    """浙江: tiers count peak + valley together; 60 of the 100 kWh fit in tier 1."""
    state = TierState(date(2024, 1, 1), d("2700"))
    priced = price_usage(ZHEJIANG_TOU, usage(100, JUNE_2024, peak="60", valley="40"), state)
    assert priced.lines == (
        line(1, PEAK, "36", "0.568"),
        line(1, VALLEY, "24", "0.288"),
        line(2, PEAK, "24", "0.618"),
        line(2, VALLEY, "16", "0.338"),
    )
    assert priced.exact_total == d("47.6")


def test_registers_that_disagree_with_the_total_split_the_total_and_report_the_gap() -> None:
    priced = price_usage(SHANGHAI_TOU, usage(300, JUNE_2024, peak="199.99", valley="100"))
    assert [(x.period, x.quantity) for x in priced.lines] == [
        (PEAK, d("199.9967")),
        (VALLEY, d("100.0033")),
    ]
    assert priced.register_difference == d("0.01")


def test_registers_that_say_nothing_fall_back_to_timestamps() -> None:
    priced = price_usage(SHANGHAI_TOU, usage(300, JUNE_2024, peak="0", valley="0"))
    assert [(x.period, x.quantity) for x in priced.lines] == [(PEAK, d(200)), (VALLEY, d(100))]
    assert priced.register_difference == d("300")


def test_a_register_in_a_period_without_a_price_is_refused() -> None:
    with pytest.raises(UnpricedPeriod) as raised:
        price_usage(SHANGHAI_TOU, usage(300, JUNE_2024, tip="5", peak="195", valley="100"))
    assert isinstance(raised.value, InvalidInput)


def test_registers_on_a_tariff_without_tou_are_only_compared_with_the_total() -> None:
    priced = price_usage(FLAT_TARIFF, usage(10, JUNE_2024, peak="6", valley="3"))
    assert priced.lines == (PriceLine("energy", None, None, d(10), d("0.6"), d("6.0")),)
    assert priced.register_difference == d("1")


WORKDAY_TOU = TariffComponents(
    EnergyPrice(d("0.5")),
    time_of_use=TimeOfUse(
        (*two_prices("0.8", "0.3"), PeriodPrice(FLAT, price=d("0.5"))),
        (
            TouSchedule(peak_valley(8, 22).windows, day_types=frozenset({DayType.WORKDAY})),
            TouSchedule(
                (TouWindow(FLAT, time(0), time(0)),), day_types=frozenset({DayType.REST_DAY})
            ),
        ),
    ),
)
FRIDAY_NIGHT = (local(2025, 1, 3, 20), local(2025, 1, 4, 4))


def test_timestamps_split_by_the_schedule_of_each_day_type() -> None:
    priced = price_usage(WORKDAY_TOU, usage(8, FRIDAY_NIGHT))
    assert [(x.period, x.quantity) for x in priced.lines] == [
        (PEAK, d(2)),  # Friday 20-22
        (FLAT, d(4)),  # Saturday 00-04, a rest day
        (VALLEY, d(2)),  # Friday 22-24
    ]


def test_a_holiday_set_makes_a_workday_a_rest_day() -> None:
    priced = price_usage(WORKDAY_TOU, usage(8, FRIDAY_NIGHT), day_type={date(2025, 1, 3)})
    assert [(x.period, x.quantity) for x in priced.lines] == [(FLAT, d(8))]


def test_a_zero_length_interval_is_priced_in_the_period_of_its_instant() -> None:
    instant = local(2025, 1, 3, 21)
    priced = price_usage(WORKDAY_TOU, Usage(d("1"), instant, instant))
    assert [(x.period, x.quantity) for x in priced.lines] == [(PEAK, d(1))]


def test_an_interval_across_seasons_is_priced_by_each_season() -> None:
    windows = peak_valley(6, 22).windows
    high = TouSchedule(
        windows, months=frozenset({7, 8, 9}), prices=(PeriodPrice(PEAK, multiplier=d("1.2")),)
    )
    other = TouSchedule(windows, months=frozenset(range(1, 13)) - {7, 8, 9})
    prices = (PeriodPrice(PEAK, multiplier=d("1.17")), PeriodPrice(VALLEY, multiplier=d("0.55")))
    tariff = TariffComponents(EnergyPrice(d("0.6")), time_of_use=TimeOfUse(prices, (high, other)))
    priced = price_usage(tariff, usage(10, (local(2025, 9, 30, 21), local(2025, 10, 1, 7))))
    assert priced.lines == (
        line(None, PEAK, "1", "0.702"),
        line(None, PEAK, "1", "0.72"),
        line(None, VALLEY, "8", "0.33"),
    )


def test_a_day_with_a_clock_change_counts_the_hours_that_really_passed() -> None:
    new_york = ZoneInfo("America/New_York")  # 9 March 2025 has 23 hours
    start = datetime(2025, 3, 9, tzinfo=new_york)
    end = datetime(2025, 3, 10, tzinfo=new_york)
    priced = price_usage(WORKDAY_TOU, Usage(d(23), start, end, time_zone="America/New_York"))
    # a Sunday: the rest-day schedule is flat all day
    assert [(x.period, x.quantity) for x in priced.lines] == [(FLAT, d(23))]
    sunday_8_to_monday_8 = Usage(
        d(23),
        datetime(2025, 3, 9, 8, tzinfo=new_york),
        datetime(2025, 3, 10, 8, tzinfo=new_york),
        time_zone="America/New_York",
    )
    mixed = price_usage(WORKDAY_TOU, sunday_8_to_monday_8, day_type=lambda day: DayType.WORKDAY)
    # 24 hours passed: peak 08-22 (14 h), valley 22-08 (10 h); 23 kWh split 14 : 10
    assert [(x.period, x.quantity) for x in mixed.lines] == [
        (PEAK, d("13.4167")),
        (VALLEY, d("9.5833")),
    ]


def test_the_same_interval_priced_again_prices_as_the_first_time_even_across_a_fold() -> None:
    # on 2 November 2025 New York lives 01:00-02:00 twice; the windows are read on the wall clock
    new_york = ZoneInfo("America/New_York")
    schedule = TouSchedule(
        (TouWindow(VALLEY, time(0), time(1, 30)), TouWindow(PEAK, time(1, 30), time(0)))
    )

    def version() -> TariffComponents:
        return TariffComponents(
            EnergyPrice(d("0.5")), time_of_use=TimeOfUse(two_prices("0.6", "0.3"), (schedule,))
        )

    start = datetime(2025, 11, 2, 1, 10, tzinfo=new_york)
    once, twice = (datetime(2025, 11, 2, 1, 50, fold=fold, tzinfo=new_york) for fold in (0, 1))
    assert once == twice  # the same wall time, yet 40 and 100 minutes after the start
    reused = version()
    for end in (once, twice, once, twice):
        usage = Usage(d(1), start, end, time_zone="America/New_York")
        assert price_usage(reused, usage) == price_usage(version(), usage)
    passed_twice = price_usage(reused, Usage(d(1), start, twice, time_zone="America/New_York"))
    assert [(x.period, x.quantity) for x in passed_twice.lines] != [
        (PEAK, d("0.5")),
        (VALLEY, d("0.5")),
    ]


def test_the_state_after_pricing_is_the_one_the_constructor_makes() -> None:
    priced = price_usage(ZHEJIANG_TOU, usage("0.1234", (local(2026, 3, 1), local(2026, 3, 2))))
    assert priced.state == TierState(date(2026, 1, 1), d("0.1234"))
    assert repr(priced.state) == repr(TierState(date(2026, 1, 1), d("0.1234")))
    with pytest.raises(InvalidInput, match="too large"):  # refused as the constructor does
        TierState.counted(date(2026, 1, 1), 10**30)


# --- surcharges, the flat path, rounding -------------------------------------------------------


def test_every_surcharge_is_its_own_line_on_the_whole_quantity() -> None:
    state = TierState(date(2024, 1, 1), d("170"))
    priced = price_usage(BEIJING_WATER, usage(20, JUNE_2024), state)
    assert [(x.component, x.tier, x.quantity) for x in priced.lines] == [
        ("energy", 1, d(10)),
        ("energy", 2, d(10)),
        ("surcharge:water_resource", None, d(20)),
        ("surcharge:sewage", None, d(20)),
    ]


def test_a_flat_tariff_prices_one_line_and_hands_the_state_back_untouched() -> None:
    state = TierState(date(2024, 1, 1), d("12"))
    priced = price_usage(FLAT_TARIFF, usage("2.5", JUNE_2024), state)
    assert priced.lines == (PriceLine("energy", None, None, d("2.5"), d("0.6"), d("1.5")),)
    assert priced.state is state


def test_lines_round_once_per_charge_with_the_billing_carry() -> None:
    priced = price_usage(BEIJING_WATER, usage("0.001", JUNE_2024))
    assert priced.exact_total == d("0.005")  # 0.00207 + 0.00157 + 0.00136
    assert charge_with_carry(priced.lines, Decimal(0)) == (Money(1), d("-0.005"))


def test_a_quote_rounds_once_and_its_components_add_up_to_the_total() -> None:
    profile = [usage("0.001", (local(2024, 1, day), local(2024, 1, day + 1))) for day in (1, 2, 3)]
    result = quote(BEIJING_WATER, profile)
    assert result.exact_total == d("0.015")
    assert result.total == Money(2)
    assert sum(result.totals.values(), Money(0)) == result.total


def test_usage_refuses_bad_input_by_name() -> None:
    with pytest.raises(InvalidInput, match="quantity"):
        Usage(d("-1"), *JUNE_2024)
    with pytest.raises(InvalidInput, match="time zone"):
        Usage(d("1"), datetime(2025, 1, 1), datetime(2025, 1, 2))  # noqa: DTZ001  the point
    with pytest.raises(InvalidInput, match="before it starts"):
        Usage(d("1"), JUNE_2024[1], JUNE_2024[0])
    with pytest.raises(InvalidInput, match="Mars/Olympus"):
        Usage(d("1"), *JUNE_2024, time_zone="Mars/Olympus")
    with pytest.raises(InvalidInput, match="registers"):
        Usage(d("1"), *JUNE_2024, registers={"noon": d("1")})  # type: ignore[dict-item]


# --- fixed fees --------------------------------------------------------------------------------

WITH_FEES = TariffComponents(
    EnergyPrice(d("0.5")),
    fixed_fees=(
        FixedFee("service", "服务费", Money(1000)),
        FixedFee("meter_rental", "表计租赁费", Money(300)),
    ),
)


def test_monthly_fees_fall_due_for_each_month_starting_in_the_period() -> None:
    due = fixed_fees_due(WITH_FEES, date(2025, 1, 15), date(2025, 4, 1))
    assert [(fee.period_key, fee.component, fee.amount) for fee in due] == [
        ("2025-02", "fee:service", Money(1000)),
        ("2025-02", "fee:meter_rental", Money(300)),
        ("2025-03", "fee:service", Money(1000)),
        ("2025-03", "fee:meter_rental", Money(300)),
    ]


def test_back_to_back_periods_list_each_month_once() -> None:
    bounds = [date(2024, 11, 1), date(2024, 12, 1), date(2025, 1, 1), date(2025, 2, 1)]
    keys = [
        fee.period_key
        for a, b in pairwise(bounds)
        for fee in fixed_fees_due(WITH_FEES, a, b)
        if fee.code == "service"
    ]
    assert keys == ["2024-11", "2024-12", "2025-01"]


def test_fee_periods_are_dates_in_order() -> None:
    with pytest.raises(ValueError, match="before it starts"):
        fixed_fees_due(WITH_FEES, date(2025, 2, 1), date(2025, 1, 1))
    with pytest.raises(TypeError):
        fixed_fees_due(WITH_FEES, local(2025, 1, 1), date(2025, 2, 1))


# --- resale ------------------------------------------------------------------------------------


def test_a_bill_is_shared_by_consumption_to_the_fen() -> None:
    assert share_bill(10000, {"a": d(1), "b": d(1), "c": d(1)}) == {"a": 3334, "b": 3333, "c": 3333}


def test_the_landlords_own_use_is_never_passed_on() -> None:
    shares = share_bill(10000, {"shop": d(30), "office": d(50), "landlord": d(20)}, {"landlord"})
    assert shares == {"shop": 3000, "office": 5000}


def test_a_bill_cannot_be_shared_by_zero_consumption() -> None:
    with pytest.raises(NothingToShare):
        share_bill(10000, {"a": d(0), "b": d(0)})
    with pytest.raises(InvalidInput, match="negative"):
        share_bill(100, {"a": d(-1), "b": d(2)})
    with pytest.raises(InvalidInput, match="no consumption"):
        share_bill(100, {"a": d(1)}, {"b"})


def test_tier_prices_above_the_catalog_price_draw_a_warning() -> None:
    warnings = resale_warnings(BEIJING, d("0.4883"))
    assert len(warnings) == 2
    assert warnings[0].startswith("第2档单价 0.5383 元高于目录价 0.4883 元")
    assert "tier 3: 0.7883 元 is above the catalog price" in warnings[1]
    assert resale_warnings(BEIJING, d("0.7883")) == []


def test_government_levies_count_towards_the_all_in_catalog_price() -> None:
    assert len(resale_warnings(BEIJING_WATER, d("5"))) == 2
    assert resale_warnings(BEIJING_WATER, d("9")) == []


def test_any_fee_added_to_a_resold_utility_price_draws_a_warning() -> None:
    tariff = TariffComponents(
        EnergyPrice(d("0.5")),
        surcharges=(Surcharge("common_area", "公摊费", d("0.05")),),
        fixed_fees=(FixedFee("service", "服务费", Money(1000)),),
        topup_fee=TopUpFee(percent=d("1")),
    )
    warnings = resale_warnings(tariff, d("0.6"))
    assert len(warnings) == 4
    assert "common_area" in warnings[0]
    assert "fixed fee service" in warnings[1]
    assert "物业管理条例 第四十四条" in warnings[2]


def test_time_of_use_prices_are_checked_against_the_catalog_price_of_their_period() -> None:
    assert resale_warnings(SHANGHAI_TOU, {PEAK: d("0.917"), VALLEY: d("0.607")}) == []
    warnings = resale_warnings(SHANGHAI_TOU, {PEAK: d("0.617")})
    assert any(w.startswith("第2档峰时段单价 0.6670 元") for w in warnings)
    assert warnings[-1].endswith("no catalog price for the valley period")


# --- properties --------------------------------------------------------------------------------

quantities = st.decimals(min_value=0, max_value=6000, places=4)
small_prices = st.decimals(min_value=0, max_value=10, places=4)
consumed_so_far = st.decimals(min_value=0, max_value=6000, places=4)
JUNE_START = local(2024, 6, 3)


@st.composite
def tiered(draw: st.DrawFn, time_of_use: TimeOfUse | None = None) -> TariffComponents:
    limits = sorted(draw(st.sets(st.integers(1, 6000), min_size=1, max_size=3)))
    markups = [draw(small_prices) for _ in limits]
    steps = [TierStep(Decimal(limit), markup=m) for limit, m in zip(limits, markups, strict=True)]
    surcharges = tuple(
        Surcharge(code, code, draw(small_prices))
        for code in draw(st.lists(st.sampled_from(["sewage", "water_resource"]), unique=True))
    )
    return TariffComponents(
        EnergyPrice(draw(small_prices)),
        tiers=Tiers(Cycle.YEARLY, (*steps, TierStep(None, markup=draw(small_prices)))),
        time_of_use=time_of_use,
        surcharges=surcharges,
    )


def exact(priced: Priced) -> Decimal:
    return priced.exact_total


@given(
    tariff=tiered(),
    consumed=consumed_so_far,
    quantity=quantities,
    share=st.integers(0, 10_000),
    minutes=st.integers(1, 60 * 24 * 20),
    at_minute=st.integers(0, 60 * 24 * 20),
)
def test_splitting_a_tiered_interval_anywhere_changes_no_exact_amount(
    *,
    tariff: TariffComponents,
    consumed: Decimal,
    quantity: Decimal,
    share: int,
    minutes: int,
    at_minute: int,
) -> None:
    state = TierState(date(2024, 1, 1), consumed)
    end = JUNE_START + timedelta(minutes=minutes)
    middle = JUNE_START + timedelta(minutes=min(at_minute, minutes))
    first_part = (quantity * share / 10_000).quantize(d("0.0001"), rounding=ROUND_DOWN)
    whole = price_usage(tariff, Usage(quantity, JUNE_START, end), state)
    first = price_usage(tariff, Usage(first_part, JUNE_START, middle), state)
    second = price_usage(tariff, Usage(quantity - first_part, middle, end), first.state)
    assert exact(first) + exact(second) == exact(whole)
    assert second.state == whole.state


REGISTERED_TOU = TimeOfUse(two_prices("0.568", "0.288"), (peak_valley(8, 22),))


@given(
    tariff=tiered(REGISTERED_TOU),
    consumed=consumed_so_far,
    first=st.tuples(quantities, quantities),
    second=st.tuples(quantities, quantities),
)
def test_splitting_a_registered_tou_interval_anywhere_changes_no_exact_amount(
    tariff: TariffComponents,
    consumed: Decimal,
    first: tuple[Decimal, Decimal],
    second: tuple[Decimal, Decimal],
) -> None:
    """Even across a tier boundary: each cell costs period price + tier mark-up."""
    state = TierState(date(2024, 1, 1), consumed)
    middle, end = JUNE_START + timedelta(hours=5), JUNE_START + timedelta(hours=9)

    def registered(peak: Decimal, valley: Decimal, start: datetime, until: datetime) -> Usage:
        return Usage(peak + valley, start, until, registers={PEAK: peak, VALLEY: valley})

    whole_registers = (first[0] + second[0], first[1] + second[1])
    whole = price_usage(tariff, registered(*whole_registers, JUNE_START, end), state)
    one = price_usage(tariff, registered(*first, JUNE_START, middle), state)
    two = price_usage(tariff, registered(*second, middle, end), one.state)
    assert exact(one) + exact(two) == exact(whole)
    assert two.state == whole.state


@given(
    tariff=tiered(),
    consumed=consumed_so_far,
    units_per_hour=st.integers(0, 10_000_000),
    hours_before=st.integers(1, 72),
    hours_after=st.integers(1, 72),
)
def test_splitting_at_a_cycle_start_with_the_pro_rata_quantities_changes_nothing(
    tariff: TariffComponents,
    consumed: Decimal,
    units_per_hour: int,
    hours_before: int,
    hours_after: int,
) -> None:
    new_year = local(2025, 1, 1)
    start, end = new_year - timedelta(hours=hours_before), new_year + timedelta(hours=hours_after)
    before = Decimal(units_per_hour * hours_before) / 10_000
    after = Decimal(units_per_hour * hours_after) / 10_000
    state = TierState(date(2024, 1, 1), consumed)
    whole = price_usage(tariff, Usage(before + after, start, end), state)
    one = price_usage(tariff, Usage(before, start, new_year), state)
    two = price_usage(tariff, Usage(after, new_year, end), one.state)
    assert exact(one) + exact(two) == exact(whole)
    assert whole.state == two.state == TierState(date(2025, 1, 1), after)


def period_quantities(priced: Priced) -> dict[Period | None, Decimal]:
    found: dict[Period | None, Decimal] = defaultdict(Decimal)
    for piece in priced.lines:
        if piece.component == "energy":
            found[piece.period] += piece.quantity
    return dict(found)


@given(
    tariff=any_components().filter(lambda c: c.time_of_use is not None and c.tiers is None),
    quantity=quantities,
    minutes=st.integers(2, 60 * 24 * 3),
    cut=st.integers(1, 60 * 24 * 3),
)
def test_splitting_a_timestamp_tou_interval_moves_at_most_a_few_ten_thousandths(
    tariff: TariffComponents, quantity: Decimal, minutes: int, cut: int
) -> None:
    """A time split to 0.0001 kWh is a rounding: the halves may place a few units otherwise."""
    assume(cut < minutes)
    end, middle = JUNE_START + timedelta(minutes=minutes), JUNE_START + timedelta(minutes=cut)
    first_part = (quantity * cut / minutes).quantize(d("0.0001"))
    whole = period_quantities(price_usage(tariff, Usage(quantity, JUNE_START, end)))
    one = price_usage(tariff, Usage(first_part, JUNE_START, middle))
    two = price_usage(tariff, Usage(quantity - first_part, middle, end))
    halves: dict[Period | None, Decimal] = defaultdict(Decimal)
    for part in (one, two):
        for period, amount in period_quantities(part).items():
            halves[period] += amount
    assert sum(halves.values()) == sum(whole.values()) == quantity
    for period in set(halves) | set(whole):
        assert abs(halves[period] - whole.get(period, Decimal(0))) <= d("0.0010")


@given(
    tariff=tiered(REGISTERED_TOU) | tiered(),
    consumed=consumed_so_far,
    smaller=quantities,
    extra=quantities,
    hours=st.integers(0, 24 * 40),
)
def test_more_consumption_never_costs_less(
    tariff: TariffComponents, consumed: Decimal, smaller: Decimal, extra: Decimal, hours: int
) -> None:
    state = TierState(date(2024, 1, 1), consumed)
    span = (JUNE_START, JUNE_START + timedelta(hours=hours))
    less = price_usage(tariff, Usage(smaller, *span), state)
    more = price_usage(tariff, Usage(smaller + extra, *span), state)
    assert exact(less) <= exact(more)


@given(
    tariff=any_components().filter(lambda c: c.time_of_use is not None),
    quantity=quantities,
    start_minutes=st.integers(0, 60 * 24 * 400),
    minutes=st.integers(0, 60 * 24 * 45),
    consumed=consumed_so_far,
)
def test_registers_equal_to_the_time_split_price_exactly_as_the_time_split(
    tariff: TariffComponents, quantity: Decimal, start_minutes: int, minutes: int, consumed: Decimal
) -> None:
    start = local(2024, 1, 1) + timedelta(minutes=start_minutes)
    end = start + timedelta(minutes=minutes)
    tiers_of = tariff.tiers
    state = TierState(tiers_of.cycle_start_on(start.date()), consumed) if tiers_of else None
    by_time = price_usage(tariff, Usage(quantity, start, end), state)
    registers = {period: amount for period, amount in period_quantities(by_time).items() if period}
    by_registers = price_usage(tariff, Usage(quantity, start, end, registers=registers), state)
    assert by_registers.lines == by_time.lines
    assert by_registers.state == by_time.state


@given(
    tariff=any_components(),
    quantity=quantities,
    start_minutes=st.integers(0, 60 * 24 * 400),
    minutes=st.integers(0, 60 * 24 * 45),
)
def test_energy_lines_add_up_exactly_to_the_quantity_at_exact_prices(
    tariff: TariffComponents, quantity: Decimal, start_minutes: int, minutes: int
) -> None:
    start = local(2024, 1, 1) + timedelta(minutes=start_minutes)
    priced = price_usage(tariff, Usage(quantity, start, start + timedelta(minutes=minutes)))
    energy = [piece for piece in priced.lines if piece.component == "energy"]
    assert sum(piece.quantity for piece in energy) == quantity
    for piece in priced.lines:
        assert piece.quantity > 0
        assert piece.quantity == piece.quantity.quantize(d("0.0001"))
        assert piece.exact_amount == piece.quantity * piece.unit_price
    surcharged = [piece for piece in priced.lines if piece.component != "energy"]
    assert all(piece.quantity == quantity for piece in surcharged)


@given(
    tariff=any_components(),
    readings=st.lists(st.tuples(st.integers(0, 60 * 24 * 5), quantities), max_size=25),
)
def test_a_run_of_charges_adds_up_to_the_rounded_quote_of_the_run(
    tariff: TariffComponents, readings: list[tuple[int, Decimal]]
) -> None:
    moment, carry, charged, state = local(2024, 1, 1), Decimal(0), Money(0), None
    profile = []
    for minutes, quantity in readings:
        following = moment + timedelta(minutes=minutes)
        profile.append(Usage(quantity, moment, following))
        priced = price_usage(tariff, profile[-1], state)
        amount, carry = charge_with_carry(priced.lines, carry)
        charged, state, moment = charged + amount, priced.state, following
    result = quote(tariff, profile)
    assert charged == result.total == round_to_fen(result.exact_total)
    assert sum(result.totals.values(), Money(0)) == result.total


bills = st.integers(0, 10**9)
shares_by = st.dictionaries(
    st.integers(0, 30), st.decimals(min_value=0, max_value=10**6, places=4), min_size=1
)


@given(bill=bills, consumptions=shares_by, data=st.data())
def test_shares_add_up_to_the_bill_and_stay_within_a_fen_of_pro_rata(
    bill: int, consumptions: dict[int, Decimal], data: st.DataObject
) -> None:
    total = sum(consumptions.values())
    assume(total > 0)
    shares = share_bill(bill, consumptions)
    assert sum(shares.values()) == bill
    for key, fen in shares.items():
        assert abs(fen - bill * consumptions[key] / total) < 1
    excluded = data.draw(st.sets(st.sampled_from(sorted(consumptions))))
    kept = share_bill(bill, consumptions, excluded)
    assert kept == {key: fen for key, fen in shares.items() if key not in excluded}


@given(
    st.integers(min_value=0, max_value=40_000),
    st.integers(min_value=0, max_value=60_000_000),
    st.integers(min_value=0, max_value=365 * 96 - 1),
    st.sampled_from([ZHEJIANG_TOU, ZHEJIANG_FLAT]),
)
def test_the_one_tier_shortcut_prices_exactly_as_the_general_tier_split(
    units: int, opening: int, slot: int, components: TariffComponents
) -> None:
    """A 15-minute interval priced by the shortcut (one cell, one tier) equals the general path
    (forced by a zero account adjustment), tier crossings included."""
    start = local(2024, 1, 1) + timedelta(minutes=15 * slot)
    used = Usage(Decimal(units) / 10_000, start, start + timedelta(minutes=15))
    state = TierState(date(2024, 1, 1), Decimal(opening) / 10_000)
    shortcut = price_usage(components, used, state)
    general = price_usage(components, used, state, adjustment=AccountTierAdjustment(Decimal(0)))
    assert shortcut == general
