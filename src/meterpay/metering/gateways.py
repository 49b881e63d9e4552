"""Gateways (DTU, MQTT gateway, NB-IoT platform) and what links know of meters.

A gateway is identified by its code: the registration id a DTU sends when it
connects (IMEI, ICCID or a configured string), the MQTT gateway's id, or the
NB-IoT platform's product. A meter is found by (gateway code, address) — never
by a source IP, which carrier NAT changes at will.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from meterpay.kernel.quantity import Utility


class Transport(StrEnum):
    DTU = "dtu"
    """A 4G/Cat-1 DTU in transparent TCP-client mode, dialling our listener."""
    MQTT = "mqtt"
    """A gateway that publishes JSON readings to the broker."""
    MODBUS_TCP = "modbus_tcp"
    """Modbus TCP meters or an RS-485-to-Ethernet converter we poll."""
    HTTP = "http"
    """An NB-IoT platform (CTWing, OneNET) pushing to our URL."""


class GatewayStatus(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


class LinkStatus(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"
    UNKNOWN = "unknown"


class Direction(StrEnum):
    RX = "rx"
    TX = "tx"


@dataclass(frozen=True, slots=True)
class Gateway:
    id: int
    site_id: int
    code: str
    name: str
    transport: Transport
    status: GatewayStatus
    last_seen_at: datetime | None
    remote_addr: str | None
    connected_at: datetime | None


@dataclass(frozen=True, slots=True)
class LinkedMeter:
    """A meter as a link polls it: where it is on the bus and how to talk to it."""

    id: int
    address: str
    protocol: str
    model: str | None
    utility: Utility
    has_switch: bool
    link_status: LinkStatus


@dataclass(frozen=True, slots=True)
class FrameRecord:
    """One raw frame seen on a link; ``hex`` is upper-case, space-separated bytes."""

    at: datetime
    gateway_code: str
    direction: Direction
    protocol: str
    hex: str
    meter_id: int | None = None
    note: str = ""

    @staticmethod
    def of(
        at: datetime,
        gateway_code: str,
        direction: Direction,
        protocol: str,
        data: bytes,
        *,
        meter_id: int | None = None,
        note: str = "",
    ) -> FrameRecord:
        return FrameRecord(
            at, gateway_code, direction, protocol, data.hex(" ").upper(), meter_id, note[:200]
        )
