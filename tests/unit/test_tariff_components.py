"""Tariff components: validation that names the field and the rule, and the stored JSON form."""

from __future__ import annotations

import json
from datetime import date, time
from decimal import Decimal
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterpay.kernel.errors import InvalidInput
from meterpay.kernel.money import Money
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
    TariffInvalid,
    Tiers,
    TierStep,
    TimeOfUse,
    TopUpFee,
    TouSchedule,
    TouWindow,
    topup_fee_warnings,
)
from meterpay.tariffs.tou import holiday_calendar, weekday_day_type


def d(text: str) -> Decimal:
    return Decimal(text)


def window(period: Period, start: int, end: int) -> TouWindow:
    return TouWindow(period, time(start % 24), time(end % 24))


def national_tiers(first: str, second: str, cycle: Cycle = Cycle.YEARLY) -> Tiers:
    """Tier 2 = tier 1 + 0.05, tier 3 = tier 1 + 0.30 (the 2012 national pattern)."""
    return Tiers(
        cycle,
        (
            TierStep(d(first), markup=d("0")),
            TierStep(d(second), markup=d("0.05")),
            TierStep(None, markup=d("0.30")),
        ),
    )


PEAK_VALLEY_08_22 = TouSchedule((window(Period.PEAK, 8, 22), window(Period.VALLEY, 22, 8)))

ZHEJIANG_TOU = TariffComponents(
    EnergyPrice(d("0.538")),
    tiers=national_tiers("2760", "4800"),
    time_of_use=TimeOfUse(
        (PeriodPrice(Period.PEAK, price=d("0.568")), PeriodPrice(Period.VALLEY, price=d("0.288"))),
        (PEAK_VALLEY_08_22,),
    ),
)

GUANGDONG_PRICES = (
    PeriodPrice(Period.TIP, multiplier=d("1.25"), of=Period.PEAK),
    PeriodPrice(Period.PEAK, multiplier=d("1.7")),
    PeriodPrice(Period.FLAT, multiplier=d("1")),
    PeriodPrice(Period.VALLEY, multiplier=d("0.38")),
)
GUANGDONG_SUMMER = TouSchedule(
    (
        window(Period.VALLEY, 0, 8),
        window(Period.FLAT, 8, 10),
        window(Period.PEAK, 10, 11),
        window(Period.TIP, 11, 12),
        window(Period.FLAT, 12, 14),
        window(Period.PEAK, 14, 15),
        window(Period.TIP, 15, 17),
        window(Period.PEAK, 17, 19),
        window(Period.FLAT, 19, 24),
    ),
    months=frozenset({7, 8, 9}),
)
GUANGDONG_REST_OF_YEAR = TouSchedule(
    (
        window(Period.VALLEY, 0, 8),
        window(Period.FLAT, 8, 10),
        window(Period.PEAK, 10, 12),
        window(Period.FLAT, 12, 14),
        window(Period.PEAK, 14, 19),
        window(Period.FLAT, 19, 24),
    ),
    months=frozenset(range(1, 13)) - {7, 8, 9},
)


def guangdong(base: str) -> TariffComponents:
    """粤发改价格〔2021〕331号: peak : flat : valley = 1.7 : 1 : 0.38, critical = peak x 1.25."""
    tou = TimeOfUse(GUANGDONG_PRICES, (GUANGDONG_SUMMER, GUANGDONG_REST_OF_YEAR))
    return TariffComponents(EnergyPrice(d(base)), time_of_use=tou)


def invalid(build: Any, *args: Any, **kwargs: Any) -> TariffInvalid:
    with pytest.raises(TariffInvalid) as raised:
        build(*args, **kwargs)
    return raised.value


# --- tiers -------------------------------------------------------------------------------------


def test_tier_prices_follow_the_national_mark_up_pattern() -> None:
    beijing = TariffComponents(EnergyPrice(d("0.4883")), tiers=national_tiers("2880", "4800"))
    assert [beijing.unit_price(tier, None) for tier in (1, 2, 3)] == [
        d("0.4883"),
        d("0.5383"),
        d("0.7883"),
    ]


