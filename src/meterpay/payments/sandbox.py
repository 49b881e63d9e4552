"""A WeChat Pay API v3 server of our own (微信支付沙箱): the demo's payment provider and the
tests' fake WeChat Pay. Sans-I/O: ``WechatSandbox.handle`` takes one request as received
and returns the answer; the web layer (``meterpay.web.sandbox_routes``) or a test's
socket server carries the bytes.

It checks what WeChat checks and signs what WeChat signs, written here from WeChat's
documentation with ``cryptography`` directly rather than through ``wechat_sign``'s
request signing and response checking, so a signing bug in our client is refused here
as WeChat would refuse it:
- every request must carry ``Authorization: WECHATPAY2-SHA256-RSA2048 …`` for the
  merchant's mchid and serial, a timestamp within 5 minutes of the sandbox's clock, and a
  SHA256withRSA signature over ``METHOD\\nPATH?QUERY\\nTIMESTAMP\\nNONCE\\nBODY\\n`` that
  the merchant public key verifies; otherwise 401 ``SIGN_ERROR`` (unsigned, as WeChat);
- every other answer is signed with the platform key over ``TIMESTAMP\\nNONCE\\nBODY\\n``,
  under a certificate serial or a ``PUB_KEY_ID_…`` (``SandboxKeys.mode``); the bill
  download is the one unsigned answer.

It serves Native and JSAPI orders, query, close, refunds, ``tradebill`` and the bill
download (``sandbox_bill``). Orders (``sandbox_orders``) live in memory, in one process,
until it stops; ``mount_path`` is the prefix the API is served under, and the signature
covers the path as the client sent it, prefix included.
Notifications come from ``payment_notification`` / ``refund_notification``, encrypted
and signed as WeChat sends them (``wechat_sign.sign_notification``).

Keys (``sandbox_keys.SandboxKeys``) are generated when the sandbox is built and kept in
memory only; they never appear in a repr or a log line.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import secrets
import threading
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Final, NamedTuple
from urllib.parse import parse_qsl, urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from meterpay.kernel.clock import Clock, SystemClock
from meterpay.payments.sandbox_bill import trade_bill
from meterpay.payments.sandbox_keys import SANDBOX_APPID, SANDBOX_MCHID, SandboxKeys
from meterpay.payments.sandbox_orders import (
    SandboxOrder,
    SandboxRefund,
    amount_valid,
    expiry_valid,
    refund_object,
    transaction_object,
)
from meterpay.payments.wechat_sign import sign_notification

__all__ = [
    "SANDBOX_APPID",
    "SANDBOX_MCHID",
    "ApiReply",
    "ApiRequest",
    "SandboxKeys",
    "SandboxOrder",
    "SandboxRefund",
    "WechatSandbox",
]

SCHEME: Final = "WECHATPAY2-SHA256-RSA2048"
MAX_SKEW_S: Final = 300
AUTH_PARAM: Final = re.compile(r'(\w+)="([^"]*)"')
KEEP_REFUSALS: Final = 100
Reply = tuple[int, Any]


@dataclass(frozen=True)
class ApiRequest:
    """One request as received: ``target`` is the path and query exactly as the client
    sent (and signed) them; header names in lower case."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes


class ApiReply(NamedTuple):
    status: int
    body: bytes
    headers: dict[str, str]


