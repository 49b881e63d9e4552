"""Billing runs and what-ifs under /api/v1: monthly fees, resale model 2, account quotes.

Parse, call one service, render; money as decimal strings (元).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import AwareDatetime, BaseModel, Field, field_validator

from meterpay.auth.model import Permission as P
from meterpay.billing import fees
from meterpay.billing.resale import ResaleModel, set_supply, share_supplier_bill
from meterpay.kernel.money import Money
from meterpay.kernel.quantity import Utility
from meterpay.tariffs import service as tariffs
from meterpay.tariffs.components import TariffComponents
from meterpay.tariffs.fields import field_scope
from meterpay.web.api import schemas as s
from meterpay.web.api.deps import Actor, Rt
from meterpay.web.api.tariff_routes import quote_out
from meterpay.web.guard import allow

router = APIRouter(tags=["billing"])


def _first_of_month(month: date) -> date:
    if month.day != 1:
        raise ValueError("give the first day of the month, e.g. 2026-11-01")
    return month


class FeeRunIn(s.In):
    month: date = Field(description="the first day of the month to charge")
    site_id: int | None = None

    _month = field_validator("month")(_first_of_month)


class FeeRunOut(BaseModel):
    month: date
    charged: list[dict[str, Any]]
    already_charged: int
    total: str


@router.post("/fees/runs", dependencies=[allow(P.TARIFF_WRITE)], response_model=FeeRunOut)
def run_monthly_fees(body: FeeRunIn, rt: Rt, actor: Actor) -> Any:
    """Charge the month's fixed fees (月服务费 …); running it again charges nothing twice."""
    run = fees.charge_monthly_fees(rt, month=body.month, site_id=body.site_id, actor=actor)
    return FeeRunOut(
        month=run.month,
        already_charged=run.already,
        total=str(Money(run.total_fen)),
        charged=[
            {"account_id": a, "fee": code, "amount": str(Money(fen))}
            for a, code, fen in run.charged
        ],
    )


class SupplyIn(s.In):
    resale_model: ResaleModel = Field(description="catalog (model 1) or shared (model 2)")
    catalog_price: s.UnitPrice | None = Field(default=None, description="元 per kWh/m³ paid")


@router.put(
    "/sites/{site_id}/supply/{utility}", dependencies=[allow(P.TARIFF_WRITE)], status_code=204
)
def set_site_supply(site_id: int, utility: Utility, body: SupplyIn, rt: Rt, actor: Actor) -> None:
    """How the site resells this utility (转供电/转供水) and the catalog price it pays."""
    set_supply(
        rt,
        site_id=site_id,
        utility=utility,
        model=body.resale_model,
        catalog_price=body.catalog_price,
        actor=actor,
    )


class SupplierBillIn(s.In):
    utility: Utility
    month: date
    amount: Annotated[s.Yuan, Field(gt=0)]
    evidence: Annotated[str, Field(min_length=1, max_length=500)]
    landlord_account_ids: list[int] = Field(
        default_factory=list, description="the landlord's own accounts: never charged a share"
    )

    _month = field_validator("month")(_first_of_month)


class ShareOut(BaseModel):
    supplier_bill_id: int
    shares: dict[int, str]
    landlord_keeps: str


@router.post(
    "/sites/{site_id}/supplier-bills", dependencies=[allow(P.TARIFF_WRITE)], response_model=ShareOut
)
def share_bill(site_id: int, body: SupplierBillIn, rt: Rt, actor: Actor) -> Any:
    """Resale model 2: share the supplier's monthly bill by sub-meter consumption."""
    run = share_supplier_bill(
        rt,
        site_id=site_id,
        utility=body.utility,
        month=body.month,
        amount=Money.from_yuan(body.amount),
        evidence=body.evidence,
        landlord_account_ids=set(body.landlord_account_ids),
        actor=actor,
    )
    return ShareOut(
        supplier_bill_id=run.bill_id,
        shares={a: str(Money(fen)) for a, fen in run.shares.items()},
        landlord_keeps=str(Money(run.landlord_fen)),
    )


class AccountQuoteIn(s.In):
    components: dict[str, Any] = Field(description="a draft tariff's components")
    start: AwareDatetime
    end: AwareDatetime


@router.post(
    "/accounts/{account_id}/quote",
    dependencies=[allow(P.SITE_READ, owners=True)],
    response_model=s.QuoteOut,
)
def quote_account(account_id: int, body: AccountQuoteIn, rt: Rt) -> Any:
    """What the account would have paid for its metered use in [start, end) under a draft."""
    with field_scope("components"):
        components = TariffComponents.from_dict(body.components)
    return quote_out(
        tariffs.quote_account(rt, account_id, components, start=body.start, end=body.end)
    )