def test_absolute_tier_prices_are_used_as_given() -> None:
    steps = (
        TierStep(d("2760"), price=d("0.538")),
        TierStep(d("4800"), price=d("0.588")),
        TierStep(None, price=d("0.838")),
    )
    zhejiang = TariffComponents(EnergyPrice(d("0.538")), tiers=Tiers(Cycle.YEARLY, steps))
    assert zhejiang.unit_price(3, None) == d("0.8380")


def test_tier_limits_must_rise_and_the_error_names_the_step() -> None:
    steps = (TierStep(d("2880"), markup=d("0")), TierStep(d("2880"), markup=d("0.05")))
    error = invalid(Tiers, Cycle.YEARLY, (*steps, TierStep(None, markup=d("0.3"))))
    assert error.field == "steps[1].up_to"
    assert "above the previous step's limit (2880)" in error.rule
    assert error.details == {"field": "steps[1].up_to", "rule": error.rule}
    assert isinstance(error, InvalidInput)
    assert error.code == "tariff_invalid"


def test_only_the_last_step_is_unbounded() -> None:
    steps = (TierStep(None, markup=d("0")), TierStep(None, markup=d("0.05")))
    assert invalid(Tiers, Cycle.MONTHLY, steps).field == "steps[0].up_to"
    bounded = (TierStep(d("1"), markup=d("0")), TierStep(d("2"), markup=d("0.05")))
    assert invalid(Tiers, Cycle.MONTHLY, bounded).field == "steps[1].up_to"


def test_a_tiered_price_needs_two_steps() -> None:
    assert invalid(Tiers, Cycle.MONTHLY, (TierStep(None, markup=d("0")),)).field == "steps"


def test_a_step_has_exactly_one_of_price_and_markup() -> None:
    assert invalid(TierStep, d("1"), price=d("1"), markup=d("0")).field == "price"
    assert invalid(TierStep, d("1")).field == "price"


def test_cycle_start_day_is_1_to_28_so_every_month_has_it() -> None:
    steps = national_tiers("240", "400").steps
    assert invalid(Tiers, Cycle.MONTHLY, steps, cycle_start_day=29).field == "cycle_start_day"
    assert invalid(Tiers, Cycle.MONTHLY, steps, cycle_start_day=0).field == "cycle_start_day"


def test_cycle_start_month_applies_only_to_yearly_cycles() -> None:
    steps = national_tiers("240", "400").steps
    assert invalid(Tiers, Cycle.MONTHLY, steps, cycle_start_month=7).field == "cycle_start_month"
    assert Tiers(Cycle.YEARLY, steps, cycle_start_month=7).cycle_start_month == 7


@pytest.mark.parametrize(
    ("day", "start"),
    [
        (date(2025, 3, 10), date(2025, 2, 15)),
        (date(2025, 3, 15), date(2025, 3, 15)),
        (date(2025, 1, 3), date(2024, 12, 15)),
    ],
)
def test_a_monthly_cycle_starts_on_its_day_of_the_month(day: date, start: date) -> None:
    tiers = Tiers(Cycle.MONTHLY, national_tiers("240", "400").steps, cycle_start_day=15)
    assert tiers.cycle_start_on(day) == start
    assert tiers.next_cycle_start(start) > day


def test_a_yearly_cycle_starts_on_its_month_and_day() -> None:
    tiers = Tiers(Cycle.YEARLY, national_tiers("2880", "4800").steps, cycle_start_month=7)
    assert tiers.cycle_start_on(date(2025, 3, 1)) == date(2024, 7, 1)
    assert tiers.cycle_start_on(date(2025, 7, 1)) == date(2025, 7, 1)
    assert tiers.next_cycle_start(date(2024, 7, 1)) == date(2025, 7, 1)


def test_a_larger_household_widens_every_boundary() -> None:
    """Wuxi 2006: above 4 persons, each extra person adds 6 t/month to every boundary."""
    tiers = national_tiers("20", "30", Cycle.MONTHLY)
    adjustment = AccountTierAdjustment.for_household(6, 4, d("6"))
    assert adjustment.extra_units == d("12")
    assert tiers.boundaries(adjustment) == (d("32"), d("42"))
    assert AccountTierAdjustment.for_household(3, 4, d("6")).extra_units == 0


