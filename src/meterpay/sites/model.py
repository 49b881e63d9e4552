"""The place hierarchy and the people and accounts in it.

A Site has a time zone; a Unit may be a common area (公区). An Account holds
one prepaid balance (its wallet, a liability in the ledger) for ONE utility:
electricity money never pays for water, so a cut-off can only ever follow
unpaid charges of the same utility (民法典 第九百四十四条).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from meterpay.kernel.quantity import Utility


class UnitKind(StrEnum):
    HOME = "home"
    SHOP = "shop"
    OFFICE = "office"
    COMMON = "common"


class CustomerKind(StrEnum):
    PERSON = "person"
    COMPANY = "company"


class AccountStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Site:
    id: int
    code: str
    name: str
    timezone: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Building:
    id: int
    site_id: int
    code: str
    name: str


@dataclass(frozen=True, slots=True)
class Floor:
    id: int
    building_id: int
    level: int
    name: str


@dataclass(frozen=True, slots=True)
class Unit:
    id: int
    site_id: int
    floor_id: int | None
    code: str
    name: str
    kind: UnitKind
    area_m2: Decimal | None


@dataclass(frozen=True, slots=True)
class Customer:
    id: int
    site_id: int
    name: str
    kind: CustomerKind
    phone: str | None
    email: str | None
    wechat_openid: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    site_id: int
    unit_id: int
    customer_id: int | None
    number: str
    utility: Utility
    tariff_id: int
    wallet_id: int
    status: AccountStatus
    supply_state: str
    opened_at: datetime
    closed_at: datetime | None
    warning1_fen: int | None = None
    warning2_fen: int | None = None
    credit_limit_fen: int | None = None
    disconnect_fen: int | None = None
    reconnect_fen: int | None = None


def wallet_code(site_code: str, account_number: str) -> str:
    return f"wallet:{site_code}:{account_number}"


def cash_code(site_code: str) -> str:
    return f"cash:{site_code}"


def revenue_code(site_code: str, utility: Utility) -> str:
    return f"revenue:{site_code}:{utility.value}"
