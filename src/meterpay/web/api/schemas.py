"""Request and response bodies. Money and quantities travel as decimal
strings ("12.34"), times as ISO 8601 with an offset."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Generic, Self, TypeVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
    model_validator,
)

from meterpay.kernel.quantity import Utility
from meterpay.metering.meters import MeterStatus, Protocol, ReadingSource
from meterpay.sites.model import CustomerKind, UnitKind
from meterpay.tariffs.components import Period, TariffComponents
from meterpay.tariffs.reference import BEIJING_POWER

T = TypeVar("T")

# Only in JSON: the routes hand ``model_dump()`` (Python mode) to services, which
# need the Decimal itself, not its text.
AsText = PlainSerializer(
    lambda v: None if v is None else str(v), return_type=str | None, when_used="json"
)
Yuan = Annotated[Decimal, Field(decimal_places=2, max_digits=14), AsText]
UnitPrice = Annotated[Decimal, Field(ge=0, decimal_places=4, max_digits=12), AsText]
Quantity = Annotated[Decimal, Field(ge=0, decimal_places=4, max_digits=16), AsText]
# A register capacity or maximum rate of 0 is physically meaningless and is
# refused by ``MeterProfile``; refuse it here so it is a 422, not a 500.
PositiveQuantity = Annotated[Decimal, Field(gt=0, decimal_places=4, max_digits=16), AsText]
Code = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.\-]+$")]
Name = Annotated[str, Field(min_length=1, max_length=200)]


class In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Patch(In):
    """A partial update: omitted fields stay as they are.

    Fields named in ``not_null`` may be omitted but not sent as ``null``:
    their columns cannot be empty.
    """

    not_null: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="after")
    def _refuse_null_for_required(self) -> Self:
        nulled = sorted(
            f for f in self.not_null & self.model_fields_set if getattr(self, f) is None
        )
        if nulled:
            raise ValueError(f"{', '.join(nulled)} may be omitted but not null")
        return self


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_after_id: int | None = Field(description="pass as after_id to get the next page")


class SiteIn(In):
    code: Code
    name: Name
    timezone: str = "Asia/Shanghai"


class SitePatch(Patch):
    not_null = frozenset({"name", "timezone"})

    name: Name | None = None
    timezone: str | None = None


class SiteOut(Out):
    id: int
    code: str
    name: str
    timezone: str
    created_at: datetime


class BuildingIn(In):
    site_id: int
    code: Code
    name: Name


class BuildingPatch(In):
    name: Name


class BuildingOut(Out):
    id: int
    site_id: int
    code: str
    name: str


class FloorIn(In):
    building_id: int
    level: int = Field(ge=-10, le=200)
    name: Name | None = None


class FloorOut(Out):
    id: int
    building_id: int
    level: int
    name: str


class UnitIn(In):
    site_id: int
    floor_id: int | None = None
    code: Annotated[str, Field(min_length=1, max_length=64)]
    name: Name
    kind: UnitKind = UnitKind.HOME
    area_m2: Annotated[Decimal, Field(gt=0, decimal_places=2, max_digits=10), AsText] | None = None


class UnitPatch(Patch):
    not_null = frozenset({"name", "kind"})

    name: Name | None = None
    kind: UnitKind | None = None
    area_m2: Annotated[Decimal, Field(gt=0, decimal_places=2, max_digits=10)] | None = None


class UnitOut(Out):
    id: int
    site_id: int
    floor_id: int | None
    code: str
    name: str
    kind: UnitKind
    area_m2: Annotated[Decimal | None, AsText]


class CustomerIn(In):
    site_id: int
    name: Name
    kind: CustomerKind = CustomerKind.PERSON
    phone: Annotated[str, Field(pattern=r"^\+?[0-9\- ]{5,20}$")] | None = None
    email: Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$", max_length=254)] | None = None
    wechat_openid: Annotated[str, Field(max_length=128)] | None = None


class CustomerPatch(Patch):
    not_null = frozenset({"name"})

    name: Name | None = None
    phone: Annotated[str, Field(pattern=r"^\+?[0-9\- ]{5,20}$")] | None = None
    email: Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$", max_length=254)] | None = None
    wechat_openid: Annotated[str, Field(max_length=128)] | None = None


class CustomerOut(Out):
    id: int
    site_id: int
    name: str
    kind: CustomerKind
    phone: str | None
    email: str | None
    wechat_openid: str | None
    created_at: datetime


COMPONENTS_EXAMPLE = BEIJING_POWER  # 北京居民 一户一表, yearly tiers
Components = Annotated[
    dict[str, Any],
    Field(
        description=(
            "the price rules of one version: energy, tiers, time_of_use, surcharges,"
            " fixed_fees, topup_fee (see docs/tariffs.md); numbers as text"
        ),
        examples=[COMPONENTS_EXAMPLE],
    ),
]


class PricesIn(In):
    """A version's prices: full ``components``, or ``unit_price`` alone for a flat tariff."""

    components: Components | None = None
    unit_price: UnitPrice | None = Field(
        default=None, description="shorthand for a flat tariff: 元 per kWh or m³, 4 decimals"
    )

    @model_validator(mode="after")
    def _one_of_components_or_unit_price(self) -> Self:
        if (self.components is None) == (self.unit_price is None):
            raise ValueError("give exactly one of components or unit_price")
        return self


