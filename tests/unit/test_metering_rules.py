"""Reading validation: what bills, what is kept aside, and how much a reading bills."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterpay.kernel.quantity import InvalidQuantity
from meterpay.metering.model import (
    Assessment,
    LastAccepted,
    MeterProfile,
    QualityFlag,
    ReadingQuality,
)
from meterpay.metering.rules import assess_reading, register_deltas, with_link_flags

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
PLAIN = MeterProfile(multiplier=1)
FIVE_DIGIT = MeterProfile(multiplier=1, register_capacity=Decimal("100000"))


def d(text: str) -> Decimal:
    return Decimal(text)


def assess(
    profile: MeterProfile,
    last: LastAccepted | None,
    read_at: datetime,
    total: str,
    received_at: datetime | None = None,
) -> Assessment:
    """Assess a reading received as soon as it was taken, unless told otherwise."""
    return assess_reading(profile, last, read_at, d(total), received_at or read_at)


def billed_total(profile: MeterProfile, readings: Iterable[tuple[datetime, str]]) -> Decimal:
    """Feed readings in arrival order, as the service does, and add up what they bill."""
    last: LastAccepted | None = None
    billed = Decimal(0)
    for read_at, total in readings:
        assessment = assess(profile, last, read_at, total)
        billed += assessment.consumption
        if assessment.advances:
            last = LastAccepted(read_at, d(total))
    return billed


# --- baseline, valid -------------------------------------------------------------------------


def test_first_reading_of_a_meter_is_a_baseline_that_bills_nothing() -> None:
    assessment = assess(PLAIN, None, T0, "1234.5")
    assert assessment == Assessment(
        ReadingQuality.BASELINE, (QualityFlag.FIRST_READING,), d("0"), advances=True
    )
    assert not assessment.billed


def test_consumption_is_the_register_advance_times_the_multiplier() -> None:
    profile = MeterProfile(multiplier=80)
    assessment = assess(profile, LastAccepted(T0, d("100.25")), T0 + HOUR, "112.2525")
    assert assessment.quality is ReadingQuality.VALID
    assert assessment.flags == ()
    assert assessment.consumption == d("960.2000")
    assert assessment.advances
    assert assessment.billed


def test_consumption_carries_four_decimals() -> None:
    assessment = assess(PLAIN, LastAccepted(T0, d("1")), T0 + HOUR, "1.0001")
    assert str(assessment.consumption) == "0.0001"


def test_an_unchanged_register_is_valid_and_bills_zero() -> None:
    assessment = assess(PLAIN, LastAccepted(T0, d("50")), T0 + HOUR, "50")
    assert assessment.quality is ReadingQuality.VALID
    assert assessment.consumption == 0
    assert assessment.advances


# --- late ------------------------------------------------------------------------------------


def test_reading_older_than_last_is_late_and_never_billed() -> None:
    assessment = assess(PLAIN, LastAccepted(T0, d("100")), T0 - HOUR, "90")
    assert assessment == Assessment(ReadingQuality.LATE, (QualityFlag.LATE,), d("0"), False)


def test_reading_at_the_same_moment_as_last_is_late_even_if_the_register_advanced() -> None:
    assessment = assess(PLAIN, LastAccepted(T0, d("100")), T0, "105")
    assert assessment.quality is ReadingQuality.LATE
    assert assessment.consumption == 0
    assert not assessment.advances


def test_a_redelivered_reading_never_bills_twice() -> None:
    readings = [(T0, "10"), (T0 + HOUR, "15"), (T0 + HOUR, "15"), (T0 + 2 * HOUR, "18")]
    assert billed_total(PLAIN, readings) == d("8")


# --- future ----------------------------------------------------------------------------------


def test_reading_from_beyond_the_tolerance_is_suspect_future() -> None:
    assessment = assess(PLAIN, LastAccepted(T0, d("1")), T0 + HOUR, "2", received_at=T0 + HOUR / 2)
    assert assessment == Assessment(ReadingQuality.SUSPECT, (QualityFlag.FUTURE,), d("0"), False)


def test_reading_within_the_tolerance_of_receipt_is_accepted() -> None:
    received = T0 + HOUR - timedelta(minutes=5)
    assessment = assess(PLAIN, LastAccepted(T0, d("1")), T0 + HOUR, "2", received_at=received)
    assert assessment.quality is ReadingQuality.VALID


def test_future_tolerance_can_be_tightened() -> None:
    assessment = assess_reading(
        PLAIN,
        LastAccepted(T0, d("1")),
        T0 + HOUR,
        d("2"),
        T0 + HOUR - timedelta(seconds=1),
        future_tolerance=timedelta(0),
    )
    assert assessment.flags == (QualityFlag.FUTURE,)


def test_future_is_checked_before_baseline_and_late() -> None:
    early_receipt = T0 - timedelta(days=1)
    assert assess(PLAIN, None, T0, "1", early_receipt).flags == (QualityFlag.FUTURE,)
    late_and_future = assess(PLAIN, LastAccepted(T0, d("5")), T0, "1", early_receipt)
    assert late_and_future.flags == (QualityFlag.FUTURE,)


# --- backwards and rollover ------------------------------------------------------------------


def test_register_going_backwards_on_a_never_wrapping_meter_is_suspect() -> None:
    assessment = assess(PLAIN, LastAccepted(T0, d("99999")), T0 + HOUR, "3")
    assert assessment == Assessment(ReadingQuality.SUSPECT, (QualityFlag.BACKWARDS,), d("0"), False)


def test_wrap_from_the_top_tenth_to_the_bottom_tenth_is_a_rollover_when_rate_is_unknown() -> None:
    profile = MeterProfile(multiplier=10, register_capacity=d("100000"))
    assessment = assess(profile, LastAccepted(T0, d("99990.5")), T0 + HOUR, "12.25")
    assert assessment.quality is ReadingQuality.VALID
    assert assessment.flags == (QualityFlag.ROLLOVER,)
    assert assessment.consumption == (d("100000") - d("99990.5") + d("12.25")) * 10
    assert assessment.consumption == d("217.5000")


@pytest.mark.parametrize(
    ("last_total", "total"),
    [("89999.9999", "5"), ("95000", "10000"), ("50000", "10")],
)
def test_backwards_step_outside_the_wrap_bands_is_suspect_when_rate_is_unknown(
    last_total: str, total: str
) -> None:
    assessment = assess(FIVE_DIGIT, LastAccepted(T0, d(last_total)), T0 + HOUR, total)
    assert assessment.flags == (QualityFlag.BACKWARDS,)
    assert not assessment.advances


def test_wrap_band_edges_are_top_inclusive_and_bottom_exclusive() -> None:
    last = LastAccepted(T0, d("90000"))
    assert assess(FIVE_DIGIT, last, T0 + HOUR, "9999.9999").flags == (QualityFlag.ROLLOVER,)
    assert assess(FIVE_DIGIT, last, T0 + HOUR, "10000").flags == (QualityFlag.BACKWARDS,)


def test_wrap_the_meter_could_have_passed_is_a_rollover_when_rate_is_known() -> None:
    profile = MeterProfile(multiplier=1, register_capacity=d("10000"), max_rate_per_hour=d("60"))
    assessment = assess(profile, LastAccepted(T0, d("9000")), T0 + 24 * HOUR, "400")
    assert assessment.flags == (QualityFlag.ROLLOVER,)
    assert assessment.consumption == d("1400")


def test_wrap_faster_than_the_meter_could_pass_is_backwards_when_rate_is_known() -> None:
    profile = MeterProfile(multiplier=1, register_capacity=d("10000"), max_rate_per_hour=d("60"))
    assessment = assess(profile, LastAccepted(T0, d("9999")), T0 + HOUR, "9000")
    assert assessment.flags == (QualityFlag.BACKWARDS,)


def test_known_rate_overrides_the_wrap_bands() -> None:
    """A plausible wrap from the middle of the register is believed once the rate is known."""
    profile = MeterProfile(multiplier=1, register_capacity=d("100"), max_rate_per_hour=d("10"))
    assessment = assess(profile, LastAccepted(T0, d("50")), T0 + 10 * HOUR, "40")
    assert assessment.flags == (QualityFlag.ROLLOVER,)
    assert assessment.consumption == d("90")


@st.composite
def wrapped_registers(draw: st.DrawFn) -> tuple[Decimal, Decimal, Decimal]:
    """A register capacity, a last value and a new value below it (the register wrapped)."""
    capacity_units = 10 ** draw(st.integers(min_value=1, max_value=8)) * 10_000
    last_units = draw(st.integers(min_value=1, max_value=capacity_units - 1))
    new_units = draw(st.integers(min_value=0, max_value=last_units - 1))

    def register(units: int) -> Decimal:
        return Decimal(units).scaleb(-4)

    return register(capacity_units), register(last_units), register(new_units)


@given(registers=wrapped_registers(), multiplier=st.integers(min_value=1, max_value=2000))
def test_rollover_consumption_is_the_advance_through_the_wrap_point(
    registers: tuple[Decimal, Decimal, Decimal], multiplier: int
) -> None:
    capacity, last_total, total = registers
    # the meter could pass a whole register in the hour, so every wrap is plausible
    profile = MeterProfile(multiplier, capacity, max_rate_per_hour=capacity * multiplier)
    assessment = assess_reading(
        profile, LastAccepted(T0, last_total), T0 + HOUR, total, received_at=T0 + HOUR
    )
    assert assessment.quality is ReadingQuality.VALID
    assert assessment.flags == (QualityFlag.ROLLOVER,)
    assert assessment.consumption == (capacity - last_total + total) * multiplier
    assert assessment.consumption == ((total + capacity) - last_total) % capacity * multiplier


# --- impossible values -----------------------------------------------------------------------


def test_reading_at_or_beyond_the_register_capacity_is_suspect() -> None:
    last = LastAccepted(T0, d("99999"))
    assert assess(FIVE_DIGIT, last, T0 + HOUR, "100000").flags == (QualityFlag.OUT_OF_RANGE,)
    assert assess(FIVE_DIGIT, None, T0, "123456").quality is ReadingQuality.SUSPECT
    assert assess(FIVE_DIGIT, last, T0 + HOUR, "99999.9999").quality is ReadingQuality.VALID


def test_negative_register_value_is_suspect_even_as_a_first_reading() -> None:
    assessment = assess(PLAIN, None, T0, "-0.0001")
    assert assessment == Assessment(
        ReadingQuality.SUSPECT, (QualityFlag.OUT_OF_RANGE,), d("0"), False
    )


# --- spikes ----------------------------------------------------------------------------------


def test_consumption_beyond_the_meters_physical_maximum_is_a_suspect_spike() -> None:
    profile = MeterProfile(multiplier=1, max_rate_per_hour=d("10"))
    assessment = assess(profile, LastAccepted(T0, d("0")), T0 + HOUR / 2, "5.0001")
    assert assessment == Assessment(ReadingQuality.SUSPECT, (QualityFlag.SPIKE,), d("0"), False)


def test_consumption_exactly_at_the_physical_maximum_is_valid() -> None:
    profile = MeterProfile(multiplier=1, max_rate_per_hour=d("10"))
    assessment = assess(profile, LastAccepted(T0, d("0")), T0 + HOUR / 2, "5")
    assert assessment.quality is ReadingQuality.VALID
    assert assessment.consumption == d("5")


def test_spike_check_counts_the_multiplier() -> None:
    """The maximum rate is in billed units: 1 register kWh on a 50x meter is 50 kWh."""
    profile = MeterProfile(multiplier=50, max_rate_per_hour=d("40"))
    assessment = assess(profile, LastAccepted(T0, d("0")), T0 + HOUR, "1")
    assert assessment.flags == (QualityFlag.SPIKE,)


def test_meter_with_unknown_maximum_rate_is_never_a_spike() -> None:
    assessment = assess(PLAIN, LastAccepted(T0, d("0")), T0 + timedelta(seconds=1), "99999")
    assert assessment.quality is ReadingQuality.VALID


def test_suspect_reading_does_not_move_the_starting_point() -> None:
    """After a spike, the next good reading bills from the last accepted one."""
    profile = MeterProfile(multiplier=1, max_rate_per_hour=d("10"))
    readings = [(T0, "100"), (T0 + HOUR, "900"), (T0 + 2 * HOUR, "115")]
    assert billed_total(profile, readings) == d("15")


# --- meter replacement -----------------------------------------------------------------------


def test_replacement_bills_old_final_minus_old_last_plus_new_reading_minus_new_initial() -> None:
    """换表: the old meter's final reading bills as usual; the new one starts from its initial."""
    old = MeterProfile(multiplier=1)
    new = MeterProfile(multiplier=1)
    old_last = LastAccepted(T0, d("4520.5"))
    final = assess(old, old_last, T0 + 5 * HOUR, "4530.75")
    install_at = T0 + 6 * HOUR
    initial = assess(new, None, install_at, "0.8")
    new_last = LastAccepted(install_at, d("0.8"))
    later = assess(new, new_last, install_at + 10 * HOUR, "12.3")
    assert initial.quality is ReadingQuality.BASELINE
    billed = final.consumption + initial.consumption + later.consumption
    assert billed == (d("4530.75") - d("4520.5")) + (d("12.3") - d("0.8"))
    assert billed == d("21.7500")