# --- time of use -------------------------------------------------------------------------------


def test_guangdong_prices_are_derived_from_the_base_and_rounded_to_four_decimals() -> None:
    tariff = guangdong("0.6543")
    summer, other = 0, 1
    assert tariff.unit_price(None, Period.PEAK, summer) == d("1.1123")  # 1.11231
    assert tariff.unit_price(None, Period.VALLEY, other) == d("0.2486")  # 0.248634
    assert tariff.unit_price(None, Period.FLAT, other) == d("0.6543")
    assert tariff.unit_price(None, Period.TIP, summer) == d("1.3904")  # 1.1123 x 1.25


def test_a_schedule_can_override_prices_for_its_season() -> None:
    """Shanghai commercial: peak +20 % in Jul-Sep, Jan, Dec; +17 % in other months."""
    windows = (window(Period.PEAK, 6, 22), window(Period.VALLEY, 22, 6))
    high = TouSchedule(
        windows,
        months=frozenset({1, 7, 8, 9, 12}),
        prices=(PeriodPrice(Period.PEAK, multiplier=d("1.2")),),
    )
    other = TouSchedule(windows, months=frozenset({2, 3, 4, 5, 6, 10, 11}))
    prices = (
        PeriodPrice(Period.PEAK, multiplier=d("1.17")),
        PeriodPrice(Period.VALLEY, multiplier=d("0.55")),
    )
    tariff = TariffComponents(EnergyPrice(d("0.6")), time_of_use=TimeOfUse(prices, (high, other)))
    assert tariff.unit_price(None, Period.PEAK, 0) == d("0.72")
    assert tariff.unit_price(None, Period.PEAK, 1) == d("0.702")
    assert tariff.unit_price(None, Period.VALLEY, 0) == d("0.33")


def test_time_of_use_with_tiers_adds_the_tier_mark_up_to_every_period() -> None:
    assert ZHEJIANG_TOU.unit_price(2, Period.PEAK) == d("0.618")
    assert ZHEJIANG_TOU.unit_price(3, Period.VALLEY) == d("0.588")


def test_with_time_of_use_a_tier_price_below_the_base_is_refused() -> None:
    steps = (TierStep(d("10"), price=d("0.5")), TierStep(None, price=d("0.6")))
    error = invalid(
        TariffComponents,
        EnergyPrice(d("0.538")),
        tiers=Tiers(Cycle.MONTHLY, steps),
        time_of_use=ZHEJIANG_TOU.time_of_use,
    )
    assert error.field == "tiers.steps[0].price"


def test_windows_may_run_over_midnight_and_must_cover_the_day() -> None:
    assert PEAK_VALLEY_08_22.segments == (
        (0, 480, Period.VALLEY),
        (480, 1320, Period.PEAK),
        (1320, 1440, Period.VALLEY),
    )
    error = invalid(TouSchedule, (window(Period.PEAK, 8, 12), window(Period.VALLEY, 14, 8)))
    assert (error.field, error.rule) == ("windows", "no window covers 12:00-14:00")


def test_overlapping_windows_are_refused_naming_the_window() -> None:
    error = invalid(TouSchedule, (window(Period.PEAK, 8, 23), window(Period.VALLEY, 22, 8)))
    assert error.field == "windows[1]"
    assert "overlaps another window at 22:00" in error.rule


def test_a_whole_day_window_runs_from_midnight_to_midnight() -> None:
    assert TouSchedule((window(Period.FLAT, 0, 0),)).segments == ((0, 1440, Period.FLAT),)
    assert invalid(TouWindow, Period.PEAK, time(8), time(8)).field == "end"


def test_window_times_are_whole_minutes() -> None:
    assert invalid(TouWindow, Period.PEAK, time(8, 0, 30), time(9)).field == "start"


def test_every_month_and_day_type_has_exactly_one_schedule() -> None:
    workdays = TouSchedule(PEAK_VALLEY_08_22.windows, day_types=frozenset({DayType.WORKDAY}))
    prices = ZHEJIANG_TOU.time_of_use.prices if ZHEJIANG_TOU.time_of_use else ()
    missing = invalid(TimeOfUse, prices, (workdays,))
    assert (missing.field, missing.rule) == ("schedules", "no schedule for month 1 (rest_day)")
    twice = invalid(TimeOfUse, prices, (PEAK_VALLEY_08_22, workdays))
    assert twice.field == "schedules[1]"
    assert "also in schedules[0]" in twice.rule