CatalogPrice = Annotated[
    UnitPrice | dict[Period, UnitPrice],
    Field(
        description=(
            "the catalog price the site pays (转供 model 1), all-in or per period;"
            " when given, the response warns of anything the tariff charges above it"
        )
    ),
]


class TariffIn(PricesIn):
    site_id: int
    code: Code
    name: Name
    utility: Utility
    effective_from: AwareDatetime
    catalog_price: CatalogPrice | None = None


class TariffVersionIn(PricesIn):
    effective_from: AwareDatetime
    reason: str = ""
    catalog_price: CatalogPrice | None = None


class TariffRevisionIn(PricesIn):
    reason: Annotated[str, Field(min_length=1, max_length=500)]
    catalog_price: CatalogPrice | None = None


class TariffVersionOut(Out):
    id: int
    effective_from: datetime
    unit_price: Annotated[Decimal, AsText]
    components: dict[str, Any] | None

    @field_validator("components", mode="before")
    @classmethod
    def _plain_components(cls, value: object) -> object:
        return value.to_dict() if isinstance(value, TariffComponents) else value


class TariffOut(Out):
    id: int
    site_id: int
    code: str
    name: str
    utility: Utility
    created_at: datetime
    versions: list[TariffVersionOut]
    warnings: list[str] = Field(
        default=[],
        description="legal warnings: a top-up fee (物业管理条例 第四十四条), resale above catalog",
    )


class UsageIn(In):
    quantity: Quantity
    start: AwareDatetime
    end: AwareDatetime
    registers: dict[Period, Quantity] | None = Field(
        default=None, description="the TOU register deltas (tip, peak, flat, valley), if any"
    )
    time_zone: str = Field(
        default="Asia/Shanghai", description="for TOU windows and cycle starts from timestamps"
    )


class TierStateIn(In):
    cycle_start: date
    consumed: Quantity = Decimal(0)


class QuoteIn(In):
    profile: list[UsageIn] = Field(min_length=1, max_length=10_000)
    state: TierStateIn | None = Field(
        default=None, description="where the account stands in its tier cycle before the profile"
    )


class QuoteLineOut(BaseModel):
    component: str = Field(description='"energy" or "surcharge:<code>"')
    tier: int | None
    period: Period | None
    quantity: str
    unit_price: str
    amount: str = Field(description="exact, not rounded (元)")


class TierStateOut(BaseModel):
    cycle_start: date
    consumed: str


class QuoteOut(BaseModel):
    lines: list[QuoteLineOut]
    totals: dict[str, str] = Field(description="per component, 元, adding up to total")
    total: str = Field(description="rounded once, half up, to the fen")
    exact_total: str
    state: TierStateOut | None


class Thresholds(In):
    warning1: Yuan | None = Field(default=None, description="first low-balance warning, 元")
    warning2: Yuan | None = None
    credit_limit: Yuan | None = Field(default=None, description="透支额度, 元")
    disconnect: Yuan | None = None
    reconnect: Yuan | None = None


class AccountIn(Thresholds):
    unit_id: int
    utility: Utility
    tariff_id: int
    customer_id: int | None = None
    number: Annotated[str, Field(min_length=1, max_length=64)] | None = None


