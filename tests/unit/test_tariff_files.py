"""Tariff files and quote profiles: exact numbers, errors that name the field, round trips."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from meterpay.kernel.money import Money
from meterpay.kernel.quantity import Utility
from meterpay.tariffs.components import EnergyPrice, Period, TariffComponents, TariffInvalid
from meterpay.tariffs.files import (
    FileFormat,
    ProfileInvalid,
    TariffDoc,
    VersionDoc,
    dump_tariff,
    load_profile,
    load_tariff,
    parse_text,
    tariff_from_data,
)
from meterpay.tariffs.rules import TierState, quote

DOCS = Path(__file__).resolve().parents[2] / "docs" / "tariffs.md"
CHINA = timezone(timedelta(hours=8))

BEIJING_YAML = """\
code: bj-residential
name: 北京居民阶梯电价
utility: electricity
effective_from: 2026-01-01T00:00:00+08:00
components:
  energy: {unit_price: 0.4883}
  tiers:
    cycle: yearly
    steps:
      - {up_to: 2880, markup: 0}
      - {up_to: 4800, markup: 0.05}
      - {up_to: null, markup: 0.30}
"""
SHANGHAI_TOU = {
    "energy": {"unit_price": "0.617"},
    "time_of_use": {
        "prices": {"peak": {"price": "0.617"}, "valley": {"price": "0.307"}},
        "schedules": [
            {
                "windows": [
                    {"period": "peak", "start": "06:00", "end": "22:00"},
                    {"period": "valley", "start": "22:00", "end": "06:00"},
                ]
            }
        ],
    },
    "surcharges": [{"code": "levy", "name": "附加费", "unit_price": "0.0100"}],
    "topup_fee": {"percent": "1"},
}


def refusal(text: str, fmt: FileFormat = FileFormat.YAML) -> TariffInvalid:
    with pytest.raises(TariffInvalid) as caught:
        load_tariff(text, fmt)
    return caught.value


# --- reading numbers exactly ------------------------------------------------------------------


def test_plain_yaml_numbers_are_read_as_the_exact_decimals_written() -> None:
    """0.4883 is Decimal("0.4883"), never the binary float nearest to it."""
    doc = load_tariff(BEIJING_YAML, FileFormat.YAML)
    components = doc.versions[0].components
    assert components.energy.unit_price == Decimal("0.4883")
    assert components.tiers is not None
    assert [step.up_to for step in components.tiers.steps] == [Decimal(2880), Decimal(4800), None]
    assert components.tiers.steps[2].markup == Decimal("0.30")
    assert parse_text("a: 0.1\nb: 12\n", FileFormat.YAML) == {"a": Decimal("0.1"), "b": 12}


def test_times_of_day_stay_text_instead_of_yaml_base_60_numbers() -> None:
    """YAML 1.1 reads an unquoted 22:00 as 1320; a tariff file reads it as 22:00."""
    assert parse_text("start: 22:00\nend: 06:00\n", FileFormat.YAML) == {
        "start": "22:00",
        "end": "06:00",
    }


def test_leading_zeros_and_timestamps_are_not_reinterpreted() -> None:
    """010 is ten (not octal eight); a timestamp stays text until read with its offset."""
    data = parse_text("n: 010\nat: 2026-01-01T00:00:00+08:00\n", FileFormat.YAML)
    assert data == {"n": 10, "at": "2026-01-01T00:00:00+08:00"}


def test_json_decimals_are_exact() -> None:
    assert parse_text('{"p": 0.4883, "n": 3}', FileFormat.JSON) == {"p": Decimal("0.4883"), "n": 3}


def test_a_float_that_already_lost_its_digits_is_refused_naming_the_field() -> None:
    """Data from a plain YAML loader carries floats: the price field says to write text."""
    data = yaml.safe_load(BEIJING_YAML)
    assert isinstance(data["components"]["energy"]["unit_price"], float)
    with pytest.raises(TariffInvalid) as caught:
        tariff_from_data(data)
    assert caught.value.field == "components.energy.unit_price"
    assert "as text" in caught.value.rule


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_json_nan_and_infinity_are_refused(constant: str) -> None:
    assert refusal(f'{{"p": {constant}}}', FileFormat.JSON).field == "(file)"


def test_a_yaml_infinity_is_refused_by_the_field_that_reads_it() -> None:
    text = BEIJING_YAML.replace("unit_price: 0.4883", "unit_price: .inf")
    assert refusal(text).field == "components.energy.unit_price"


# --- errors that name the field ---------------------------------------------------------------


def test_an_error_deep_in_a_later_version_names_its_whole_path() -> None:
    text = """\
code: t
name: 电价
utility: electricity
versions:
  - effective_from: 2026-01-01T00:00:00+08:00
    components: {energy: {unit_price: "0.5"}}
  - effective_from: 2026-07-01T00:00:00+08:00
    components:
      energy: {unit_price: "0.5"}
      tiers:
        cycle: yearly
        steps:
          - {up_to: "2880", markup: "0"}
          - {up_to: "100", markup: "0.05"}
          - {up_to: null, markup: "0.3"}
