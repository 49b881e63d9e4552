"""The payment sandbox under ``/sandbox-pay``, served only when the runtime has one
(``MP_SANDBOX_PAY``, on in ``meterpay demo``):

- ``/sandbox-pay/v3/…``: WeChat Pay API v3 as ``payments.sandbox`` answers it; our own
  ``SandboxPay`` client calls it over HTTP, signed and verified like WeChat's;
- ``/sandbox-pay/pay/{out_trade_no}``: the payer's page (zh-CN first, for a phone that
  scanned the order's QR code): pay, with duplicate and delayed notifications on request.

No bearer token here: the API checks the merchant's signature, and the pay page is
the demo's "phone". The handlers parse, call the sandbox, render.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final
from urllib.parse import parse_qsl, quote

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import RedirectResponse, Response

from meterpay.kernel.errors import Conflict, DomainError, InvalidInput, NotFound
from meterpay.kernel.money import Money
from meterpay.payments.provider import ProviderName
from meterpay.payments.sandbox import ApiRequest, SandboxOrder
from meterpay.payments.sandbox_pay import MAX_DELAY_S, MAX_DUPLICATES, MOUNT_PATH, SandboxPay
from meterpay.payments.wechat_sign import CHINA
from meterpay.runtime import Runtime
from meterpay.web.api.deps import Rt
from meterpay.web.api.push_routes import Body
from meterpay.web.console.templating import render
from meterpay.web.guard import public

MERCHANT: Final = "meterpay 沙箱商户"
router = APIRouter(prefix=MOUNT_PATH, include_in_schema=False)
SANDBOX = public("the payment sandbox: a provider of its own (demo and tests only)")
_PAGE_STATUS: Final = ((NotFound, 404), (Conflict, 409), (InvalidInput, 422))


def mount(app: FastAPI, rt: Runtime) -> None:
    """Serve the sandbox when ``rt`` has one."""
    if isinstance(rt.payments.get(ProviderName.SANDBOX), SandboxPay):
        app.include_router(router)


def _sandbox(rt: Runtime) -> SandboxPay:
    found = rt.payments.get(ProviderName.SANDBOX)
    if not isinstance(found, SandboxPay):
        raise NotFound("the payment sandbox is off here")
    return found


@router.api_route("/v3/{rest:path}", methods=["GET", "POST"], dependencies=[SANDBOX])
def api(request: Request, rt: Rt, body: Body, rest: str) -> Response:
    """WeChat Pay API v3; the signature covers the path as the client sent it."""
    sandbox = _sandbox(rt).sandbox
    raw = request.scope.get("raw_path") or request.url.path.encode()
    relative = "/" + raw.decode("latin-1").partition(MOUNT_PATH + "/")[2]
    query = request.scope.get("query_string", b"").decode("latin-1")
    target = sandbox.mount_path + relative + (f"?{query}" if query else "")
    headers = {name.lower(): value for name, value in request.headers.items()}
    reply = sandbox.handle(ApiRequest(request.method, target, headers, body))
    return Response(reply.body, status_code=reply.status, headers=reply.headers)


@router.get("/pay/{out_trade_no}", dependencies=[SANDBOX])
def pay_page(request: Request, rt: Rt, out_trade_no: str, back: str = "/") -> Response:
    return _page(request, _sandbox(rt), out_trade_no, _safe_back(back))


@router.post("/pay/{out_trade_no}", dependencies=[SANDBOX])
def pay(request: Request, rt: Rt, out_trade_no: str, body: Body) -> Response:
    """The payer pays; the notifications follow from a background thread."""
    sandbox = _sandbox(rt)
    form = dict(parse_qsl(body.decode("utf-8", errors="replace")))
    back = _safe_back(form.get("back", "/"))
    try:
        sandbox.pay_and_notify(
            out_trade_no,
            duplicates=_whole(form.get("duplicates", "0"), "duplicates"),
            delay_s=_whole(form.get("delay", "0") or "0", "delay"),
        )
    except DomainError as exc:
        status = next((s for kind, s in _PAGE_STATUS if isinstance(exc, kind)), 422)
        return _page(request, sandbox, out_trade_no, back, error=exc.message, status=status)
    return RedirectResponse(f"{request.url.path}?back={quote(back, safe='/')}", status_code=303)


def _whole(value: str, name: str) -> int:
    if not value.strip().isdigit():
        raise InvalidInput(f"{name} must be a whole number", field=name)
    return int(value)


def _safe_back(back: str) -> str:
    """Only a path on this site: never an open redirect."""
    ok = back.startswith("/") and not back.startswith("//") and "\\" not in back
    return back if ok else "/"


def _page(
    request: Request,
    sandbox: SandboxPay,
    out_trade_no: str,
    back: str,
    *,
    error: str = "",
    status: int = 200,
) -> Response:
    order = sandbox.sandbox.orders.get(out_trade_no)
    context = {
        "order": order,
        "back": back,
        "error": error,
        "merchant": MERCHANT,
        "mchid": sandbox.sandbox.keys.mchid,
        "max_duplicates": MAX_DUPLICATES,
        "max_delay": MAX_DELAY_S,
        "answer_word": _answer_word,
        "action": request.url.path,
        **_order_view(sandbox, order),
    }
    if order is None and not error:
        status = 404
    response = render(request, "sandbox_pay.html", context)
    response.status_code = status
    return response


def _order_view(sandbox: SandboxPay, order: SandboxOrder | None) -> dict[str, object]:
    if order is None:
        return {"paid": False, "payable": False, "waiting": False, "deliveries": []}
    now = sandbox.sandbox.clock.now()
    paid = order.trade_state in ("SUCCESS", "REFUND")
    deliveries = sandbox.deliveries(order.out_trade_no)
    return {
        "amount": Money(order.total),
        "expires": datetime.fromisoformat(order.time_expire).astimezone(CHINA).strftime("%H:%M"),
        "paid": paid,
        "payable": order.trade_state == "NOTPAY" and not order.expired(now),
        "waiting": paid and len(deliveries) < sandbox.planned(order.out_trade_no),
        "deliveries": deliveries,
    }


def _answer_word(status: int) -> str:
    if 200 <= status < 300:
        return f"已收到 received ({status})"
    if status == 0:
        return "无法连接 unreachable"
    return f"要求重发 asked to resend ({status})"