@dataclass
class WechatSandbox:
    """The server's state and its answers. ``mount_path`` is the path prefix the API is
    served under (``/sandbox-pay``); ``pay_page_url``, when set, makes a Native order's
    ``code_url`` the sandbox's pay page, else a ``weixin://`` URL as WeChat gives. The
    knobs below make it misbehave as a test needs."""

    keys: SandboxKeys
    url: str = ""
    clock: Clock = field(default_factory=SystemClock)
    mount_path: str = ""
    pay_page_url: str = ""
    orders: dict[str, SandboxOrder] = field(default_factory=dict)
    refunds: dict[str, SandboxRefund] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)
    tamper_responses: bool = False
    response_clock_skew: timedelta = timedelta(0)
    probe_responses: bool = False
    corrupt_bill: bool = False
    bill_url_base: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _bills: dict[str, bytes] = field(default_factory=dict, repr=False)

    # --- what the payer (or a test) does -----------------------------------------------------

    def pay(self, out_trade_no: str, at: datetime | None = None) -> SandboxOrder:
        """The payer pays: the order turns SUCCESS with a transaction id."""
        with self._lock:
            order = self.orders[out_trade_no]
            order.trade_state = "SUCCESS"
            order.transaction_id = f"42000{len(self.orders):05d}{secrets.randbelow(10**18):018d}"
            order.success_time = at or self.clock.now()
            return order

    def settle_refund(self, out_refund_no: str, status: str = "SUCCESS") -> SandboxRefund:
        with self._lock:
            refund = self.refunds[out_refund_no]
            refund.status = status
            return refund

    def payment_notification(
        self, out_trade_no: str, at: datetime | None = None, *, event_id: str | None = None
    ) -> tuple[dict[str, str], bytes]:
        """A TRANSACTION.SUCCESS notification; a resend keeps the ``event_id``."""
        order = self.orders[out_trade_no]
        return self._notification(
            "TRANSACTION.SUCCESS",
            transaction_object(order, appid=self.keys.appid, mchid=self.keys.mchid),
            at,
            event_id,
        )

    def refund_notification(
        self, out_refund_no: str, at: datetime | None = None
    ) -> tuple[dict[str, str], bytes]:
        refund = self.refunds[out_refund_no]
        resource = refund_object(refund, mchid=self.keys.mchid) | {"refund_status": refund.status}
        del resource["status"]
        return self._notification(f"REFUND.{refund.status}", resource, at, None)

    def _notification(
        self, event_type: str, resource: dict[str, Any], at: datetime | None, event_id: str | None
    ) -> tuple[dict[str, str], bytes]:
        return sign_notification(
            platform_key=self.keys.platform,
            serial=self.keys.platform_serial,
            apiv3_key=self.keys.apiv3_key,
            event_type=event_type,
            resource=resource,
            at=at or self.clock.now(),
            event_id=event_id,
        )

    # --- the wire ------------------------------------------------------------------------------

    def handle(self, request: ApiRequest) -> ApiReply:
        problem = self._signature_problem(request)
        if problem:
            with self._lock:
                self.refused.append(problem)
                del self.refused[:-KEEP_REFUSALS]
            raw = json.dumps({"code": "SIGN_ERROR", "message": problem}).encode()
            return ApiReply(401, raw, {"Content-Type": "application/json"})
        parts = urlsplit(request.target)
        path = parts.path.removeprefix(self.mount_path)
        query = dict(parse_qsl(parts.query))
        if path == "/v3/billdownload/file":
            return self._download(query.get("token", ""))
        with self._lock:
            status, answer = self._route(request.method, path, query, request.body)
        raw = b"" if answer is None else json.dumps(answer, ensure_ascii=False).encode()
        headers = self._signed_headers(raw)
        if self.tamper_responses and raw:
            raw = raw.replace(b"}", b',"x":1}', 1)
        if raw:
            headers["Content-Type"] = "application/json"
        return ApiReply(status, raw, headers)

    def _signature_problem(self, request: ApiRequest) -> str:
        scheme, _, params = request.headers.get("authorization", "").partition(" ")
        auth = dict(AUTH_PARAM.findall(params))
        if scheme != SCHEME:
            return f"not {SCHEME}"
        if auth.get("mchid") != self.keys.mchid or auth.get("serial_no") != (
            self.keys.merchant_serial
        ):
            return "unknown mchid or merchant serial_no"
        timestamp = auth.get("timestamp", "")
        if not timestamp.isdigit() or len(timestamp) > 12:
            return "timestamp is not a number of seconds"
        if abs(int(timestamp) - self.clock.now().timestamp()) > MAX_SKEW_S:
            return "timestamp out of window"
        head = f"{request.method}\n{request.target}\n{timestamp}\n{auth.get('nonce_str', '')}\n"
        try:
            self.keys.merchant.public_key().verify(
                base64.b64decode(auth.get("signature", ""), validate=True),
                head.encode() + request.body + b"\n",
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except (InvalidSignature, binascii.Error, ValueError):
            return "signature does not verify"
        return ""

    def _signed_headers(self, raw: bytes) -> dict[str, str]:
        moment = self.clock.now() + self.response_clock_skew
        timestamp, nonce = str(int(moment.timestamp())), secrets.token_hex(16)
        signed = self.keys.platform.sign(
            f"{timestamp}\n{nonce}\n".encode() + raw + b"\n", padding.PKCS1v15(), hashes.SHA256()
        )
        signature = base64.b64encode(signed).decode()
        if self.probe_responses:
            signature = "WECHATPAY/SIGNTEST/" + signature
        return {
            "Request-ID": secrets.token_hex(8),
            "Wechatpay-Timestamp": timestamp,
            "Wechatpay-Nonce": nonce,
            "Wechatpay-Signature": signature,
            "Wechatpay-Serial": self.keys.platform_serial,
            "Wechatpay-Signature-Type": SCHEME,
        }

    def _route(self, method: str, path: str, query: dict[str, str], body: bytes) -> Reply:
        request = _json_object(body)
        if request is None:
            return 400, {"code": "PARAM_ERROR", "message": "the body is not a JSON object"}
        return self._dispatch(method, path, query, request)

    def _dispatch(
        self, method: str, path: str, query: dict[str, str], request: dict[str, Any]
    ) -> Reply:
        if method == "POST" and path in (
            "/v3/pay/transactions/native",
            "/v3/pay/transactions/jsapi",
        ):
            return self._create(path.rsplit("/", 1)[1].upper(), request)
        found = re.fullmatch(r"/v3/pay/transactions/out-trade-no/([^/]+)(/close)?", path)
        if found and method == "GET" and not found[2]:
            return self._query(found[1], query)
        if found and method == "POST" and found[2]:
            return self._close(found[1], request)
        if method == "POST" and path == "/v3/refund/domestic/refunds":
            return self._refund(request)
        if method == "GET" and path == "/v3/bill/tradebill":
            return self._tradebill(query)
        return 404, {"code": "NOT_FOUND", "message": "no such API"}

    # --- the APIs ------------------------------------------------------------------------------

    def _create(self, trade_type: str, request: dict[str, Any]) -> Reply:
        problem = self._order_problem(trade_type, request)
        if problem:
            return 400, {"code": "PARAM_ERROR", "message": problem}
        no = request["out_trade_no"]
        if no in self.orders:
            return 400, {"code": "INVALID_REQUEST", "message": "201 商户订单号重复"}
        order = SandboxOrder(
            no,
            trade_type,
            request["description"],
            request["amount"]["total"],
            request["notify_url"],
            request["time_expire"],
            openid=request.get("payer", {}).get("openid", ""),
            prepay_id=f"wx{secrets.token_hex(15)}",
        )
        self.orders[no] = order
        if trade_type == "JSAPI":
            return 200, {"prepay_id": order.prepay_id}
        if self.pay_page_url:
            return 200, {"code_url": f"{self.pay_page_url.rstrip('/')}/{no}"}
        return 200, {"code_url": f"weixin://wxpay/bizpayurl?pr={secrets.token_urlsafe(6)}"}

    def _order_problem(self, trade_type: str, request: dict[str, Any]) -> str:
        """What WeChat would refuse in a new order, or ""."""
        if (request.get("appid"), request.get("mchid")) != (self.keys.appid, self.keys.mchid):
            return "appid和mch_id不匹配"
        for name in ("out_trade_no", "description", "notify_url", "time_expire"):
            if not isinstance(request.get(name), str) or not request[name]:
                return name
        if not amount_valid(request.get("amount")):
            return "amount.total"
        if not expiry_valid(request["time_expire"]):
            return "time_expire"
        if trade_type == "JSAPI" and not request.get("payer", {}).get("openid"):
            return "payer.openid"
        return ""

    def _query(self, no: str, query: dict[str, str]) -> Reply:
        if query.get("mchid") != self.keys.mchid:
            return 400, {"code": "PARAM_ERROR", "message": "mchid"}
        order = self.orders.get(no)
        if order is None:
            return 404, {"code": "ORDER_NOT_EXIST", "message": "订单不存在"}
        return 200, transaction_object(order, appid=self.keys.appid, mchid=self.keys.mchid)

    def _close(self, no: str, request: dict[str, Any]) -> Reply:
        order = self.orders.get(no)
        if request.get("mchid") != self.keys.mchid or order is None:
            return 404, {"code": "ORDER_NOT_EXIST", "message": "订单不存在"}
        if order.trade_state in ("SUCCESS", "REFUND"):
            return 400, {"code": "ORDER_PAID", "message": "订单已支付"}
        order.trade_state = "CLOSED"
        return 204, None

    def _refund(self, request: dict[str, Any]) -> Reply:
        order = self.orders.get(request.get("out_trade_no", ""))
        amount = request.get("amount", {})
        if order is None or order.trade_state not in ("SUCCESS", "REFUND"):
            return 404, {"code": "RESOURCE_NOT_EXISTS", "message": "订单不存在"}
        done = sum(r.refund for r in self.refunds.values() if r.order is order)
        if amount.get("total") != order.total or done + amount.get("refund", 0) > order.total:
            return 400, {"code": "INVALID_REQUEST", "message": "退款金额不正确"}
        refund = SandboxRefund(
            request["out_refund_no"],
            f"503000{secrets.randbelow(10**23):023d}",
            order,
            amount["refund"],
            self.clock.now(),
        )
        self.refunds[refund.out_refund_no] = refund
        order.trade_state = "REFUND"
        return 200, refund_object(refund, mchid=self.keys.mchid)

    def _tradebill(self, query: dict[str, str]) -> Reply:
        try:
            day = date.fromisoformat(query.get("bill_date", ""))
        except ValueError:
            return 400, {"code": "PARAM_ERROR", "message": "bill_date"}
        content = self.bill(day)
        if not content:
            return 400, {"code": "NO_STATEMENT_EXIST", "message": "账单文件不存在"}
        token = secrets.token_urlsafe(12)
        self._bills[token] = content
        base = self.bill_url_base or self.url
        return 200, {
            "hash_type": "SHA1",
            "hash_value": hashlib.sha1(content, usedforsecurity=False).hexdigest(),
            "download_url": f"{base}/v3/billdownload/file?token={token}",
        }

    def _download(self, token: str) -> ApiReply:
        content = self._bills.get(token)
        if content is None:
            return ApiReply(404, b'{"code":"NOT_FOUND"}', {"Content-Type": "application/json"})
        if self.corrupt_bill:
            content = content.replace(b"`SUCCESS", b"`SUCCESS ", 1)
        return ApiReply(200, content, {"Content-Type": "application/octet-stream"})

    def bill(self, day: date) -> bytes:
        """The day's ALL bill, as WeChat renders it (CRLF); empty when nothing happened."""
        return trade_bill(
            day,
            list(self.orders.values()),
            list(self.refunds.values()),
            appid=self.keys.appid,
            mchid=self.keys.mchid,
        )


def _json_object(body: bytes) -> dict[str, Any] | None:
    """A request's JSON object ({} for no body), or None when it is not one."""
    try:
        found = json.loads(body) if body else {}
    except ValueError:
        return None
    return found if isinstance(found, dict) else None
