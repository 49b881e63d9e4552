"""The cash counter under /api/v1/counter: take a cash or POS payment and get its
receipt, read a receipt, reverse one with a reason, a cashier's shift totals.
Parse, call one service (``meterpay.ledger.cash``), render."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from meterpay.auth.model import Permission as P
from meterpay.kernel.money import Money
from meterpay.ledger import cash
from meterpay.ledger.cash_model import Issued, PaymentMethod, ShiftReport
from meterpay.web.api import schemas as s
from meterpay.web.api.deps import Actor, Rt
from meterpay.web.guard import allow

router = APIRouter(prefix="/counter", tags=["counter"])


class PaymentIn(s.In):
    account_id: int
    amount: Annotated[Decimal, Field(gt=0, le=Decimal("1000000"), decimal_places=2)] = Field(
        description='元, e.g. "100.00"'
    )
    method: PaymentMethod = Field(description="`cash` (现金) or `pos` (银行卡 POS)")
    idempotency_key: Annotated[str, Field(min_length=1, max_length=120)]
    note: Annotated[str, Field(max_length=500)] = ""


class ReversalIn(s.In):
    reason: Annotated[str, Field(max_length=500)] = Field(description="required, not blank")


class ReversalOut(BaseModel):
    transfer_key: str
    reason: str
    reversed_by: str
    at: datetime
    balance_after: str


class ReceiptOut(BaseModel):
    receipt_no: str
    site_id: int
    account_id: int
    amount: str
    amount_words: str = Field(description="大写金额, e.g. 壹佰元整")
    method: PaymentMethod
    cashier: str
    at: datetime
    note: str
    transfer_key: str
    balance_after: str = Field(description="the wallet's balance right after the payment")
    reversed: bool
    reversal: ReversalOut | None
    duplicate: bool = Field(description="true when this idempotency key was used before")
    print_url: str


class ShiftLineOut(BaseModel):
    receipt_no: str
    at: datetime
    account_id: int
    method: PaymentMethod
    amount: str


class ShiftReversalOut(ShiftLineOut):
    reversed_at: datetime
    reversed_by: str
    reason: str


class ShiftOut(BaseModel):
    cashier: str | None
    site_id: int | None
    start: datetime
    end: datetime
    payments: int
    reversals: int
    taken: dict[PaymentMethod, str]
    reversed: dict[PaymentMethod, str]
    net: dict[PaymentMethod, str]
    total_taken: str
    total_reversed: str
    total_net: str
    receipt_lines: list[ShiftLineOut]
    reversal_lines: list[ShiftReversalOut]


@router.post(
    "/payments", dependencies=[allow(P.COUNTER)], status_code=201, response_model=ReceiptOut
)
def take_payment(body: PaymentIn, rt: Rt, actor: Actor, response: Response) -> ReceiptOut:
    """Cash or POS money at the counter, with its numbered receipt; the same
    idempotency key again answers 200 with the same receipt and moves nothing."""
    issued = cash.take_payment(
        rt,
        account_id=body.account_id,
        amount=Money.from_yuan(body.amount),
        method=body.method,
        idempotency_key=body.idempotency_key,
        cashier=actor,
        note=body.note,
    )
    if issued.duplicate:
        response.status_code = 200
    return _receipt(issued)


@router.get(
    "/receipts/{receipt_no}",
    dependencies=[allow(P.SITE_READ, owners=True)],
    response_model=ReceiptOut,
)
def get_receipt(receipt_no: str, rt: Rt) -> ReceiptOut:
    return _receipt(cash.receipt(rt, receipt_no))


@router.post(
    "/receipts/{receipt_no}/reverse", dependencies=[allow(P.COUNTER)], response_model=ReceiptOut
)
def reverse_receipt(receipt_no: str, body: ReversalIn, rt: Rt, actor: Actor) -> ReceiptOut:
    """Undo a receipt by reversing transfers, once, with a reason (409
    ``already_reversed`` the second time); the balance may fall into arrears."""
    return _receipt(cash.reverse(rt, receipt_no=receipt_no, reason=body.reason, by=actor))


@router.get("/shift", dependencies=[allow(P.COUNTER)], response_model=ShiftOut)
def shift(
    rt: Rt,
    start: datetime,
    end: datetime,
    cashier: Annotated[str | None, Query(max_length=120)] = None,
    site_id: int | None = None,
) -> ShiftOut:
    """A cashier's receipts in ``[start, end)`` and the reversals of their receipts made
    then, totalled per method (no ``cashier``: everyone's)."""
    return _shift(cash.shift_report(rt, cashier=cashier, start=start, end=end, site_id=site_id))


def _receipt(issued: Issued) -> ReceiptOut:
    r, reversal = issued.receipt, issued.reversal
    return ReceiptOut(
        receipt_no=r.receipt_no,
        site_id=r.site_id,
        account_id=r.account_id,
        amount=str(r.amount),
        amount_words=r.amount_words,
        method=r.method,
        cashier=r.cashier,
        at=r.at,
        note=r.note,
        transfer_key=r.transfer_key,
        balance_after=str(r.balance_after),
        reversed=reversal is not None,
        reversal=None
        if reversal is None
        else ReversalOut(
            transfer_key=reversal.transfer_key,
            reason=reversal.reason,
            reversed_by=reversal.reversed_by,
            at=reversal.at,
            balance_after=str(reversal.balance_after),
        ),
        duplicate=issued.duplicate,
        print_url=f"/console/receipts/{r.receipt_no}",
    )


def _shift(report: ShiftReport) -> ShiftOut:
    return ShiftOut(
        cashier=report.cashier,
        site_id=report.site_id,
        start=report.start,
        end=report.end,
        payments=len(report.receipts),
        reversals=len(report.reversals),
        taken={m: str(v) for m, v in report.taken.items()},
        reversed={m: str(v) for m, v in report.reversed.items()},
        net={m: str(v) for m, v in report.net.items()},
        total_taken=str(report.total_taken),
        total_reversed=str(report.total_reversed),
        total_net=str(report.total_net),
        receipt_lines=[
            ShiftLineOut(
                receipt_no=r.receipt_no,
                at=r.at,
                account_id=r.account_id,
                method=r.method,
                amount=str(r.amount),
            )
            for r in report.receipts
        ],
        reversal_lines=[
            ShiftReversalOut(
                receipt_no=line.receipt.receipt_no,
                at=line.receipt.at,
                account_id=line.receipt.account_id,
                method=line.receipt.method,
                amount=str(line.receipt.amount),
                reversed_at=line.reversal.at,
                reversed_by=line.reversal.reversed_by,
                reason=line.reversal.reason,
            )
            for line in report.reversals
        ],
    )
