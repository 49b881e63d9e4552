"""``SandboxPay``: the payment provider of the demo and the tests — our real WeChat Pay
client (``WechatPay``) pointed at the sandbox server this process serves under
``<public_url>/sandbox-pay``, registered as ``ProviderName.SANDBOX``. Orders, queries,
refunds and, above all, notifications go through the same signing, verification and
decryption as with WeChat; only the keys are the sandbox's own (generated at start, in
memory).

A payer "pays" on the sandbox's page: ``pay_and_notify`` marks the order paid and, from a
background thread, sends the signed ``TRANSACTION.SUCCESS`` notification to the order's
``notify_url`` — after a delay, then duplicates with the same event id, as WeChat does on
a resend — and keeps each answer (``deliveries``) for the page and the tests.

Invariants:
- an order is paid at most once, and only while it is unpaid and unexpired;
- at most ``MAX_DUPLICATES`` duplicates, at most ``MAX_DELAY_S`` seconds of delay;
- nothing secret is logged: out_trade_no, event id and the HTTP status only.

Never enable it in production: anyone who can open the pay page can credit a wallet.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Final
from urllib.parse import urlsplit

import httpx

from meterpay.kernel.clock import Clock
from meterpay.kernel.errors import Conflict, InvalidInput, NotFound
from meterpay.payments.provider import OrderRequest, ProviderName, ProviderOrder
from meterpay.payments.sandbox import SandboxKeys, SandboxOrder, WechatSandbox
from meterpay.payments.wechat import WechatApiError, WechatPay

log = logging.getLogger(__name__)

MOUNT_PATH: Final = "/sandbox-pay"
"""Where the web app serves the sandbox (the v3 API and the pay page)."""
MAX_DUPLICATES: Final = 3
MAX_DELAY_S: Final = 120
NOTIFY_TIMEOUT_S: Final = 5.0
"""WeChat waits 5 s for the merchant's answer."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """One notification sent: ``attempt`` 1 is the first, 2… are duplicates; ``status``
    is our endpoint's HTTP answer, 0 when it could not be reached."""

    out_trade_no: str
    event_id: str
    attempt: int
    status: int
    at: datetime


class SandboxPay(WechatPay):
    """The ``PaymentProvider`` named ``sandbox``; ``sandbox`` is the server state the web
    app serves. Keys are generated unless given (tests may pass their own)."""

    name: ProviderName = ProviderName.SANDBOX

    def __init__(
        self,
        public_url: str,
        *,
        clock: Clock,
        keys: SandboxKeys | None = None,
        client: httpx.Client | None = None,
    ) -> None:
        keys = keys or SandboxKeys.generate()
        base = public_url.rstrip("/") + MOUNT_PATH
        self.sandbox = WechatSandbox(
            keys,
            url=base,
            clock=clock,
            mount_path=urlsplit(base).path,
            pay_page_url=f"{base}/pay",
        )
        super().__init__(keys.merchant_config(base), client=client, clock=clock)
        self._sandbox_clock = clock
        self._lock = threading.Lock()
        self._deliveries: dict[str, list[Delivery]] = {}
        self._planned: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"SandboxPay(mchid={self.sandbox.keys.mchid!r}, api_base={self.sandbox.url!r})"

    def pay_url(self, out_trade_no: str) -> str:
        return f"{self.sandbox.pay_page_url}/{out_trade_no}"

    def create_order(self, order: OrderRequest) -> ProviderOrder:
        """As WeChat, plus the sandbox's pay page (also a Native order's ``code_url``)."""
        made = super().create_order(order)
        return replace(made, pay_url=self.pay_url(order.out_trade_no))

    def close(self, out_trade_no: str) -> None:
        """As WeChat; an order the sandbox does not know (it forgets all at a restart) has
        nothing to close, so the query path can close it here instead of asking forever."""
        try:
            super().close(out_trade_no)
        except WechatApiError as exc:
            if exc.code != "ORDER_NOT_EXIST":
                raise

    # --- the payer ------------------------------------------------------------------------------

    def order(self, out_trade_no: str) -> SandboxOrder:
        found = self.sandbox.orders.get(out_trade_no)
        if found is None:
            raise NotFound(f"the sandbox has no order {out_trade_no}", out_trade_no=out_trade_no)
        return found

    def pay_and_notify(
        self, out_trade_no: str, *, duplicates: int = 0, delay_s: int = 0
    ) -> threading.Thread:
        """Pay the order, then notify from a background thread (returned, started)."""
        if not 0 <= duplicates <= MAX_DUPLICATES:
            raise InvalidInput(f"duplicates must be 0-{MAX_DUPLICATES}", field="duplicates")
        if not 0 <= delay_s <= MAX_DELAY_S:
            raise InvalidInput(f"the delay must be 0-{MAX_DELAY_S} seconds", field="delay")
        order = self.order(out_trade_no)
        if order.trade_state != "NOTPAY":
            raise Conflict(f"order {out_trade_no} is {order.trade_state}, not unpaid")
        if order.expired(self._sandbox_clock.now()):
            raise Conflict(f"order {out_trade_no} has expired")
        self.sandbox.pay(out_trade_no)
        event_id = f"EV-{secrets.token_hex(12)}"
        with self._lock:
            self._planned[out_trade_no] = 1 + duplicates
        log.info(
            "sandbox: %s paid; %d notification(s) in %d s", out_trade_no, 1 + duplicates, delay_s
        )
        thread = threading.Thread(
            target=self._deliver,
            args=(order, event_id, 1 + duplicates, delay_s),
            name=f"sandbox-notify-{out_trade_no}",
            daemon=True,
        )
        thread.start()
        return thread

    def deliveries(self, out_trade_no: str) -> list[Delivery]:
        with self._lock:
            return list(self._deliveries.get(out_trade_no, ()))

    def planned(self, out_trade_no: str) -> int:
        """How many notifications the payment asked for (0: not paid here)."""
        with self._lock:
            return self._planned.get(out_trade_no, 0)

    def _deliver(self, order: SandboxOrder, event_id: str, count: int, delay_s: int) -> None:
        time.sleep(delay_s)
        with httpx.Client(timeout=NOTIFY_TIMEOUT_S, follow_redirects=False) as client:
            for attempt in range(1, count + 1):
                headers, body = self.sandbox.payment_notification(
                    order.out_trade_no, event_id=event_id
                )
                try:
                    status = client.post(
                        order.notify_url, content=body, headers=headers
                    ).status_code
                except httpx.HTTPError as exc:
                    log.warning("sandbox: notifying %s failed: %s", order.out_trade_no, exc)
                    status = 0
                log.info(
                    "sandbox: notification %s #%d for %s answered %s",
                    event_id,
                    attempt,
                    order.out_trade_no,
                    status,
                )
                delivery = Delivery(
                    order.out_trade_no, event_id, attempt, status, self._sandbox_clock.now()
                )
                with self._lock:
                    self._deliveries.setdefault(order.out_trade_no, []).append(delivery)
