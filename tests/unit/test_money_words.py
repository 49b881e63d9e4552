"""Amounts in Chinese capital numerals (大写金额), as receipts write them: the examples of
《正确填写票据和结算凭证的基本规定》, and properties over every amount up to the limit."""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from meterpay.kernel.money_words import DIGITS, LARGEST_FEN, capital_yuan

_PLACE = {"拾": 10, "佰": 100, "仟": 1000}
_ALLOWED = re.compile(r"^负?[零壹贰叁肆伍陆柒捌玖拾佰仟万亿元角分整]+$")


def _read(words: str) -> int:
    """Capital numerals back to fen, written independently of the module: each digit
    waits for its place (拾佰仟), 万 scales the group read so far, 亿 everything."""
    sign = -1 if words.startswith("负") else 1
    words = words.removeprefix("负").removesuffix("整")
    yuan_part, _, small = words.rpartition("元") if "元" in words else ("", "", words)
    total = group = digit = 0
    for char in yuan_part:
        if char in DIGITS:
            digit = DIGITS.index(char)
        elif char in _PLACE:
            group, digit = group + digit * _PLACE[char], 0
        elif char == "万":
            group, digit = (group + digit) * 10_000, 0
        elif char == "亿":
            total, group, digit = (total + group + digit) * 100_000_000, 0, 0
    fen = (total + group + digit) * 100
    for number, unit in re.findall(r"([壹贰叁肆伍陆柒捌玖])([角分])", small):
        fen += DIGITS.index(number) * (10 if unit == "角" else 1)
    return sign * fen


@pytest.mark.parametrize(
    ("fen", "words"),
    [
        # the rules' own examples
        (140950, "壹仟肆佰零玖元伍角"),
        (600714, "陆仟零柒元壹角肆分"),
        (168032, "壹仟陆佰捌拾元叁角贰分"),  # the optional 零 before 叁角 is not written
        (10700053, "壹拾万柒仟元伍角叁分"),
        (1640902, "壹万陆仟肆佰零玖元零贰分"),
        (32504, "叁佰贰拾伍元零肆分"),
        # whole yuan end in 整; 角 and 分 end in themselves
        (10000, "壹佰元整"),
        (1050, "壹拾元伍角"),
        (1001, "壹拾元零壹分"),
        (100000001, "壹佰万元零壹分"),
        (1500, "壹拾伍元整"),
        (11000000, "壹拾壹万元整"),
        # zeros inside and between the 万 and 亿 groups
        (10070000, "壹拾万零柒佰元整"),
        (100000100, "壹佰万零壹元整"),
        (10000000000, "壹亿元整"),
        (100001000000, "壹拾亿零壹万元整"),
        (1000100000000, "壹佰亿零壹佰万元整"),
        (200000000000, "贰拾亿元整"),
        # below one yuan, and nothing
        (50, "伍角"),
        (5, "伍分"),
        (15, "壹角伍分"),
        (0, "零元整"),
        (-1050, "负壹拾元伍角"),
        (LARGEST_FEN, "玖仟玖佰玖拾玖亿玖仟玖佰玖拾玖万玖仟玖佰玖拾玖元玖角玖分"),
    ],
)
def test_known_amounts_are_written_as_receipts_write_them(fen: int, words: str) -> None:
    assert capital_yuan(fen) == words
    assert _read(words) == fen


@given(st.integers(min_value=-LARGEST_FEN, max_value=LARGEST_FEN))
@example(1_0000_0000_00)
@example(1_0000_0001_00)
@example(1_0001_0000_00)
def test_reading_the_words_back_gives_the_amount(fen: int) -> None:
    """Round trip: the words name exactly the amount, to the fen."""
    assert _read(capital_yuan(fen)) == fen


@given(st.integers(min_value=1, max_value=LARGEST_FEN))
def test_the_words_follow_the_zero_and_ending_rules(fen: int) -> None:
    """Only receipt characters; never two 零 in a row, never 零 first or last; 整 exactly
    for whole yuan; 元 exactly from one yuan; 零 between 元 and 分 when 角 is zero."""
    words = capital_yuan(fen)
    assert _ALLOWED.match(words)
    assert "零零" not in words
    assert not words.startswith("零") and not words.endswith("零")
    assert words.endswith("整") == (fen % 100 == 0)
    assert ("元" in words) == (fen >= 100)
    assert words.endswith("分") == (fen % 10 != 0)
    if fen >= 100 and fen % 100 and (fen // 10) % 10 == 0:
        assert "元零" in words
    if words.startswith("拾"):
        pytest.fail(f"{words}: a leading 拾 keeps its 壹")


def test_what_is_not_a_whole_number_of_fen_is_refused() -> None:
    with pytest.raises(TypeError):
        capital_yuan(1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        capital_yuan(True)
    with pytest.raises(ValueError, match="more than"):
        capital_yuan(LARGEST_FEN + 1)