"""
    problem = refusal(text)
    assert problem.field == "versions[1].components.tiers.steps[1].up_to"
    assert "previous step" in problem.rule


def test_a_key_given_twice_is_refused_not_overridden() -> None:
    text = BEIJING_YAML.replace(
        "energy: {unit_price: 0.4883}", "energy: {unit_price: 0.4883}\n  energy: {unit_price: 0.1}"
    )
    problem = refusal(text)
    assert (problem.field, problem.rule) == ("energy", "is given twice (line 7)")
    assert refusal('{"code": "a", "code": "b"}', FileFormat.JSON).field == "code"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (("utility: electricity", "utility: gas"), "utility"),
        (("code: bj-residential", "code: 北京"), "code"),
        (
            ("effective_from: 2026-01-01T00:00:00+08:00", "effective_from: 2026-01-01T00:00:00"),
            "effective_from",
        ),
        (
            ("effective_from: 2026-01-01T00:00:00+08:00", "effective_from: next year"),
            "effective_from",
        ),
        (("name: 北京居民阶梯电价", "name: ''"), "name"),
        (("cycle: yearly", "cycle: weekly"), "components.tiers.cycle"),
        (("code: bj-residential", "code: bj\ncolour: red"), "colour"),
    ],
)
def test_a_bad_value_is_refused_naming_its_field(change: tuple[str, str], field: str) -> None:
    assert refusal(BEIJING_YAML.replace(*change)).field == field


def test_a_file_needs_effective_from_and_components_or_versions_not_both() -> None:
    without = BEIJING_YAML.split("effective_from", maxsplit=1)[0]
    assert refusal(without).field == "effective_from"
    both = BEIJING_YAML + "versions: []\n"
    assert refusal(both).field == "effective_from"


def test_versions_must_follow_each_other_in_time() -> None:
    text = """\
code: t
name: 电价
utility: water
versions:
  - {effective_from: 2026-07-01T00:00:00+08:00, components: {energy: {unit_price: "5"}}}
  - {effective_from: 2026-01-01T00:00:00+08:00, components: {energy: {unit_price: "6"}}}
"""
    problem = refusal(text)
    assert problem.field == "versions[1].effective_from"
    assert refusal(text.split("versions:", maxsplit=1)[0] + "versions: []\n").field == "versions"


def test_text_that_is_not_yaml_or_json_is_refused_with_its_line() -> None:
    assert "line 2" in refusal("code: t\nname: a: b\n").rule
    assert "line 1" in refusal('{"code": ', FileFormat.JSON).rule


# --- writing back -----------------------------------------------------------------------------


def a_tariff(*prices: tuple[datetime, TariffComponents]) -> TariffDoc:
    versions = tuple(VersionDoc(at, components) for at, components in prices)
    return TariffDoc("sh-tou", "上海居民峰谷电价", Utility.ELECTRICITY, versions)


NEW_YEAR = datetime(2025, 12, 31, 16, tzinfo=UTC)
JULY = datetime(2026, 6, 30, 16, tzinfo=UTC)


@pytest.mark.parametrize("fmt", [FileFormat.YAML, FileFormat.JSON])
@pytest.mark.parametrize("versions", [1, 2])
def test_an_exported_tariff_imports_as_the_same_tariff(fmt: FileFormat, versions: int) -> None:
    """Every component and every version survives the trip, in both formats."""
    doc = a_tariff(
        (NEW_YEAR, TariffComponents.from_dict(SHANGHAI_TOU)),
        (JULY, TariffComponents(EnergyPrice(Decimal("0.6170")))),
    )
    doc = TariffDoc(doc.code, doc.name, doc.utility, doc.versions[:versions])
    assert load_tariff(dump_tariff(doc, fmt), fmt) == doc
    assert load_tariff(dump_tariff(doc, fmt, CHINA), fmt) == doc


def test_exported_yaml_is_readable_chinese_in_the_sites_time_zone() -> None:
    text = dump_tariff(
        a_tariff((NEW_YEAR, TariffComponents.from_dict(SHANGHAI_TOU))), FileFormat.YAML, CHINA
    )
    assert "name: 上海居民峰谷电价" in text
    assert "effective_from: '2026-01-01T00:00:00+08:00'" in text
    assert "\\u" not in text
    assert "fixed_fees" not in text  # unused components are left out


def test_export_keeps_the_short_shape_for_one_version_and_lists_several() -> None:
    one = yaml.safe_load(
        dump_tariff(a_tariff((NEW_YEAR, TariffComponents.from_dict(SHANGHAI_TOU))), FileFormat.YAML)
    )
    assert list(one) == ["code", "name", "utility", "effective_from", "components"]
    flat = TariffComponents(EnergyPrice(Decimal("0.5")))
    two = yaml.safe_load(dump_tariff(a_tariff((NEW_YEAR, flat), (JULY, flat)), FileFormat.YAML))
    assert list(two) == ["code", "name", "utility", "versions"]


# --- the tariffs in docs/tariffs.md -----------------------------------------------------------


def documented_tariffs() -> dict[str, TariffDoc]:
    blocks = re.findall(r"```yaml\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.S)
    docs = [load_tariff(block, FileFormat.YAML) for block in blocks if block.startswith("code:")]
    return {doc.code: doc for doc in docs}


A_YEAR = (datetime(2026, 1, 1, tzinfo=CHINA), datetime(2027, 1, 1, tzinfo=CHINA))
JUNE = (datetime(2026, 6, 1, tzinfo=CHINA), datetime(2026, 7, 1, tzinfo=CHINA))


def test_the_documented_tariffs_quote_the_reference_amounts() -> None:
    """The YAML a newcomer copies from docs/tariffs.md gives 1470.90, 154.10 and 1040.00 元."""
    found = documented_tariffs()
    assert {"bj-residential", "sh-residential-tou", "bj-water"} <= set(found)

    def priced(code: str, text: str) -> Money:
        return quote(
            found[code].versions[0].components, load_profile(text, FileFormat.CSV).usages
        ).total

    year = f"quantity,start,end\n{{}},{A_YEAR[0].isoformat()},{A_YEAR[1].isoformat()}\n"
    june = f"quantity,start,end\n300,{JUNE[0].isoformat()},{JUNE[1].isoformat()}\n"
    assert priced("bj-residential", year.format(3000)) == Money.from_yuan("1470.90")
    assert priced("sh-residential-tou", june) == Money.from_yuan("154.10")
    water_use = load_profile(year.format(200), FileFormat.CSV).usages
    water = quote(found["bj-water"].versions[0].components, water_use)
    assert water.total == Money.from_yuan("1040.00")
    assert {k: str(v) for k, v in water.totals.items()} == {
        "energy": "454.00",
        "surcharge:water_resource": "314.00",
        "surcharge:sewage": "272.00",
    }


# --- profiles ---------------------------------------------------------------------------------


def test_a_csv_profile_carries_register_deltas_when_given() -> None:
    text = (
        "\ufeffquantity,start,end,peak,valley\n"
        "300,2026-06-01T00:00:00+08:00,2026-07-01T00:00:00+08:00,200,100\n"
        "10,2026-07-01T00:00:00+08:00,2026-07-02T00:00:00+08:00,,\n"
    )
    first, second = load_profile(text, FileFormat.CSV).usages
    assert first.quantity == Decimal(300)
    assert first.registers == {Period.PEAK: Decimal(200), Period.VALLEY: Decimal(100)}
    assert first.start == JUNE[0]
    assert second.registers is None


def test_a_yaml_profile_may_start_from_a_tier_state() -> None:
    text = """\
