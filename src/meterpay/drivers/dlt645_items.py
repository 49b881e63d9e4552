"""DL/T 645 data identifiers (DI) and how their values read: a table, not code per item.

Each ``DataItem`` turns the value bytes of a read reply (after the DI, offset already
removed) into named fields: ``total``, ``tip``/``peak``/``flat``/``valley`` (尖峰平谷),
``voltage``, ``relay_open`` ... The names are the vocabulary a reading is built from,
shared with CJ/T 188 and Modbus models.

Invariants:
- quantities are ``Decimal`` built from BCD digits, never floats;
- a value whose length does not match its DI's format is a ``FrameError``;
- the meter's date and time are wall-clock values with no zone (none is on the wire).

The 2007 items and status word 3 follow DL/T 645-2007 appendix A; the 1997 B6xx/C01x
items follow DL/T 645-1997 as commonly published (check a new 1997 model against them).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, time
from decimal import Decimal
from enum import StrEnum
from typing import Final

from meterpay.drivers.bcd import byte_values, decimal_from_bcd
from meterpay.drivers.errors import FrameError

ItemValue = Decimal | int | bool | str | date | time
Fields = dict[str, ItemValue]

TOU_FIELDS: Final = ("total", "tip", "peak", "flat", "valley")
PHASE_VOLTAGES: Final = ("voltage_a", "voltage_b", "voltage_c")


class PrepaidType(StrEnum):
    """Status word 3 bits 8-9: what kind of prepaid meter this is."""

    NOT_PREPAID = "not_prepaid"
    ENERGY = "energy"  # 电量型: the meter counts down kWh
    MONEY = "money"  # 电费型: the meter counts down money
    RESERVED = "reserved"


_PREPAID_TYPES: Final = (
    PrepaidType.NOT_PREPAID,
    PrepaidType.ENERGY,
    PrepaidType.MONEY,
    PrepaidType.RESERVED,
)


@dataclass(frozen=True, slots=True)
class DataItem:
    """One data identifier: its number, what it is, the fields it yields, its value size
    (None = a block of ``block``-byte values) and the decoder that names its fields."""

    di: int
    name: str
    names: tuple[str, ...]
    size: int | None
    read: Callable[[bytes], Fields]
    block: int = 0

    def fields(self, value: bytes) -> Fields:
        """The named fields of ``value``; a length that does not fit the format is refused."""
        if self.size is not None and len(value) != self.size:
            raise FrameError(f"DI {self.label} carries {len(value)} bytes, expected {self.size}")
        if self.size is None and (not value or len(value) % self.block):
            raise FrameError(
                f"DI {self.label} carries {len(value)} bytes, not a multiple of {self.block}"
            )
        return self.read(value)

    @property
    def label(self) -> str:
        return f"{self.di:08X}" if self.di > 0xFFFF else f"{self.di:04X}"


def _number(
    di: int, name: str, field: str, size: int, decimals: int, *, signed: bool = False
) -> DataItem:
    def read(value: bytes) -> Fields:
        return {field: decimal_from_bcd(value, decimals, signed=signed)}

    return DataItem(di, name, (field,), size, read)


def _block(di: int, name: str, names: tuple[str, ...], size: int, decimals: int) -> DataItem:
    """Consecutive ``size``-byte values named in order; extra tariffs become ``tariff_5``..."""

    def read(value: bytes) -> Fields:
        parts = [value[i : i + size] for i in range(0, len(value), size)]
        return {
            names[i] if i < len(names) else f"tariff_{i}": decimal_from_bcd(part, decimals)
            for i, part in enumerate(parts)
        }

    return DataItem(di, name, names, None, read, block=size)


def _meter_date(value: bytes) -> Fields:
    """YYMMDDWW, sent WW DD MM YY."""
    weekday, day, month, year = byte_values(value)
    try:
        return {"meter_date": date(2000 + year, month, day), "weekday": weekday}
    except ValueError as exc:
        raise FrameError(f"meter date {value[::-1].hex()} is not a date: {exc}") from exc


def _meter_time(value: bytes) -> Fields:
    """hhmmss, sent ss mm hh."""
    second, minute, hour = byte_values(value)
    try:
        return {"meter_time": time(hour, minute, second)}
    except ValueError as exc:
        raise FrameError(f"meter time {value[::-1].hex()} is not a time: {exc}") from exc


STATUS_WORD_3_FIELDS: Final = (
    "status_word_3",
    "relay_open",
    "relay_command_open",
    "pre_trip_alarm",
    "prepaid_type",
)


def status_word_3(value: bytes) -> Fields:
    """电表运行状态字3: relay state and command, pre-trip alarm, prepaid type.

    bit 4 relay (1 = open, supply off); bit 6 relay command (1 = open commanded);
    bit 7 pre-trip alarm; bits 8-9 prepaid type. After a 1CH command, poll this
    until ``relay_open`` matches: that is the read-back.
    """
    word = int.from_bytes(value, "little")
    values = (
        word,
        bool(word >> 4 & 1),
        bool(word >> 6 & 1),
        bool(word >> 7 & 1),
        _PREPAID_TYPES[word >> 8 & 0b11].value,
    )
    return dict(zip(STATUS_WORD_3_FIELDS, values, strict=True))


def _items(*items: DataItem) -> Mapping[int, DataItem]:
    return {item.di: item for item in items}


_DATE = ("meter_date", "weekday")
_TIME = ("meter_time",)
_TOU_BLOCK = "forward active total and tariffs 1-4 (kWh)"

ITEMS_2007: Final = _items(
    _number(0x00000000, "combined active total (kWh)", "combined_total", 4, 2, signed=True),
    _number(0x00010000, "forward active total (kWh)", "total", 4, 2),
    _block(0x0001FF00, _TOU_BLOCK, TOU_FIELDS, 4, 2),
    _number(0x00020000, "reverse active total (kWh)", "reverse_total", 4, 2),
    _number(0x02010100, "A-phase voltage (V)", "voltage", 2, 1),
    _block(0x0201FF00, "A, B, C voltages (V)", PHASE_VOLTAGES, 2, 1),
    _number(0x02020100, "A-phase current (A)", "current", 3, 3, signed=True),
    _number(0x02030000, "total active power (kW)", "power", 3, 4, signed=True),
    DataItem(0x04000101, "date and weekday", _DATE, 4, _meter_date),
    DataItem(0x04000102, "time", _TIME, 3, _meter_time),
    DataItem(0x04000503, "status word 3", STATUS_WORD_3_FIELDS, 2, status_word_3),
)

ITEMS_1997: Final = _items(
    _number(0x9010, "forward active total (kWh)", "total", 4, 2),
    _block(0x901F, _TOU_BLOCK, TOU_FIELDS, 4, 2),
    _number(0xB611, "A-phase voltage (V)", "voltage", 2, 0),
    _number(0xB621, "A-phase current (A)", "current", 2, 2),
    _number(0xB630, "total active power (kW)", "power", 3, 4),
    DataItem(0xC010, "date and weekday", _DATE, 4, _meter_date),
    DataItem(0xC011, "time", _TIME, 3, _meter_time),
)


def item_2007(di: int) -> DataItem | None:
    return ITEMS_2007.get(di)


def item_1997(di: int) -> DataItem | None:
    return ITEMS_1997.get(di)