def test_a_period_in_a_window_needs_a_price() -> None:
    prices = (PeriodPrice(Period.PEAK, price=d("0.6")),)
    error = invalid(TimeOfUse, prices, (PEAK_VALLEY_08_22,))
    assert error.field == "schedules[0].windows[1].period"


def test_a_relative_price_refers_to_an_absolute_one() -> None:
    chained = (
        PeriodPrice(Period.TIP, multiplier=d("1.25"), of=Period.PEAK),
        PeriodPrice(Period.PEAK, multiplier=d("1.2"), of=Period.FLAT),
        PeriodPrice(Period.FLAT, price=d("0.6")),
        PeriodPrice(Period.VALLEY, price=d("0.3")),
    )
    error = invalid(TimeOfUse, chained, (PEAK_VALLEY_08_22,))
    assert error.field == "prices.tip.of"
    assert invalid(PeriodPrice, Period.PEAK, multiplier=d("2"), of=Period.PEAK).field == "of"
    assert invalid(PeriodPrice, Period.PEAK, price=d("1"), of=Period.FLAT).field == "of"


def test_the_day_type_comes_from_the_caller_with_weekends_resting_by_default() -> None:
    assert weekday_day_type(date(2025, 10, 4)) is DayType.REST_DAY  # a Saturday
    calendar = holiday_calendar({date(2025, 10, 1)}, makeup_workdays={date(2025, 9, 28)})
    assert calendar(date(2025, 10, 1)) is DayType.REST_DAY
    assert calendar(date(2025, 9, 28)) is DayType.WORKDAY  # a Sunday worked (调休)
    assert calendar(date(2025, 10, 9)) is DayType.WORKDAY


# --- surcharges, fees, top-up fee --------------------------------------------------------------


def test_surcharge_codes_are_machine_codes_and_unique() -> None:
    assert invalid(Surcharge, "Water Resource", "水资源费", d("1.57")).field == "code"
    twice = (Surcharge("sewage", "污水处理费", d("1.36")),) * 2
    error = invalid(TariffComponents, EnergyPrice(d("2.07")), surcharges=twice)
    assert (error.field, error.rule) == ("surcharges[1].code", "repeats surcharges[0].code")


def test_a_surcharge_is_its_own_component() -> None:
    assert Surcharge("sewage", "污水处理费", d("1.36")).component == "surcharge:sewage"


def test_a_fixed_fee_is_money_in_fen_and_not_zero() -> None:
    fee = FixedFee("meter_rental", "表计租赁费", Money(500))
    assert fee.amount == Money(500)
    assert invalid(FixedFee, "meter_rental", "表计租赁费", Money(0)).field == "amount"


def test_a_top_up_fee_is_a_percentage_or_a_fixed_amount() -> None:
    assert TopUpFee(percent=d("1.5")).percent == d("1.50")
    assert invalid(TopUpFee).field == "percent"
    assert invalid(TopUpFee, percent=d("1"), fixed=Money(100)).field == "percent"
    assert invalid(TopUpFee, percent=d("0")).field == "percent"
    assert invalid(TopUpFee, fixed=Money(0)).field == "fixed"


def test_a_top_up_fee_always_comes_with_the_legal_warning() -> None:
    assert topup_fee_warnings(None) == []
    warnings = topup_fee_warnings(TopUpFee(fixed=Money(200)))
    assert len(warnings) == 2
    assert "物业管理条例 第四十四条" in warnings[0]
    assert "unlawful" in warnings[1]
    assert len(topup_fee_warnings(TopUpFee(fixed=Money(200)), residential=False)) == 1


def test_the_top_up_fee_is_off_unless_set() -> None:
    assert TariffComponents(EnergyPrice(d("0.5"))).topup_fee is None


def test_prices_are_never_floats() -> None:
    error = invalid(EnergyPrice, 0.4883)
    assert error.field == "unit_price"
    assert "not 0.4883" in error.rule
    assert invalid(EnergyPrice, d("0.48835")).rule == "price 0.48835 has more than 4 decimals"


