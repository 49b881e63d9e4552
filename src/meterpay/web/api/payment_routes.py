"""Online top-ups under /api/v1: orders, and the providers' notification endpoints.

The notification endpoints carry no bearer token: each provider signs its
notifications and the provider module verifies them over the raw body. Parse, call
one service, answer the provider in its own words.
"""

from __future__ import annotations

import asyncio
from datetime import date, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Request, Response
from pydantic import Field

from meterpay.auth.model import Permission as P
from meterpay.kernel.money import Money
from meterpay.payments import reconcile, refunds, registry
from meterpay.payments import service as payments
from meterpay.payments.merchants import CODE, DEFAULT
from meterpay.payments.model import Order
from meterpay.payments.provider import BadNotification, Channel, ProviderName
from meterpay.web.api import schemas as s
from meterpay.web.api.deps import Actor, Rt
from meterpay.web.api.push_routes import Body
from meterpay.web.guard import allow, public

MerchantCode = Annotated[str, Field(pattern=CODE.pattern, description="a site's own merchant")]

router = APIRouter(tags=["payments"])
notify_router = APIRouter(prefix="/payments/notify", tags=["payments"])
SIGNED_BY_PROVIDER = public("the provider signs its notifications")


class OrderIn(s.In):
    amount: s.Yuan = Field(description='元, e.g. "100.00"')
    provider: ProviderName
    channel: Channel = Channel.NATIVE
    payer_openid: Annotated[str, Field(max_length=128)] | None = None


class OrderOut(s.Out):
    id: int
    out_trade_no: str
    provider: ProviderName
    merchant: str = Field(description="the site's own merchant; empty: the default merchant")
    channel: Channel
    account_id: int
    amount: str
    state: str
    created_at: datetime
    expires_at: datetime
    paid_at: datetime | None
    credited_at: datetime | None
    transaction_id: str | None
    code_url: str | None = Field(description="the QR code's content (Native)")
    pay_url: str | None = Field(description="a page to pay on (sandbox)")
    jsapi_params: dict[str, str] | None = Field(
        default=None, description="JSAPI: what WeixinJSBridge needs (only when the order is made)"
    )
    note: str


def _out(order: Order) -> OrderOut:
    return OrderOut(
        id=order.id,
        out_trade_no=order.out_trade_no,
        provider=order.provider,
        merchant=order.merchant,
        channel=order.channel,
        account_id=order.account_id,
        amount=str(order.amount),
        state=order.state.value,
        created_at=order.created_at,
        expires_at=order.expires_at,
        paid_at=order.paid_at,
        credited_at=order.credited_at,
        transaction_id=order.transaction_id,
        code_url=order.code_url,
        pay_url=order.pay_url,
        jsapi_params=dict(order.jsapi_params) if order.jsapi_params else None,
        note=order.note,
    )


@router.post(
    "/accounts/{account_id}/topup-orders",
    dependencies=[allow(P.TOPUP, owners=True)],
    status_code=201,
)
async def create_order(
    rt: Rt, actor: Actor, request: Request, account_id: int, body: OrderIn
) -> OrderOut:
    """An online top-up: the order and the provider's way to pay it."""
    order = await asyncio.to_thread(
        payments.create_order,
        rt,
        account_id=account_id,
        amount=Money.from_yuan(body.amount),
        provider=body.provider,
        channel=body.channel,
        requested_by=actor,
        payer_openid=body.payer_openid,
    )
    return _out(order)


@router.get(
    "/accounts/{account_id}/topup-orders",
    dependencies=[allow(P.SITE_READ, owners=True)],
)
def list_orders(rt: Rt, account_id: int) -> list[OrderOut]:
    return [_out(o) for o in payments.orders_of(rt, account_id)]


@router.get(
    "/topup-orders/{order_id}",
    dependencies=[allow(P.SITE_READ, owners=True)],
)
def get_order(rt: Rt, order_id: int) -> OrderOut:
    return _out(payments.get_order(rt, order_id))


@notify_router.post("/{provider}", dependencies=[SIGNED_BY_PROVIDER], include_in_schema=True)
async def notify(rt: Rt, request: Request, provider: ProviderName, body: Body) -> Response:
    """Called by WeChat Pay, Alipay or the sandbox for the default merchant; verified,
    stored, credited exactly once."""
    return await _notified(rt, request, provider, DEFAULT, body)


@notify_router.post(
    "/{provider}/{merchant}", dependencies=[SIGNED_BY_PROVIDER], include_in_schema=True
)
async def notify_merchant(
    rt: Rt, request: Request, provider: ProviderName, merchant: MerchantCode, body: Body
) -> Response:
    """The same for a site's own merchant (``MP_PAYMENT_MERCHANTS_FILE``)."""
    return await _notified(rt, request, provider, merchant, body)


