"""Field-level rules for the JSON that MQTT gateways send (sans I/O).

Every value is checked against its field and a failure names the field in the
form a gateway vendor can find in the payload (``readings[3].read_at``).
Numbers are never floats: the JSON is decoded with ``parse_float=Decimal`` so
``1234.56`` keeps the digits the gateway wrote; ``NaN`` and ``Infinity`` are
refused.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

from meterpay.kernel.errors import InvalidInput
from meterpay.kernel.quantity import InvalidQuantity, parse_quantity

MAX_PAYLOAD_BYTES: Final = 256 * 1024
"""A gateway message above this size is refused unread (a misbehaving gateway
must not make the consumer parse megabytes)."""

MAX_REGISTER: Final = Decimal("1e12")
"""Register values are stored as integers of 0.0001; anything this large is not a meter."""

EARLIEST_YEAR: Final = 2000
LATEST_YEAR: Final = 2099  # outside these years a timestamp is a broken clock, not a time

_PLAIN_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?")
MAX_INT32: Final = 2**31 - 1


class PayloadError(InvalidInput):
    """A gateway payload or one of its fields is not what the topic's schema says.

    ``field`` names the offending part (``payload``, ``readings[2].total`` …).
    """

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}", field=field)
        self.field = field
        self.problem = problem


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number a meter can report")


def decode_object(payload: bytes) -> dict[str, Any]:
    """The payload as a JSON object, numbers as ``Decimal``/``int``."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise PayloadError("payload", f"{len(payload)} bytes is more than {MAX_PAYLOAD_BYTES}")
    try:
        text = payload.decode("utf-8")
        value = json.loads(text, parse_float=Decimal, parse_constant=_refuse_constant)
    except UnicodeDecodeError as exc:
        raise PayloadError("payload", f"not UTF-8 ({exc.reason})") from exc
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise PayloadError("payload", f"not JSON ({str(exc)[:80]})") from exc
    if not isinstance(value, dict):
        raise PayloadError("payload", f"must be a JSON object, not {_kind(value)}")
    return value


def encode_object(doc: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON, as gateways and meterpay publish it."""
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def require_string(obj: dict[str, Any], key: str, where: str, *, pattern: re.Pattern[str]) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise PayloadError(f"{where}{key}", f"must be a string, not {_kind(value)}")
    if not pattern.fullmatch(value):
        raise PayloadError(f"{where}{key}", f"{value[:40]!r} does not match {pattern.pattern}")
    return value


def optional_text(obj: dict[str, Any], key: str, where: str, *, limit: int) -> str:
    value = obj.get(key, "")
    if not isinstance(value, str):
        raise PayloadError(f"{where}{key}", f"must be a string, not {_kind(value)}")
    return value[:limit]


def require_time(obj: dict[str, Any], key: str, where: str) -> datetime:
    """An ISO 8601 time with its offset; naive times are refused, never guessed."""
    value = obj.get(key)
    field = f"{where}{key}"
    if not isinstance(value, str):
        raise PayloadError(field, f"must be an ISO 8601 string, not {_kind(value)}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise PayloadError(field, f"{value[:40]!r} is not an ISO 8601 time") from exc
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise PayloadError(field, f"{value!r} has no time zone offset (add +08:00 or Z)")
    if not EARLIEST_YEAR <= moment.astimezone(UTC).year <= LATEST_YEAR:
        raise PayloadError(field, f"{value!r} is outside {EARLIEST_YEAR}-{LATEST_YEAR}")
    return moment


def require_register(obj: dict[str, Any], key: str, where: str) -> Decimal:
    field = f"{where}{key}"
    if key not in obj or obj[key] is None:
        raise PayloadError(field, "is required")
    return _register(obj[key], field)


def optional_register(obj: dict[str, Any], key: str, where: str) -> Decimal | None:
    value = obj.get(key)
    return None if value is None else _register(value, f"{where}{key}")


def optional_int32(obj: dict[str, Any], key: str, where: str) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    field = f"{where}{key}"
    if isinstance(value, bool) or not isinstance(value, int):
        raise PayloadError(field, f"must be an integer, not {_kind(value)}")
    if not 0 <= value <= MAX_INT32:
        raise PayloadError(field, f"{value} is outside 0..{MAX_INT32}")
    return value


def _register(value: object, field: str) -> Decimal:
    """A cumulative register value: a decimal string or JSON number, >= 0, 4 decimals."""
    if isinstance(value, str):
        if not _PLAIN_DECIMAL.fullmatch(value):
            raise PayloadError(field, f"{value[:40]!r} is not a decimal number like '1234.56'")
        number = Decimal(value)
    elif isinstance(value, Decimal):  # a JSON number with a fraction or exponent
        number = value
    elif isinstance(value, int) and not isinstance(value, bool):
        number = Decimal(value)
    else:
        raise PayloadError(field, f"must be a decimal string or number, not {_kind(value)}")
    if not number.is_finite() or not 0 <= number < MAX_REGISTER:
        raise PayloadError(field, f"{value} is outside 0 <= value < {MAX_REGISTER:f}")
    try:
        return parse_quantity(number)
    except InvalidQuantity as exc:
        raise PayloadError(field, str(exc)) from exc


def format_decimal(value: Decimal) -> str:
    """A decimal as the plain string the schema asks for (never ``1E+3``)."""
    return f"{value:f}"


def _kind(value: object) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    return names.get(type(value), "a number")