# --- the stored JSON form ----------------------------------------------------------------------

BEIJING_WATER = TariffComponents(
    EnergyPrice(d("2.07")),
    tiers=Tiers(
        Cycle.YEARLY,
        (
            TierStep(d("180"), markup=d("0")),
            TierStep(d("260"), markup=d("2")),
            TierStep(None, markup=d("4")),
        ),
    ),
    surcharges=(
        Surcharge("water_resource", "水资源费", d("1.57"), government_levy=True),
        Surcharge("sewage", "污水处理费", d("1.36"), government_levy=True),
    ),
    fixed_fees=(FixedFee("meter_rental", "表计租赁费", Money(300)),),
    topup_fee=TopUpFee(percent=d("1")),
)


@pytest.mark.parametrize("tariff", [BEIJING_WATER, ZHEJIANG_TOU, guangdong("0.6543")])
def test_the_json_form_reads_back_to_the_same_tariff(tariff: TariffComponents) -> None:
    stored = json.dumps(tariff.to_dict(), ensure_ascii=False)
    assert TariffComponents.from_dict(json.loads(stored)) == tariff


def test_the_json_form_is_plain_text_and_numbers() -> None:
    data = BEIJING_WATER.to_dict()
    assert data["energy"] == {"unit_price": "2.07"}
    assert data["fixed_fees"] == [
        {"code": "meter_rental", "name": "表计租赁费", "amount": "3.00", "period": "monthly"}
    ]
    assert data["topup_fee"] == {"percent": "1"}
    assert data["time_of_use"] is None


def test_windows_ending_at_midnight_are_written_24_00() -> None:
    tou = guangdong("0.6").to_dict()["time_of_use"]
    assert isinstance(tou, dict)
    assert tou["schedules"][0]["windows"][-1] == {
        "period": "flat",
        "start": "19:00",
        "end": "24:00",
    }


def test_decimals_parsed_by_json_as_decimal_are_accepted() -> None:
    data = json.loads('{"energy": {"unit_price": 0.4883}}', parse_float=Decimal)
    assert TariffComponents.from_dict(data).energy.unit_price == d("0.4883")


def from_dict_error(data: Any) -> TariffInvalid:
    return invalid(TariffComponents.from_dict, data)


def beijing_dict() -> dict[str, Any]:
    data = BEIJING_WATER.to_dict()
    return json.loads(json.dumps(data))  # type: ignore[no-any-return]


def test_an_unknown_key_is_refused_by_name() -> None:
    assert from_dict_error({"energy": {"unit_price": "1"}, "colour": "red"}).field == "colour"
    data = beijing_dict()
    data["tiers"]["steps"][1]["upto"] = "300"
    error = from_dict_error(data)
    assert error.field == "tiers.steps[1].upto"
    assert error.rule.startswith("unknown key")


def test_a_bad_value_deep_inside_names_its_path() -> None:
    data = beijing_dict()
    data["tiers"]["steps"][1]["up_to"] = "lots"
    assert from_dict_error(data).field == "tiers.steps[1].up_to"
    data = beijing_dict()
    data["tiers"]["steps"][1]["up_to"] = "100"
    error = from_dict_error(data)
    assert (error.field, error.rule) == (
        "tiers.steps[1].up_to",
        "must be above the previous step's limit (180)",
    )


def test_a_float_in_the_document_is_refused() -> None:
    assert from_dict_error({"energy": {"unit_price": 0.4883}}).field == "energy.unit_price"


def test_the_base_energy_price_is_required() -> None:
    error = from_dict_error({"tiers": None})
    assert (error.field, error.rule) == ("energy", "is required")
    assert from_dict_error([]).field == "(top)"


def test_time_of_use_errors_name_the_schedule_and_window() -> None:
    data = json.loads(json.dumps(guangdong("0.6").to_dict()))
    data["time_of_use"]["schedules"][1]["windows"][2]["start"] = "25:00"
    assert from_dict_error(data).field == "time_of_use.schedules[1].windows[2].start"
    data = json.loads(json.dumps(guangdong("0.6").to_dict()))
    data["time_of_use"]["prices"]["peak"] = {"multiplier": "-1"}
    assert from_dict_error(data).field == "time_of_use.prices.peak.multiplier"
    data["time_of_use"]["prices"]["noon"] = {"price": "1"}
    assert from_dict_error(data).field == "time_of_use.prices.noon"


