"""Move-out settlements (退费) under /api/v1: settle an account when its occupant moves
out, read a settlement, list an account's. Parse, call one service
(``meterpay.ledger.settlement``), render."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Response
from pydantic import AwareDatetime, BaseModel, Field

from meterpay.auth.model import Permission as P
from meterpay.ledger import settlement as service
from meterpay.ledger.settlement_model import Payout, Settlement
from meterpay.metering.meters import ReadingIn, ReadingSource
from meterpay.web.api import schemas as s
from meterpay.web.api.deps import Actor, Rt
from meterpay.web.guard import allow

router = APIRouter(tags=["move-out"])


class FinalReadingIn(s.In):
    meter_id: int
    read_at: AwareDatetime = Field(description="when the meter was read, with offset")
    total: s.Quantity = Field(description="cumulative register value")
    tip: s.Quantity | None = None
    peak: s.Quantity | None = None
    flat: s.Quantity | None = None
    valley: s.Quantity | None = None


class MoveOutIn(s.In):
    final_readings: list[FinalReadingIn] = Field(
        default_factory=list,
        max_length=100,
        description="one per meter of the account; none when they were read already",
    )
    payout: Payout = Field(
        description="`cash` (现金退费) or `transfer` (into the next occupant's account)"
    )
    to_account_id: int | None = Field(
        default=None,
        description="the next occupant's account (same unit and utility): required for "
        "`transfer`; with `cash`, the meters are still handed over to it",
    )
    reason: Annotated[str, Field(max_length=500)] = Field(description="required, not blank")
    idempotency_key: Annotated[str, Field(min_length=1, max_length=120)]


class FinalReadingOut(BaseModel):
    meter_id: int
    address: str
    read_at: datetime
    total: str
    charge: str = Field(description="what this reading charged at the settlement")
    entered: bool = Field(description="entered with the settlement (else read before)")


class HandedOverOut(BaseModel):
    meter_id: int
    address: str
    to_account_id: int | None = Field(description="null: left without an account")


class SettlementOut(BaseModel):
    id: int
    account_id: int
    site_id: int
    final_readings: list[FinalReadingOut]
    charges: str = Field(description="what the final readings charged")
    balance: str = Field(description="the balance after the final charges, before the payout")
    payout: Payout
    payout_amount: str
    to_account_id: int | None
    transfer_key: str | None
    debt: str = Field(description="arrears left on the closed account (the person's debt)")
    meters: list[HandedOverOut]
    settled_by: str
    at: datetime
    reason: str
    idempotency_key: str
    duplicate: bool = Field(description="true when this idempotency key was used before")
    print_url: str


@router.post(
    "/accounts/{account_id}/move-out",
    dependencies=[allow(P.REFUND)],
    status_code=201,
    response_model=SettlementOut,
)
def move_out(
    account_id: int, body: MoveOutIn, rt: Rt, actor: Actor, response: Response
) -> SettlementOut:
    """退费: final readings billed, the balance paid out in cash or transferred to the
    next occupant (arrears stay on the closed account as its debt), the meters handed
    over, the account closed. The same idempotency key again answers 200 with the same
    settlement; another request under it, or a closed account, is a 409."""
    readings = [
        ReadingIn(**item.model_dump(), source=ReadingSource.MANUAL) for item in body.final_readings
    ]
    settled = service.settle_move_out(
        rt,
        account_id=account_id,
        final_readings=readings,
        payout=body.payout,
        to_account_id=body.to_account_id,
        reason=body.reason,
        by=actor,
        idempotency_key=body.idempotency_key,
    )
    if settled.duplicate:
        response.status_code = 200
    return _out(settled)


@router.get(
    "/settlements/{settlement_id}",
    dependencies=[allow(P.SITE_READ, owners=True)],
    response_model=SettlementOut,
)
def get_settlement(settlement_id: int, rt: Rt) -> SettlementOut:
    return _out(service.get_settlement(rt, settlement_id))


@router.get(
    "/accounts/{account_id}/settlements",
    dependencies=[allow(P.SITE_READ, owners=True)],
    response_model=list[SettlementOut],
)
def account_settlements(account_id: int, rt: Rt) -> list[SettlementOut]:
    """The settlement that closed the account and those that handed over to it."""
    return [_out(found) for found in service.settlements_of(rt, account_id)]


def _out(found: Settlement) -> SettlementOut:
    return SettlementOut(
        id=found.id,
        account_id=found.account_id,
        site_id=found.site_id,
        final_readings=[
            FinalReadingOut(
                meter_id=r.meter_id,
                address=r.address,
                read_at=r.read_at,
                total=str(r.total),
                charge=str(r.charge),
                entered=r.entered,
            )
            for r in found.final_readings
        ],
        charges=str(found.charges),
        balance=str(found.balance),
        payout=found.payout,
        payout_amount=str(found.payout_amount),
        to_account_id=found.to_account_id,
        transfer_key=found.transfer_key,
        debt=str(found.debt),
        meters=[
            HandedOverOut(meter_id=m.meter_id, address=m.address, to_account_id=m.to_account_id)
            for m in found.meters
        ],
        settled_by=found.settled_by,
        at=found.at,
        reason=found.reason,
        idempotency_key=found.idempotency_key,
        duplicate=found.duplicate,
        print_url=f"/console/settlements/{found.id}",
    )
