"""Recorded frames from the protocol reference (shared/reference/meter-protocols.md), as hex.

Every checksum here was recomputed when the tests were written; the one deliberately
wrong frame is the widely copied CJ/T 188 901F reply published with checksum 08.
"""

from __future__ import annotations

from typing import Final


def wire(text: str) -> bytes:
    return bytes.fromhex(text)


DLT645_READ_TOTAL: Final = wire("68 25 04 03 02 01 00 68 11 04 33 33 34 33 E1 16")
DLT645_READ_TOTAL_REPLY: Final = wire("68 25 04 03 02 01 00 68 91 08 33 33 34 33 75 39 45 33 8B 16")
DLT645_TRIP: Final = wire(
    "68 11 11 11 11 11 11 68 1C 10 33 33 33 33 33 33 33 33 4D 33 57 74 48 45 38 4B 55 16"
)
DLT645_TRIP_ACK: Final = wire("68 11 11 11 11 11 11 68 9C 00 D2 16")
DLT645_TRIP_REFUSED: Final = wire("68 11 11 11 11 11 11 68 DC 01 37 4A 16")
DLT645_READ_NO_DATA: Final = wire("68 25 04 03 02 01 00 68 D1 01 35 06 16")

CJT188_READ: Final = wire("FE FE FE FE 68 10 44 33 22 11 00 33 78 01 03 1F 90 00 80 16")
CJT188_OPEN_VALVE: Final = wire("FE FE FE FE 68 10 69 05 90 05 15 33 78 04 04 A0 17 01 55 50 16")
CJT188_OPEN_VALVE_REPLY: Final = wire(
    "FE FE FE FE 68 10 69 05 90 05 15 33 78 84 05 A0 17 01 00 00 7C 16"
)
_CJT188_901F_BODY: Final = (
    "68 10 44 33 22 11 00 33 78 81 16 1F 90 00 00 77 66 55 2C 00 77 66 55 2C"
    " 31 01 22 11 05 15 20 21 84"
)
CJT188_CURRENT_DATA_REPLY: Final = wire(_CJT188_901F_BODY + " 13 16")
CJT188_CURRENT_DATA_REPLY_WRONG_CS: Final = wire("FE FE FE FE " + _CJT188_901F_BODY + " 08 16")

MODBUS_READ_10: Final = wire("01 03 00 00 00 0A C5 CD")
MODBUS_REPLY_100: Final = wire("01 03 02 00 64 B9 AF")
MODBUS_COIL_ON: Final = wire("01 05 00 00 FF 00 8C 3A")
MODBUS_EXCEPTION_02: Final = wire("01 83 02 C0 F1")
