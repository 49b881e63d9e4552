"""Meters as the services see them: identity, placement, profile and cursor."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from meterpay.kernel.quantity import Utility
from meterpay.metering.model import LastAccepted, MeterProfile


class MeterStatus(StrEnum):
    ACTIVE = "active"
    REMOVED = "removed"
    FAULTY = "faulty"


class Protocol(StrEnum):
    DLT645_2007 = "dlt645_2007"
    DLT645_1997 = "dlt645_1997"
    CJT188 = "cjt188"
    MODBUS = "modbus"
    MQTT = "mqtt"
    HTTP = "http"
    MANUAL = "manual"


class ReadingSource(StrEnum):
    HTTP = "http"
    DTU = "dtu"
    MQTT = "mqtt"
    MODBUS = "modbus"
    MANUAL = "manual"
    IMPORT = "import"
    INSTALL = "install"
    SIMULATOR = "simulator"


@dataclass(frozen=True, slots=True)
class Meter:
    id: int
    site_id: int
    unit_id: int
    account_id: int | None
    gateway_id: int | None
    utility: Utility
    protocol: Protocol
    address: str
    serial: str | None
    model: str | None
    multiplier: int
    register_capacity: Decimal | None
    max_rate_per_hour: Decimal | None
    has_switch: bool
    status: MeterStatus
    installed_at: datetime
    removed_at: datetime | None
    last_read_at: datetime | None
    last_total: Decimal | None
    link_status: str = "unknown"
    """Whether the meter answers its link: online, offline or unknown."""
    last_heard_at: datetime | None = None

    @property
    def profile(self) -> MeterProfile:
        return MeterProfile(self.multiplier, self.register_capacity, self.max_rate_per_hour)

    @property
    def last_accepted(self) -> LastAccepted | None:
        if self.last_read_at is None or self.last_total is None:
            return None
        return LastAccepted(self.last_read_at, self.last_total)


@dataclass(frozen=True, slots=True)
class ReadingIn:
    """One reading as it arrives: cumulative register values at the meter's time."""

    meter_id: int
    read_at: datetime
    total: Decimal
    source: ReadingSource
    tip: Decimal | None = None
    peak: Decimal | None = None
    flat: Decimal | None = None
    valley: Decimal | None = None
    status_word: int | None = None
    meter_time: datetime | None = None
    """The meter's own clock when the reading was taken, if the link read it (polled
    meters are stamped with our time; their clock is only checked)."""
