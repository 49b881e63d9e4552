"""WeChat Pay API v3 (微信支付 APIv3) for a direct merchant: Native and JSAPI top-ups,
query, close, refund, the daily trade bill, and the notifications WeChat sends back.

Why our own thin client over httpx + cryptography rather than ``wechatpayv3``: that
package checks neither the 5-minute timestamp window nor WeChat's signature probes
(``WECHATPAY/SIGNTEST/…``), both of which we must enforce on notifications and
responses alike, and the signing itself is a few lines (``wechat_sign``). It also lets
tests point the client at a local fake server that checks our signatures as WeChat does.

Invariants:
- every request is signed with the merchant key over exactly the bytes sent (the path
  and query as httpx encodes them, the JSON body as serialised once);
- every answer we act on (2xx, the 404 ``ORDER_NOT_EXIST`` that makes ``query`` return
  None, the ``NO_STATEMENT_EXIST`` that makes an empty statement) carries a valid
  platform signature with a fresh timestamp, else ``UntrustedResponse``; the bill
  download is the one unsigned answer: it is checked against the SHA1 that the signed
  ``tradebill`` answer announced, and fetched only from WeChat's own hosts (our
  Authorization header never goes elsewhere);
- amounts are integer fen in both directions (WeChat's ``amount.total`` is fen);
- a WeChat error answer raises ``WechatApiError`` with WeChat's ``code``; ``retryable``
  says whether asking again later may help.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any, Final

import httpx

from meterpay.kernel.clock import Clock, SystemClock
from meterpay.kernel.errors import InvalidInput
from meterpay.payments.provider import (
    Answer,
    Channel,
    Notification,
    OrderRequest,
    ProviderName,
    ProviderOrder,
    Refund,
    RefundRequest,
    Statement,
    Trade,
)
from meterpay.payments.wechat_bill import BadStatement, check_bill_hash, parse_trade_bill
from meterpay.payments.wechat_config import WechatConfig, WechatPayError, load_keys
from meterpay.payments.wechat_notification import (
    Malformed,
    NotificationVerifier,
    refund_from,
    text,
    trade_from,
)
from meterpay.payments.wechat_sign import (
    authorization,
    check_signature,
    china_time,
    jsapi_pay_sign,
    new_nonce,
)

__all__ = [
    "BadStatement",
    "UntrustedResponse",
    "WechatApiError",
    "WechatConfig",
    "WechatPay",
    "WechatPayError",
]

OUT_NO: Final = re.compile(r"[0-9A-Za-z_\-|*]{6,32}")
"""WeChat's rule for out_trade_no and out_refund_no; also keeps them safe in a URL path."""
DESCRIPTION_MAX_BYTES: Final = 127
RETRYABLE_CODES: Final = frozenset({"SYSTEM_ERROR", "FREQUENCY_LIMITED", "BANK_ERROR"})
WECHAT_HOSTS: Final = frozenset({"api.mch.weixin.qq.com", "api2.mch.weixin.qq.com"})
"""WeChat's main and backup API hosts: a bill may be offered on either."""
NO_BILL: Final = "NO_STATEMENT_EXIST"
"""WeChat's answer for a day without a single successful trade: an empty statement."""