state: {cycle_start: 2026-01-01, consumed: 2000}
profile:
  - {quantity: 1000, start: 2026-06-01T00:00:00+08:00, end: 2026-07-01T00:00:00+08:00}
"""
    doc = load_profile(text, FileFormat.YAML)
    assert doc.state == TierState(date(2026, 1, 1), Decimal(2000))
    assert [u.quantity for u in doc.usages] == [Decimal(1000)]


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("quantity,start\n1,2026-06-01T00:00:00+08:00\n", "header"),
        ("quantity,start,end,kwh\n", "header"),
        ("quantity,start,end\n", "rows"),
        ("quantity,start,end\n1,2026-06-01T00:00:00,2026-06-02T00:00:00+08:00\n", "row 2.start"),
        (
            "quantity,start,end\nabc,2026-06-01T00:00:00+08:00,2026-06-02T00:00:00+08:00\n",
            "row 2.quantity",
        ),
        (
            "quantity,start,end\n1.00001,2026-06-01T00:00:00+08:00,2026-06-02T00:00:00+08:00\n",
            "row 2.quantity",
        ),
        (
            "quantity,start,end\n1,2026-06-02T00:00:00+08:00,2026-06-01T00:00:00+08:00\n",
            "row 2.end",
        ),
        (
            "quantity,start,end,peak\n1,2026-06-01T00:00:00+08:00,2026-06-02T00:00:00+08:00,-1\n",
            "row 2.registers.peak",
        ),
    ],
)
def test_a_bad_csv_profile_names_the_row_and_column(text: str, field: str) -> None:
    with pytest.raises(ProfileInvalid) as caught:
        load_profile(text, FileFormat.CSV)
    assert caught.value.details["field"] == field


def test_a_bad_yaml_profile_names_the_item_and_key() -> None:
    with pytest.raises(ProfileInvalid) as caught:
        load_profile("- {quantity: 1, start: 2026-06-01T00:00:00+08:00}\n", FileFormat.YAML)
    assert caught.value.details["field"] == "profile[0].end"
    text = """\
state: {cycle_start: someday}
profile: [{quantity: 1, start: 2026-06-01T00:00:00+08:00, end: 2026-06-02T00:00:00+08:00}]
"""
    with pytest.raises(ProfileInvalid) as caught:
        load_profile(text, FileFormat.YAML)
    assert caught.value.details["field"] == "state.cycle_start"