def test_list_errors_name_the_index() -> None:
    data = beijing_dict()
    data["surcharges"][1]["unit_price"] = "-1"
    assert from_dict_error(data).field == "surcharges[1].unit_price"
    data = beijing_dict()
    data["fixed_fees"][0]["amount"] = "3.001"
    assert from_dict_error(data).field == "fixed_fees[0].amount"


# --- round trip, as a property -----------------------------------------------------------------

prices = st.decimals(min_value=0, max_value=20, places=4)
factors = st.decimals(min_value=d("0.0001"), max_value=5, places=4)


@st.composite
def tier_sets(draw: st.DrawFn, absolute: bool = True) -> Tiers:
    """Steps priced by mark-up, or (when ``absolute``) some by absolute price."""
    limits = sorted(draw(st.sets(st.integers(1, 100_000), min_size=1, max_size=4)))
    steps = [
        TierStep(Decimal(limit), price=draw(prices))
        if absolute and draw(st.booleans())
        else TierStep(Decimal(limit), markup=draw(prices))
        for limit in limits
    ]
    cycle = draw(st.sampled_from(Cycle))
    month = draw(st.integers(1, 12)) if cycle is Cycle.YEARLY else 1
    steps.append(TierStep(None, markup=draw(prices)))
    return Tiers(cycle, tuple(steps), draw(st.integers(1, 28)), month)


@st.composite
def day_schedules(draw: st.DrawFn, months: frozenset[int]) -> TouSchedule:
    cuts = sorted(draw(st.sets(st.integers(1, 1439), max_size=6)))
    bounds = [0, *cuts, 1440]
    windows = tuple(
        TouWindow(
            draw(st.sampled_from([Period.PEAK, Period.FLAT, Period.VALLEY])),
            time(start // 60, start % 60),
            time((end // 60) % 24, end % 60),
        )
        for start, end in pairwise(bounds)
    )
    return TouSchedule(windows, months=months)


@st.composite
def time_of_use(draw: st.DrawFn) -> TimeOfUse:
    split = draw(st.integers(1, 12))
    seasons = [frozenset(range(1, split)), frozenset(range(split, 13))]
    schedules = tuple(draw(day_schedules(season)) for season in seasons if season)
    peak = (
        PeriodPrice(Period.PEAK, price=draw(prices))
        if draw(st.booleans())
        else PeriodPrice(Period.PEAK, multiplier=draw(factors))
    )
    return TimeOfUse(
        (
            PeriodPrice(Period.TIP, multiplier=draw(factors), of=Period.PEAK),
            peak,
            PeriodPrice(Period.FLAT, multiplier=draw(factors)),
            PeriodPrice(Period.VALLEY, price=draw(prices)),
        ),
        schedules,
    )


@st.composite
def components(draw: st.DrawFn) -> TariffComponents:
    codes = draw(st.lists(st.sampled_from(["sewage", "water_resource", "rubbish"]), unique=True))
    tou = draw(st.none() | time_of_use())
    return TariffComponents(
        EnergyPrice(draw(prices)),
        tiers=draw(st.none() | tier_sets(absolute=tou is None)),
        time_of_use=tou,
        surcharges=tuple(
            Surcharge(code, "附加费", draw(prices), draw(st.booleans())) for code in codes
        ),
        fixed_fees=tuple(
            FixedFee(code, "固定费", Money(draw(st.integers(1, 100_000)))) for code in codes
        ),
        topup_fee=draw(st.none() | st.builds(TopUpFee, fixed=st.integers(1, 999).map(Money))),
    )


@given(components())
def test_from_dict_of_to_dict_is_the_same_tariff(tariff: TariffComponents) -> None:
    stored = json.loads(json.dumps(tariff.to_dict()))
    assert TariffComponents.from_dict(stored) == tariff
    assert TariffComponents.from_dict(stored).to_dict() == tariff.to_dict()
