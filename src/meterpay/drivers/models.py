"""Meter models as data: one YAML file per model in ``drivers/models/``.

A model says which protocol a meter speaks, what to read and how often, and how (or
whether) it switches supply. Adding a model is adding a file; ``polling`` turns a
model and an address into request bytes and replies into a reading.

Invariants:
- a file is validated whole by pydantic; every refusal names the file, the field
  (``reads[1].di``) and the rule broken (``InvalidMeterModel``);
- a bundled file is named after its model id (``<id>.yaml``) and ids are unique;
- a DL/T 645 model reads only DIs the codec has a format for, so a reading never
  silently lacks a field the model promised;
- numbers that scale quantities are ``Decimal``; write them quoted in YAML (``"0.01"``);
  byte codes (meter type, password level) are two quoted hex digits (``"10"``, ``"02"``).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails

from meterpay.drivers.cjt188_messages import DiOrder
from meterpay.drivers.dlt645_items import item_1997, item_2007
from meterpay.drivers.dlt645_requests import ESAM_LEVEL, PLAINTEXT_LEVEL
from meterpay.drivers.modbus import COIL_OFF, COIL_ON
from meterpay.drivers.modbus_values import RegisterType, WordOrder
from meterpay.kernel.quantity import Utility

# reading fields that are yes/no: read from a register bit (``bit``) or as non-zero
FLAG_FIELDS: Final = frozenset({"relay_open", "battery_low"})
ModbusField = Literal[
    "total",
    "tip",
    "peak",
    "flat",
    "valley",
    "reverse_total",
    "combined_total",
    "voltage",
    "voltage_a",
    "voltage_b",
    "voltage_c",
    "current",
    "power",
    "relay_open",
    "battery_low",
]
HEX_DI_2007 = r"^[0-9A-Fa-f]{8}$"
HEX_DI_1997 = r"^[0-9A-Fa-f]{4}$"


def _hex_byte(value: object) -> int:
    """A byte code written as the standards print it: two hex digits, quoted (``"98"``)."""
    if not isinstance(value, str) or len(value) != 2 or not _is_hex(value):
        raise ValueError(f'{value!r} must be two hex digits in quotes, like "10"')
    return int(value, 16)


# a byte code such as a CJ/T 188 meter type or a DL/T 645 password level: written "10",
# never 10 or 0x10, so that "98" cannot be read as decimal 98
HexByte = Annotated[int, BeforeValidator(_hex_byte)]


class Protocol(StrEnum):
    DLT645_2007 = "dlt645_2007"
    DLT645_1997 = "dlt645_1997"
    CJT188 = "cjt188"
    MODBUS_RTU = "modbus_rtu"
    MODBUS_TCP = "modbus_tcp"


class InvalidMeterModel(ValueError):
    """A model file that does not describe a meter we can talk to."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Described(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    maker: str = Field(min_length=1)
    utility: Utility
    description: str = ""


class Dlt645Read(_Strict):
    """One DI polled every ``every_minutes``."""

    di: str
    every_minutes: int = Field(ge=1)

    @property
    def di_number(self) -> int:
        return int(self.di, 16)


class Dlt645Relay(_Strict):
    """``plaintext``: 1CH with password level 02; ``none``: no remote switch."""

    style: Literal["plaintext", "none"]
    password_level: HexByte = PLAINTEXT_LEVEL
    password: str = Field(default="000000", pattern=r"^[0-9A-Fa-f]{6}$")
    operator_code: str = Field(default="00000000", pattern=r"^[0-9A-Fa-f]{8}$")
    reconnect: Literal["close_now", "close_allowed"] = "close_now"
    expiry_minutes: int = Field(default=10, ge=1, le=24 * 60)

    @model_validator(mode="after")
    def _not_esam(self) -> Dlt645Relay:
        if self.style == "plaintext" and self.password_level == ESAM_LEVEL:
            raise ValueError(
                'password_level "98" is ESAM ciphertext, which needs the utility\'s'
                " encryption machine: use style none for such meters"
            )
        return self


class Dlt645Model(_Described):
    protocol: Literal[Protocol.DLT645_2007, Protocol.DLT645_1997]
    wake_up: int = Field(default=4, ge=0, le=4)
    reads: list[Dlt645Read] = Field(min_length=1)
    relay: Dlt645Relay

    @model_validator(mode="after")
    def _known_dis(self) -> Dlt645Model:
        edition_1997 = self.protocol is Protocol.DLT645_1997
        if edition_1997 and self.relay.style != "none":
            raise ValueError("relay.style: DL/T 645-1997 has no standard relay command; use none")
        pattern, lookup = (HEX_DI_1997, item_1997) if edition_1997 else (HEX_DI_2007, item_2007)
        for index, read in enumerate(self.reads):
            where = f"reads[{index}].di"
            digits = 4 if edition_1997 else 8
            if len(read.di) != digits or not _is_hex(read.di):
                raise ValueError(f"{where}: {read.di!r} must be {digits} hex digits ({pattern})")
            if lookup(read.di_number) is None:
                raise ValueError(f"{where}: {read.di} has no format in the {self.protocol} table")
        return self