class WechatApiError(WechatPayError):
    """WeChat Pay answered with an error, or could not be reached (``status`` 0)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"WeChat Pay {status} {code}: {message}")
        self.status = status
        self.code = code

    @property
    def retryable(self) -> bool:
        return self.status == 0 or self.status >= 500 or self.code in RETRYABLE_CODES


class UntrustedResponse(WechatApiError):
    """An answer without a valid, fresh platform signature: treated as not received."""


def _out_no(value: str, what: str) -> str:
    if not OUT_NO.fullmatch(value):
        raise InvalidInput(f"{what} must be 6-32 characters of [0-9A-Za-z_-|*]", value=value)
    return value


def _check_order(order: OrderRequest) -> None:
    _out_no(order.out_trade_no, "out_trade_no")
    if order.amount_fen <= 0:
        raise InvalidInput("a WeChat Pay order needs a positive amount", amount=order.amount_fen)
    if not order.description or len(order.description.encode()) > DESCRIPTION_MAX_BYTES:
        raise InvalidInput("the description must be 1-127 bytes of UTF-8")
    if order.channel is Channel.JSAPI and not order.payer_openid:
        raise InvalidInput("a JSAPI order needs the payer's openid")


class WechatPay:
    """The ``PaymentProvider`` for WeChat Pay API v3.

    ``client`` defaults to a new ``httpx.Client`` (closed by ``close_client``); pass one
    to share a pool or to use a test transport. ``clock`` stamps requests and judges the
    freshness of responses."""

    name: ProviderName = ProviderName.WECHAT

    def __init__(
        self,
        config: WechatConfig,
        *,
        client: httpx.Client | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._config = config
        self._keys = load_keys(config)
        self._verifier = NotificationVerifier(config.mchid, config.appid, self._keys)
        self._clock = clock or SystemClock()
        self._owns_client = client is None
        self._client = client or httpx.Client(timeout=config.timeout_s, follow_redirects=False)
        self._base = httpx.URL(config.api_base.rstrip("/") + "/")

    def __repr__(self) -> str:
        return f"WechatPay(mchid={self._config.mchid!r}, appid={self._config.appid!r})"

    def close_client(self) -> None:
        if self._owns_client:
            self._client.close()

    # --- orders ---------------------------------------------------------------------------------

    def create_order(self, order: OrderRequest) -> ProviderOrder:
        _check_order(order)
        body: dict[str, Any] = {
            "appid": self._config.appid,
            "mchid": self._config.mchid,
            "description": order.description,
            "out_trade_no": order.out_trade_no,
            "time_expire": china_time(order.expires_at),
            "notify_url": order.notify_url,
            "amount": {"total": order.amount_fen, "currency": "CNY"},
        }
        if order.channel is Channel.NATIVE:
            answer = self._call("POST", "v3/pay/transactions/native", body=body)
            code_url = self._field(answer, "code_url")
            return ProviderOrder(order.out_trade_no, code_url=code_url)
        body["payer"] = {"openid": order.payer_openid}
        answer = self._call("POST", "v3/pay/transactions/jsapi", body=body)
        prepay_id = self._field(answer, "prepay_id")
        return ProviderOrder(order.out_trade_no, jsapi_params=self.jsapi_params(prepay_id))

    def jsapi_params(self, prepay_id: str) -> dict[str, str]:
        """What the H5 portal hands to ``WeixinJSBridge.invoke('getBrandWCPayRequest', …)``."""
        timestamp, nonce = str(int(self._clock.now().timestamp())), new_nonce()
        package = f"prepay_id={prepay_id}"
        pay_sign = jsapi_pay_sign(
            self._keys.merchant, self._config.appid, timestamp, nonce, package
        )
        return {
            "appId": self._config.appid,
            "timeStamp": timestamp,
            "nonceStr": nonce,
            "package": package,
            "signType": "RSA",
            "paySign": pay_sign,
        }

    def query(self, out_trade_no: str) -> Trade | None:
        path = f"v3/pay/transactions/out-trade-no/{_out_no(out_trade_no, 'out_trade_no')}"
        response = self._exchange("GET", path, params={"mchid": self._config.mchid})
        if self._signed_error(response, "ORDER_NOT_EXIST"):
            return None
        try:
            return trade_from(self._answer(response))
        except Malformed as exc:
            raise WechatApiError(200, "MALFORMED", str(exc)) from None

    def close(self, out_trade_no: str) -> None:
        path = f"v3/pay/transactions/out-trade-no/{_out_no(out_trade_no, 'out_trade_no')}/close"
        self._call("POST", path, body={"mchid": self._config.mchid})

    def refund(self, request: RefundRequest) -> Refund:
        _out_no(request.out_trade_no, "out_trade_no")
        _out_no(request.out_refund_no, "out_refund_no")
        if not 0 < request.refund_fen <= request.total_fen:
            raise InvalidInput("a refund must be positive and at most the order's total")
        body: dict[str, Any] = {
            "out_trade_no": request.out_trade_no,
            "out_refund_no": request.out_refund_no,
            "notify_url": request.notify_url,
            "amount": {"refund": request.refund_fen, "total": request.total_fen, "currency": "CNY"},
        }
        if request.reason:
            body["reason"] = request.reason
        answer = self._call("POST", "v3/refund/domestic/refunds", body=body)
        try:
            return refund_from(answer)
        except Malformed as exc:
            raise WechatApiError(200, "MALFORMED", str(exc)) from None

    # --- notifications --------------------------------------------------------------------------

    def verify_notification(
        self, headers: Mapping[str, str], body: bytes, *, now: datetime
    ) -> Notification:
        return self._verifier.verify(headers, body, now=now)

    def answer(self, *, accepted: bool, message: str = "") -> Answer:
        if accepted:
            return Answer(204, b"", "application/json")
        reply = {"code": "FAIL", "message": message or "失败"}
        return Answer(500, json.dumps(reply, ensure_ascii=False).encode(), "application/json")

    # --- the daily bill -------------------------------------------------------------------------

    def statement(self, day: date) -> Statement:
        params = {"bill_date": day.isoformat(), "bill_type": "ALL"}
        response = self._exchange("GET", "v3/bill/tradebill", params=params)
        if self._signed_error(response, NO_BILL):
            return Statement(day=day)
        answer = self._answer(response)
        content = self._download(self._field(answer, "download_url"))
        check_bill_hash(
            content, self._field(answer, "hash_type"), self._field(answer, "hash_value")
        )
        return parse_trade_bill(content, day)

    def _download(self, url: str) -> bytes:
        target = httpx.URL(url)
        ours = (target.scheme, target.host, target.port) == (
            self._base.scheme,
            self._base.host,
            self._base.port,
        )
        if not ours and not (target.scheme == "https" and target.host in WECHAT_HOSTS):
            raise UntrustedResponse(200, "UNTRUSTED_RESPONSE", "the bill is not on WeChat's host")
        response = self._send(self._signed(self._client.build_request("GET", target), b""))
        if response.status_code != 200:
            raise self._error(response)
        return response.content

    # --- the wire -------------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        return self._answer(self._exchange(method, path, params=params, body=body))

    def _exchange(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> httpx.Response:
        content = b"" if body is None else json.dumps(body, ensure_ascii=False).encode()
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        request = self._client.build_request(
            method, self._base.join(path), params=params, content=content or None, headers=headers
        )
        return self._send(self._signed(request, content))

    def _answer(self, response: httpx.Response) -> dict[str, Any]:
        """A successful, signed answer's JSON; ``{}`` for 204."""
        if not response.is_success:
            raise self._error(response)
        self._trust(response)
        return self._json(response) if response.content else {}

    def _signed_error(self, response: httpx.Response, code: str) -> bool:
        """Whether ``response`` is WeChat's signed error ``code`` (WeChat signs every answer
        to a correctly signed request, errors included)."""
        if response.is_success or self._error(response).code != code:
            return False
        self._trust(response)
        return True

    def _trust(self, response: httpx.Response) -> None:
        reason = check_signature(
            self._keys.platform, response.headers, response.content, self._clock.now()
        )
        if reason:
            raise UntrustedResponse(response.status_code, "UNTRUSTED_RESPONSE", reason)

    def _signed(self, request: httpx.Request, content: bytes) -> httpx.Request:
        request.headers["Authorization"] = authorization(
            mchid=self._config.mchid,
            serial_no=self._config.serial_no,
            private_key=self._keys.merchant,
            method=request.method,
            path_and_query=request.url.raw_path.decode("ascii"),
            body=content,
            timestamp=str(int(self._clock.now().timestamp())),
            nonce=new_nonce(),
        )
        return request

    def _send(self, request: httpx.Request) -> httpx.Response:
        try:
            return self._client.send(request)
        except httpx.HTTPError as exc:
            raise WechatApiError(0, "NETWORK", type(exc).__name__) from exc

    @staticmethod
    def _json(response: httpx.Response) -> dict[str, Any]:
        try:
            found = response.json()
        except ValueError:
            found = None
        if not isinstance(found, dict):
            raise WechatApiError(response.status_code, "MALFORMED", "not a JSON object")
        return found

    def _error(self, response: httpx.Response) -> WechatApiError:
        try:
            found = response.json()
        except ValueError:
            found = {}
        found = found if isinstance(found, dict) else {}
        code = str(found.get("code") or f"HTTP_{response.status_code}")
        return WechatApiError(response.status_code, code, str(found.get("message", ""))[:200])

    @staticmethod
    def _field(answer: Mapping[str, Any], key: str) -> str:
        try:
            return text(answer, key)
        except Malformed as exc:
            raise WechatApiError(200, "MALFORMED", str(exc)) from None
