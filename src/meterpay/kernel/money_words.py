"""An amount in Chinese capital numerals (大写金额), as receipts and bank slips write it.

The convention is the one of 《正确填写票据和结算凭证的基本规定》 (People's Bank of
China), with each optional choice fixed so a receipt always reads the same:
- digits 零壹贰叁肆伍陆柒捌玖, units 拾佰仟万亿 and 元角分;
- a 拾 that leads the amount keeps its 壹 (壹拾元, never 拾元) so nothing can be
  written in front of it;
- a run of zeros inside the yuan part is one 零 (陆仟零柒元); zeros at its end are
  dropped (壹佰万元); a 万 or 亿 group that starts below its 仟 after a higher group
  is preceded by 零 (壹拾万零柒佰元);
- 整 follows 元 when there are no 角 and 分 (壹佰元整); nothing follows 角 or 分
  (壹拾元伍角, 叁佰贰拾伍元零肆分);
- 零 stands between 元 and 分 when 角 is zero (壹佰万元零壹分), as the rules require; the
  optional 零 of a yuan part ending in 0 before a non-zero 角 is not written
  (壹仟陆佰捌拾元叁角贰分);
- less than one yuan has no 元 (伍角, 伍分, 壹角伍分); nothing at all is 零元整;
- a negative amount is preceded by 负 (a shift's net may be negative).
"""

from __future__ import annotations

from typing import Final

DIGITS: Final = "零壹贰叁肆伍陆柒捌玖"
_PLACES: Final = ("", "拾", "佰", "仟")
_GROUPS: Final = ("", "万", "亿")
LARGEST_FEN: Final = 10 ** (4 * len(_GROUPS)) * 100 - 1
"""玖仟玖佰玖拾玖亿…元玖角玖分 (just under 1 万亿 yuan): the most written here."""


def capital_yuan(fen: int) -> str:
    """``fen`` (分) in capital numerals: ``10050`` -> ``壹佰元伍角``."""
    if isinstance(fen, bool) or not isinstance(fen, int):
        raise TypeError(f"an amount in fen must be an int, got {fen!r}")
    if fen < 0:
        return "负" + capital_yuan(-fen)
    if fen > LARGEST_FEN:
        raise ValueError(f"{fen} fen is more than capital numerals are written for here")
    yuan, rest = divmod(fen, 100)
    jiao, fen_digit = divmod(rest, 10)
    if fen == 0:
        return "零元整"
    head = _integer(yuan) + "元" if yuan else ""
    if not rest:
        return head + "整"
    if not jiao:
        return head + ("零" if yuan else "") + DIGITS[fen_digit] + "分"
    tail = DIGITS[fen_digit] + "分" if fen_digit else ""
    return head + DIGITS[jiao] + "角" + tail


def _integer(number: int) -> str:
    """A positive whole number in groups of four digits: 壹亿零壹万, 壹拾万零柒佰."""
    groups: list[int] = []
    while number:
        number, group = divmod(number, 10_000)
        groups.append(group)
    words = ""
    gap = False  # a zero group (or the zeros of one) since the last words written
    for index in range(len(groups) - 1, -1, -1):
        group = groups[index]
        if group == 0:
            gap = bool(words)
            continue
        if words and (gap or group < 1000):
            words += "零"
        words += _group(group) + _GROUPS[index]
        gap = False
    return words


def _group(group: int) -> str:
    """One group below 10 000, without leading or trailing zeros: 壹仟零玖, 柒佰."""
    digits = [int(d) for d in f"{group:04d}"]
    words = ""
    pending_zero = False
    for position, digit in zip(range(3, -1, -1), digits, strict=True):
        if digit == 0:
            pending_zero = bool(words)
            continue
        if pending_zero:
            words += "零"
            pending_zero = False
        words += DIGITS[digit] + _PLACES[position]
    return words