async def _notified(
    rt: Rt, request: Request, provider: ProviderName, merchant: str, body: bytes
) -> Response:
    remote = request.client.host if request.client else None
    try:
        taken = await asyncio.to_thread(
            payments.take_notification,
            rt,
            provider,
            dict(request.headers),
            body,
            merchant=merchant,
            remote_addr=remote,
        )
    except BadNotification as exc:
        refused = registry.provider_of(rt, provider, merchant).answer(
            accepted=False, message=exc.message
        )
        return Response(refused.body, status_code=401, media_type=refused.content_type)
    answer = taken.answer
    return Response(answer.body, status_code=answer.status, media_type=answer.content_type)


class ReconcileIn(s.In):
    provider: ProviderName
    merchant: MerchantCode | Literal[""] = Field(
        default="", description="a site's own merchant; empty: the provider's default merchant"
    )
    day: date = Field(description="the statement's day (China time), e.g. 2026-11-26")


class FindingOut(s.Out):
    finding: str
    out_trade_no: str
    ours: str | None
    theirs: str | None
    transaction_id: str | None
    action: str


class RunOut(s.Out):
    id: int
    provider: ProviderName
    merchant: str = Field(description="empty: the provider's default merchant")
    day: date
    ran_at: datetime
    ran_by: str
    status: str = Field(description="clean, discrepancies or failed (no statement)")
    matched: int
    totals: dict[str, str] = Field(description="元: paid, refunds, fees, credited, statement")
    error: str
    items: list[FindingOut]


def _yuan(fen: int | None) -> str | None:
    return None if fen is None else str(Money(fen))


def _run(found: reconcile.Run) -> RunOut:
    return RunOut(
        id=found.id,
        provider=found.provider,
        merchant=found.merchant,
        day=found.day,
        ran_at=found.ran_at,
        ran_by=found.ran_by,
        status=found.status,
        matched=found.matched,
        totals={k.removesuffix("_fen"): str(Money(v)) for k, v in found.totals.items()},
        error=found.error,
        items=[
            FindingOut(
                finding=i.finding.value,
                out_trade_no=i.out_trade_no,
                ours=_yuan(i.ours_fen),
                theirs=_yuan(i.theirs_fen),
                transaction_id=i.transaction_id,
                action=i.action,
            )
            for i in found.items
        ],
    )


@router.post(
    "/reconciliations", dependencies=[allow(P.RECONCILE, everywhere=True)], status_code=201
)
async def run_reconciliation(rt: Rt, actor: Actor, body: ReconcileIn) -> RunOut:
    """Match a provider's statement for a day to our top-ups, and act on the differences."""
    found = await asyncio.to_thread(
        reconcile.reconcile, rt, body.provider, body.day, by=actor, merchant=body.merchant
    )
    return _run(found)


@router.get(
    "/reconciliations",
    dependencies=[allow(P.RECONCILE, everywhere=True)],
)
def list_reconciliations(rt: Rt, provider: ProviderName | None = None) -> list[RunOut]:
    return [_run(r) for r in reconcile.runs(rt, provider=provider)]


@router.get(
    "/reconciliations/{run_id}",
    dependencies=[allow(P.RECONCILE, everywhere=True)],
)
def get_reconciliation(rt: Rt, run_id: int) -> RunOut:
    return _run(reconcile.get_run(rt, run_id))


class RefundIn(s.In):
    amount: s.Yuan = Field(description="元; at most what is left of the top-up and unspent")
    reason: Annotated[str, Field(min_length=1, max_length=200)]
    idempotency_key: Annotated[str, Field(min_length=1, max_length=64)]


class RefundOut(s.Out):
    id: int
    order_id: int
    out_refund_no: str
    amount: str
    state: str = Field(description="processing, succeeded or failed")
    reason: str
    requested_by: str
    created_at: datetime
    done_at: datetime | None
    refund_id: str | None
    note: str


def _refund(r: refunds.TopupRefund) -> RefundOut:
    return RefundOut(
        id=r.id,
        order_id=r.order_id,
        out_refund_no=r.out_refund_no,
        amount=str(Money(r.amount_fen)),
        state=r.state.value,
        reason=r.reason,
        requested_by=r.requested_by,
        created_at=r.created_at,
        done_at=r.done_at,
        refund_id=r.refund_id,
        note=r.note,
    )


@router.post("/topup-orders/{order_id}/refunds", dependencies=[allow(P.REFUND)], status_code=201)
async def refund_order(rt: Rt, actor: Actor, order_id: int, body: RefundIn) -> RefundOut:
    """Refund part or all of a credited online top-up through its provider."""
    done = await asyncio.to_thread(
        refunds.refund,
        rt,
        order_id=order_id,
        amount=Money.from_yuan(body.amount),
        reason=body.reason,
        by=actor,
        idempotency_key=body.idempotency_key,
    )
    return _refund(done)


@router.get(
    "/topup-orders/{order_id}/refunds",
    dependencies=[allow(P.SITE_READ)],
)
def list_refunds(rt: Rt, order_id: int) -> list[RefundOut]:
    return [_refund(r) for r in refunds.refunds_of(rt, order_id)]