class Cjt188Read(_Strict):
    di: str = Field(default="901F", pattern=HEX_DI_1997)
    every_minutes: int = Field(ge=1)


class Cjt188Valve(_Strict):
    """``a017``: write DI A017 with 55 (open) / 99 (close); ``none``: no valve."""

    style: Literal["a017", "none"]


class Cjt188Model(_Described):
    protocol: Literal[Protocol.CJT188]
    meter_type: HexByte
    di_order: DiOrder
    wake_up: int = Field(default=4, ge=0, le=4)
    reads: list[Cjt188Read] = Field(min_length=1)
    valve: Cjt188Valve


class RegisterRead(_Strict):
    """One value in registers: which reading field it fills and how to read it."""

    field: ModbusField
    function: Literal["holding", "input"]
    address: int = Field(ge=0, le=0xFFFF)
    type: RegisterType = RegisterType.UINT16
    word_order: WordOrder = WordOrder.BIG
    scale: Decimal = Decimal(1)
    bit: int | None = Field(default=None, ge=0, le=31)
    every_minutes: int = Field(ge=1)

    @model_validator(mode="after")
    def _bit_only_for_flags(self) -> RegisterRead:
        if self.bit is not None and self.field not in FLAG_FIELDS:
            raise ValueError(f"bit is only for flags ({sorted(FLAG_FIELDS)}), not {self.field}")
        return self


class ModbusRelay(_Strict):
    """``coil``: FC05 with FF00/0000; ``register``: FC06 with the vendor's values."""

    style: Literal["coil", "register", "none"]
    address: int | None = Field(default=None, ge=0, le=0xFFFF)
    disconnect_value: int | None = Field(default=None, ge=0, le=0xFFFF)
    reconnect_value: int | None = Field(default=None, ge=0, le=0xFFFF)

    @model_validator(mode="after")
    def _complete(self) -> ModbusRelay:
        values = (self.address, self.disconnect_value, self.reconnect_value)
        if self.style != "none" and None in values:
            raise ValueError(f"style {self.style} needs address, disconnect_value, reconnect_value")
        coil_values = {COIL_ON, COIL_OFF}
        if self.style == "coil" and {self.disconnect_value, self.reconnect_value} != coil_values:
            raise ValueError("a coil is written 0xFF00 (on) or 0x0000 (off), one for each action")
        return self


class ModbusModel(_Described):
    protocol: Literal[Protocol.MODBUS_RTU, Protocol.MODBUS_TCP]
    registers: list[RegisterRead] = Field(min_length=1)
    relay: ModbusRelay


MeterModel = Annotated[Dlt645Model | Cjt188Model | ModbusModel, Field(discriminator="protocol")]
_ADAPTER: Final[TypeAdapter[MeterModel]] = TypeAdapter(MeterModel)


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)


def parse_model(document: Any, source: str) -> MeterModel:
    """A model from parsed YAML/JSON; refusals name ``source``, each field and its rule."""
    try:
        return _ADAPTER.validate_python(document)
    except ValidationError as exc:
        problems = "; ".join(_problem(error) for error in exc.errors())
        raise InvalidMeterModel(f"{source}: {problems}") from exc


def _problem(error: ErrorDetails) -> str:
    """One refusal as ``field.path: rule``; a whole-model rule names its field itself."""
    if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
        return f"protocol: must be one of {', '.join(p.value for p in Protocol)}"
    rule = error["msg"].removeprefix("Value error, ")
    path = _field_path(error["loc"])
    return f"{path}: {rule}" if path else rule


def _field_path(location: tuple[int | str, ...]) -> str:
    """``reads[1].di`` from pydantic's ``('dlt645_2007', 'reads', 1, 'di')``; the first
    part names the union member chosen by ``protocol`` and is dropped."""
    parts = location[1:] if location and location[0] in tuple(Protocol) else location
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts).lstrip(".")


def load_model_text(text: str, source: str) -> MeterModel:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidMeterModel(f"{source}: not YAML: {exc}") from exc
    return parse_model(document, source)


def load_model_file(path: Path) -> MeterModel:
    """One model file; its name must be its id (``<id>.yaml``)."""
    return _named_after_its_file(path.read_text(encoding="utf-8"), path.name)


def bundled_models() -> Mapping[str, MeterModel]:
    """Every model shipped in ``drivers/models/``, by id (unique: ids are file names)."""
    folder = resources.files("meterpay.drivers") / "models"
    entries = sorted(
        (e for e in folder.iterdir() if e.name.endswith(".yaml")), key=lambda e: e.name
    )
    models = (_named_after_its_file(e.read_text(encoding="utf-8"), e.name) for e in entries)
    return {model.id: model for model in models}


def _named_after_its_file(text: str, file_name: str) -> MeterModel:
    model = load_model_text(text, file_name)
    if file_name != f"{model.id}.yaml":
        raise InvalidMeterModel(f"{file_name}: id: {model.id!r} must match the file name")
    return model