# --- inputs and invariants -------------------------------------------------------------------


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        assess_reading(PLAIN, None, datetime(2025, 1, 1), d("1"), T0)  # noqa: DTZ001  the point


@pytest.mark.parametrize("total", [Decimal("1.00001"), 1.5])
def test_register_value_that_is_too_precise_or_a_float_is_refused(total: object) -> None:
    with pytest.raises(InvalidQuantity):
        assess_reading(PLAIN, None, T0, total, T0)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"multiplier": 0},
        {"multiplier": True},
        {"multiplier": Decimal("2")},
        {"multiplier": 1, "register_capacity": Decimal("0")},
        {"multiplier": 1, "max_rate_per_hour": Decimal("-1")},
        {"multiplier": 1, "max_rate_per_hour": 10},
    ],
)
def test_meter_profile_refuses_impossible_settings(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        MeterProfile(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("quality", "consumption", "advances"),
    [
        (ReadingQuality.SUSPECT, "0", True),
        (ReadingQuality.LATE, "0", True),
        (ReadingQuality.VALID, "1", False),
        (ReadingQuality.BASELINE, "1", True),
        (ReadingQuality.VALID, "-1", True),
        (ReadingQuality.VALID, "0.00001", True),
    ],
)
def test_assessment_refuses_contradictions(
    quality: ReadingQuality, consumption: str, advances: bool
) -> None:
    with pytest.raises(ValueError):
        Assessment(quality, (), d(consumption), advances)


register_values = st.decimals(
    min_value=-10, max_value=200_000, places=4, allow_nan=False, allow_infinity=False
)


@given(
    multiplier=st.integers(min_value=1, max_value=500),
    capacity=st.sampled_from([None, d("10000"), d("100000")]),
    max_rate=st.sampled_from([None, d("1"), d("60"), d("5000")]),
    last_total=st.one_of(st.none(), st.decimals(min_value=0, max_value=9999, places=4)),
    total=register_values,
    minutes_after=st.integers(min_value=-600, max_value=6000),
    minutes_received=st.integers(min_value=-60, max_value=60),
)
def test_every_assessment_keeps_its_invariants(
    *,
    multiplier: int,
    capacity: Decimal | None,
    max_rate: Decimal | None,
    last_total: Decimal | None,
    total: Decimal,
    minutes_after: int,
    minutes_received: int,
) -> None:
    profile = MeterProfile(multiplier, capacity, max_rate)
    last = None if last_total is None else LastAccepted(T0, last_total)
    read_at = T0 + timedelta(minutes=minutes_after)
    received_at = read_at + timedelta(minutes=minutes_received)
    assessment = assess_reading(profile, last, read_at, total, received_at)
    assert assessment.consumption >= 0
    assert assessment.advances == (assessment.quality in {"valid", "baseline"})
    if assessment.quality is not ReadingQuality.VALID:
        assert assessment.consumption == 0
    if assessment.quality is ReadingQuality.VALID and QualityFlag.ROLLOVER not in assessment.flags:
        assert last is not None
        assert assessment.consumption == (total - last.total) * multiplier
    if max_rate is not None and last is not None and assessment.billed:
        hours = Decimal(minutes_after) / 60
        assert assessment.consumption <= max_rate * hours


@given(
    multiplier=st.integers(min_value=1, max_value=100),
    steps=st.lists(
        st.tuples(st.integers(min_value=1, max_value=600), st.integers(0, 10**8)),
        min_size=1,
        max_size=30,
    ),
    redeliveries=st.lists(st.integers(min_value=0), max_size=10),
)
def test_a_run_of_readings_bills_last_minus_first_whatever_is_redelivered(
    multiplier: int, steps: list[tuple[int, int]], redeliveries: list[int]
) -> None:
    """Late and duplicate readings never bill twice; the run bills its whole advance."""
    moment, units = T0, 10**6
    readings = [(moment, str(Decimal(units).scaleb(-4)))]
    for minutes, advance in steps:
        moment, units = moment + timedelta(minutes=minutes), units + advance
        readings.append((moment, str(Decimal(units).scaleb(-4))))
        for pick in redeliveries[: len(readings) % 3]:
            readings.append(readings[pick % len(readings)])
    expected = (Decimal(units) - Decimal(10**6)).scaleb(-4) * multiplier
    assert billed_total(MeterProfile(multiplier), readings) == expected


def test_register_deltas_give_each_period_its_consumption_times_the_multiplier() -> None:
    """Peak 600 -> 800 and valley 400 -> 500 on a 倍率 2 meter: 400 and 200."""
    before = (None, Decimal("600"), None, Decimal("400"))
    after = (None, Decimal("800"), None, Decimal("500"))
    assert register_deltas(MeterProfile(multiplier=2), before, after) == {
        "peak": Decimal("400"),
        "valley": Decimal("200"),
    }


def test_a_register_going_backwards_means_price_by_time_instead() -> None:
    """A reset or wrapped TOU register says nothing reliable about the split."""
    before = (None, Decimal("600"), None, Decimal("400"))
    after = (None, Decimal("500"), None, Decimal("500"))
    assert register_deltas(MeterProfile(), before, after) is None
    assert register_deltas(MeterProfile(), None, after) is None


def test_a_long_billed_interval_is_flagged_as_a_gap_and_still_billed() -> None:
    """Six hours without a reading bills the whole advance, flagged so a person can see why."""
    verdict = assess(PLAIN, LastAccepted(T0, d("10")), T0 + 6 * HOUR, "16")
    flagged = with_link_flags(
        verdict,
        elapsed=6 * HOUR,
        gap_after=3 * HOUR,
        meter_time=None,
        received_at=T0 + 6 * HOUR,
        skew_tolerance=timedelta(minutes=5),
    )
    assert (flagged.quality, flagged.consumption) == (ReadingQuality.VALID, d("6.0000"))
    assert flagged.flags == (QualityFlag.GAP,)


@given(st.integers(min_value=-3600, max_value=3600))
def test_a_meter_clock_is_flagged_exactly_when_it_is_off_beyond_the_tolerance(
    seconds: int,
) -> None:
    """The clock flag changes nothing billed, whichever way the clock is off."""
    now = T0 + HOUR
    verdict = assess(PLAIN, LastAccepted(T0, d("10")), now, "11")
    flagged = with_link_flags(
        verdict,
        elapsed=HOUR,
        gap_after=3 * HOUR,
        meter_time=now + timedelta(seconds=seconds),
        received_at=now,
        skew_tolerance=timedelta(minutes=5),
    )
    assert (flagged.consumption, flagged.quality) == (verdict.consumption, verdict.quality)
    assert (QualityFlag.CLOCK_SKEW in flagged.flags) is (abs(seconds) > 300)


def test_a_late_reading_is_never_flagged_as_a_gap() -> None:
    """Only billed intervals can be gaps: a late reading bills nothing."""
    late = assess(PLAIN, LastAccepted(T0, d("10")), T0 - HOUR, "9")
    flagged = with_link_flags(
        late,
        elapsed=None,
        gap_after=HOUR,
        meter_time=None,
        received_at=T0,
        skew_tolerance=timedelta(minutes=5),
    )
    assert flagged == late
