"""A local stand-in for Alipay's open-platform gateway, on a real socket of 127.0.0.1.

It checks what Alipay checks and answers as Alipay answers, written again here from
Alipay's documentation rather than imported from meterpay, so a signing bug in meterpay is
refused here as Alipay would refuse it:

- every call's RSA2 signature is checked with the *app's public key* (sorted non-empty
  ``k=v`` of the query and form parameters except ``sign``, ``sign_type`` included); a bad
  one gets Alipay's unsigned ``40002 isv.invalid-signature``;
- every answer is ``{"<method>_response": <node>, "sign": "…"}``, signed with the fake's own
  Alipay key over the node's exact text (with spaces after ``:`` and ``,``, as a real body
  may have);
- it serves precreate, query, close, refund and the bill download URL (valid 30 s), and the
  ZIP behind that URL;
- ``scan``/``pay`` play the payer, and ``pay`` returns the notification Alipay would POST.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit
from zoneinfo import ZoneInfo

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.integration.local_http import QuietHandler, serving

BEIJING = ZoneInfo("Asia/Shanghai")
LINK_SECONDS = 30
Node = dict[str, Any]


def _sign(text: str, key: rsa.RSAPrivateKey) -> str:
    return base64.b64encode(key.sign(text.encode(), padding.PKCS1v15(), hashes.SHA256())).decode()


def _signing_text(params: dict[str, str], *without: str) -> str:
    return "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k not in without and v)


def _beijing(moment: datetime) -> str:
    return moment.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S")


@dataclass
class FakeTrade:
    out_trade_no: str
    total: Decimal
    subject: str
    notify_url: str
    trade_no: str
    status: str = "CREATED"
    """CREATED (QR code made, not scanned: unknown to queries), then Alipay's own states."""
    paid_at: str = ""
    refunds: dict[str, Decimal] = field(default_factory=dict)