class AccountPatch(Thresholds):
    customer_id: int | None = None
    tariff_id: int | None = None
    reason: str = ""


class AccountOut(Out):
    id: int
    site_id: int
    unit_id: int
    customer_id: int | None
    number: str
    utility: Utility
    tariff_id: int
    status: str
    supply_state: str
    balance: Yuan
    opened_at: datetime
    thresholds: dict[str, str | None]


class MeterIn(In):
    unit_id: int
    utility: Utility
    protocol: Protocol
    address: Annotated[str, Field(min_length=1, max_length=32)]
    account_id: int | None = None
    gateway_id: int | None = None
    multiplier: int = Field(default=1, ge=1, le=100_000)
    register_capacity: PositiveQuantity | None = Field(
        default=None, description="register wraps here"
    )
    max_rate_per_hour: PositiveQuantity | None = Field(
        default=None, description="kWh/h or m³/h max"
    )
    has_switch: bool = False
    serial: str | None = None
    model: str | None = None
    initial_total: Quantity = Decimal(0)
    installed_at: AwareDatetime | None = None


class MeterPatch(Patch):
    not_null = frozenset({"status", "has_switch"})

    account_id: int | None = None
    gateway_id: int | None = None
    status: MeterStatus | None = None
    max_rate_per_hour: PositiveQuantity | None = None
    has_switch: bool | None = None
    reason: str = ""


class MeterReplaceIn(In):
    final_total: Quantity
    replaced_at: AwareDatetime
    new_address: Annotated[str, Field(min_length=1, max_length=32)]
    new_initial_total: Quantity = Decimal(0)
    new_serial: str | None = None
    new_multiplier: int | None = Field(default=None, ge=1)
    reason: Annotated[str, Field(min_length=1, max_length=500)]


class MeterOut(Out):
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
    register_capacity: Annotated[Decimal | None, AsText]
    max_rate_per_hour: Annotated[Decimal | None, AsText]
    has_switch: bool
    status: MeterStatus
    installed_at: datetime
    last_read_at: datetime | None
    last_total: Annotated[Decimal | None, AsText]
    link_status: str = Field(description="online, offline or unknown: whether the meter answers")
    last_heard_at: datetime | None


EXTERNAL_SOURCES = frozenset({ReadingSource.HTTP, ReadingSource.MANUAL, ReadingSource.IMPORT})


class ReadingItem(In):
    meter_id: int
    read_at: AwareDatetime = Field(description="the meter's own time, with offset")
    total: Quantity = Field(description="cumulative register value")
    tip: Quantity | None = None
    peak: Quantity | None = None
    flat: Quantity | None = None
    valley: Quantity | None = None
    status_word: int | None = Field(default=None, ge=0, le=0xFFFF)
    source: ReadingSource = Field(
        default=ReadingSource.HTTP, description="http, manual or import (others are internal)"
    )

    @field_validator("source")
    @classmethod
    def _external_source(cls, source: ReadingSource) -> ReadingSource:
        if source not in EXTERNAL_SOURCES:
            raise ValueError(f"source must be one of {sorted(EXTERNAL_SOURCES)}")
        return source


class ReadingsIn(In):
    readings: list[ReadingItem] = Field(min_length=1, max_length=50_000)


class ReadingResult(Out):
    meter_id: int
    read_at: datetime
    reading_id: int | None
    stored: bool
    quality: str
    flags: list[str]
    consumption: str
    charge: str


class ReadingsOut(BaseModel):
    counts: dict[str, int]
    charged: str
    results: list[ReadingResult]


class TopUpIn(In):
    amount: Annotated[Decimal, Field(gt=0, le=Decimal("1000000"), decimal_places=2)]
    idempotency_key: Annotated[str, Field(min_length=1, max_length=120)]
    note: Annotated[str, Field(max_length=500)] = ""


class TopUpOut(BaseModel):
    transfer_id: int
    amount: str
    balance: str
    duplicate: bool


class LedgerEntryOut(BaseModel):
    id: int
    at: datetime
    kind: str
    amount: str = Field(description="signed for the account: + money in, - money out")
    memo: str
    actor: str
    key: str


class LedgerPage(BaseModel):
    items: list[LedgerEntryOut]
    next_before_id: int | None = Field(
        description="newest first: pass as before_id to get the next (older) page"
    )