@dataclass
class FakeAlipay:
    app_id: str
    seller_id: str
    app_public_key: rsa.RSAPublicKey
    alipay_key: rsa.RSAPrivateKey
    """Signs answers and notifications; swap it for another key to play an impostor."""
    bills: dict[date, bytes] = field(default_factory=dict)
    url: str = ""
    trades: dict[str, FakeTrade] = field(default_factory=dict)
    calls: list[dict[str, str]] = field(default_factory=list)
    links: dict[str, tuple[date, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def gateway_url(self) -> str:
        return f"{self.url}/gateway.do"

    # --- the payer --------------------------------------------------------------------

    def scan(self, out_trade_no: str) -> None:
        """The payer scans the QR code: the trade now exists at Alipay."""
        self.trades[out_trade_no].status = "WAIT_BUYER_PAY"

    def pay(self, out_trade_no: str, *, at: datetime) -> bytes:
        """The payer pays; the signed form body Alipay would POST to the notify_url."""
        trade = self.trades[out_trade_no]
        trade.status, trade.paid_at = "TRADE_SUCCESS", _beijing(at)
        form = {
            "notify_time": _beijing(at),
            "notify_type": "trade_status_sync",
            "notify_id": secrets.token_hex(17),
            "app_id": self.app_id,
            "charset": "utf-8",
            "version": "1.0",
            "trade_no": trade.trade_no,
            "out_trade_no": out_trade_no,
            "trade_status": "TRADE_SUCCESS",
            "total_amount": str(trade.total),
            "receipt_amount": str(trade.total),
            "buyer_pay_amount": str(trade.total),
            "gmt_create": _beijing(at),
            "gmt_payment": trade.paid_at,
            "seller_id": self.seller_id,
            "buyer_id": "2088002600000001",
            "subject": trade.subject,
        }
        form["sign"] = _sign(_signing_text(form), self.alipay_key)
        form["sign_type"] = "RSA2"
        return urlencode(form).encode()

    # --- the gateway --------------------------------------------------------------------

    def handle_call(self, params: dict[str, str]) -> str:
        """The body of the answer to one gateway call."""
        method = params.get("method", "")
        name = method.replace(".", "_") + "_response"
        if not self._signed_by_app(params):
            refusal = {"code": "40002", "msg": "Invalid Arguments",
                       "sub_code": "isv.invalid-signature", "sub_msg": "验签出错"}  # fmt: skip
            return json.dumps({name: refusal}, ensure_ascii=False)
        self.calls.append(params)
        biz = json.loads(params.get("biz_content") or "{}")
        handlers = {
            "alipay.trade.precreate": self._precreate,
            "alipay.trade.query": self._query,
            "alipay.trade.close": self._close,
            "alipay.trade.refund": self._refund,
            "alipay.data.dataservice.bill.downloadurl.query": self._bill_url,
        }
        handler = handlers.get(method)
        with self._lock:
            node = handler(biz, params) if handler else _refused("isv.invalid-method", "40002")
        text = json.dumps(node, ensure_ascii=False)  # ", " and ": ": not compact JSON
        return f'{{"{name}": {text}, "sign": "{_sign(text, self.alipay_key)}"}}'

    def _signed_by_app(self, params: dict[str, str]) -> bool:
        if params.get("app_id") != self.app_id or params.get("sign_type") != "RSA2":
            return False
        try:
            self.app_public_key.verify(
                base64.b64decode(params.get("sign", ""), validate=True),
                _signing_text(params, "sign").encode(params.get("charset") or "utf-8"),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except (InvalidSignature, ValueError):
            return False
        return True

    def _precreate(self, biz: Node, params: dict[str, str]) -> Node:
        total = Decimal(biz["total_amount"])
        if total.as_tuple().exponent != -2 or not Decimal("0.01") <= total <= Decimal("100000000"):
            return _refused("ACQ.INVALID_PARAMETER", "40004")
        trade = self.trades.get(biz["out_trade_no"])
        if trade is not None and trade.status != "CREATED":
            return _refused("ACQ.TRADE_HAS_SUCCESS" if trade.paid_at else "ACQ.TRADE_HAS_CLOSE")
        trade_no = f"2026110122001400{len(self.trades) + 1:012d}"
        self.trades[biz["out_trade_no"]] = FakeTrade(
            biz["out_trade_no"], total, biz["subject"], params.get("notify_url", ""), trade_no
        )
        qr_code = f"https://qr.alipay.com/bax0{secrets.token_hex(10)}"
        return _ok(out_trade_no=biz["out_trade_no"], qr_code=qr_code)

    def _query(self, biz: Node, params: dict[str, str]) -> Node:
        trade = self.trades.get(biz.get("out_trade_no", ""))
        if trade is None or trade.status == "CREATED":
            return _refused("ACQ.TRADE_NOT_EXIST")
        node = _ok(trade_no=trade.trade_no, out_trade_no=trade.out_trade_no,
                   buyer_logon_id="158****1562", trade_status=trade.status,
                   total_amount=str(trade.total), buyer_user_id="2088002600000001")  # fmt: skip
        if trade.paid_at:
            node |= {"send_pay_date": trade.paid_at, "receipt_amount": str(trade.total)}
        return node

    def _close(self, biz: Node, params: dict[str, str]) -> Node:
        trade = self.trades.get(biz.get("out_trade_no", ""))
        if trade is None or trade.status == "CREATED":
            return _refused("ACQ.TRADE_NOT_EXIST")
        if trade.status != "WAIT_BUYER_PAY":
            return _refused("ACQ.TRADE_STATUS_ERROR")
        trade.status = "TRADE_CLOSED"
        return _ok(trade_no=trade.trade_no, out_trade_no=trade.out_trade_no)

    def _refund(self, biz: Node, params: dict[str, str]) -> Node:
        trade = self.trades.get(biz.get("out_trade_no", ""))
        if trade is None or trade.status == "CREATED":
            return _refused("ACQ.TRADE_NOT_EXIST")
        request_no, amount = biz["out_request_no"], Decimal(biz["refund_amount"])
        fund_change = "N" if request_no in trade.refunds else "Y"
        if fund_change == "Y":
            if trade.status != "TRADE_SUCCESS":
                return _refused("ACQ.TRADE_STATUS_ERROR")
            if amount > trade.total - sum(trade.refunds.values(), Decimal(0)):
                return _refused("ACQ.REFUND_AMT_NOT_EQUAL_TOTAL")
            trade.refunds[request_no] = amount
            if sum(trade.refunds.values()) == trade.total:
                trade.status = "TRADE_CLOSED"
        return _ok(trade_no=trade.trade_no, out_trade_no=trade.out_trade_no,
                   buyer_logon_id="158****1562", fund_change=fund_change,
                   refund_fee=str(sum(trade.refunds.values(), Decimal(0))),
                   gmt_refund_pay=_beijing(datetime.now(BEIJING)))  # fmt: skip

    def _bill_url(self, biz: Node, params: dict[str, str]) -> Node:
        if biz.get("bill_type") != "trade":
            return _refused("isv.invalid-bill-type", "40002")
        day = date.fromisoformat(biz["bill_date"])
        if day not in self.bills:
            return _refused("isp.bill_not_exist")
        token = secrets.token_hex(16)
        self.links[token] = (day, time.monotonic() + LINK_SECONDS)
        link = (f"{self.url}/downloadBillFile.resource?bizType=trade&fileType=csv.zip"
                f"&bizDates={day:%Y%m%d}&token={token}")  # fmt: skip
        return _ok(bill_download_url=link)

    def download(self, query: dict[str, str]) -> bytes | None:
        """The ZIP behind a bill link, while the link is valid."""
        day, expires = self.links.get(query.get("token", ""), (None, 0.0))
        if day is None or time.monotonic() > expires:
            return None
        return self.bills[day]


def _ok(**fields: str) -> Node:
    return {"code": "10000", "msg": "Success", **fields}


def _refused(sub_code: str, code: str = "40004") -> Node:
    msg = "Business Failed" if code == "40004" else "Invalid Arguments"
    return {"code": code, "msg": msg, "sub_code": sub_code, "sub_msg": sub_code}


@contextmanager
def running_alipay(fake: FakeAlipay) -> Iterator[FakeAlipay]:
    """Serve ``fake`` on a free port of 127.0.0.1 for the duration of the block."""

    class Gateway(QuietHandler):
        def do_POST(self) -> None:
            parts = urlsplit(self.path)
            if parts.path != "/gateway.do":
                return self._reply(404, b"", "text/plain")
            length = int(self.headers.get("Content-Length") or 0)
            params = dict(parse_qsl(parts.query))
            params.update(parse_qsl(self.rfile.read(length).decode("utf-8")))
            answer = fake.handle_call(params)
            return self._reply(200, answer.encode(), "application/json;charset=utf-8")

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            zipped = fake.download(dict(parse_qsl(parts.query)))
            if parts.path != "/downloadBillFile.resource" or zipped is None:
                return self._reply(404, "链接已失效".encode(), "text/html;charset=utf-8")
            return self._reply(200, zipped, "application/oct-stream")

        def _reply(self, status: int, body: bytes, content_type: str) -> None:
            self.reply(status, body, {"Content-Type": content_type})

    with serving(Gateway) as url:
        fake.url = url
        yield fake
