"""A fake WeChat Pay API v3 on a real socket of 127.0.0.1, for the provider's tests and
the payment service's.

The server itself is meterpay's own sandbox (``meterpay.payments.sandbox``), which checks
our request signatures with the merchant public key as WeChat does — written from
WeChat's documentation, not through the client's signing code — and signs its answers
with a platform key in certificate or public-key mode. This module gives it fixed test
ids (``MCHID``, ``APPID``, …), the real clock, and a small threaded HTTP server; tests
turn its knobs (``tamper_responses``, ``response_clock_skew``, …) and read ``seen``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta, timezone
from typing import Any, Literal

from meterpay.payments.sandbox import (
    ApiRequest,
    SandboxKeys,
    SandboxOrder,
    SandboxRefund,
    WechatSandbox,
)
from meterpay.payments.wechat import WechatConfig
from tests.integration.local_http import QuietHandler, serving

CHINA = timezone(timedelta(hours=8))
MCHID, APPID = "1900000001", "wx2421b1c4370ec43b"
APIV3_KEY = "0123456789abcdef0123456789abcdef"
MERCHANT_SERIAL = "3775B6A45ACD588826D15E583A95F5DD"
PUB_KEY_ID = "PUB_KEY_ID_0119000000012026110100000000000001"

FakeOrder = SandboxOrder
FakeRefund = SandboxRefund
Seen = ApiRequest


@dataclass
class FakeKeys(SandboxKeys):
    """The merchant's key pair and WeChat's platform key under the test ids."""

    mode: Literal["certificate", "public_key"] = "public_key"
    mchid: str = MCHID
    appid: str = APPID
    merchant_serial: str = MERCHANT_SERIAL
    apiv3_key: str = field(default=APIV3_KEY, repr=False)
    public_key_id: str = PUB_KEY_ID

    def config(self, api_base: str, **changes: Any) -> WechatConfig:
        """The merchant's configuration for a fake at ``api_base``."""
        return self.merchant_config(api_base, **({"timeout_s": 5.0} | changes))


@dataclass
class WechatFake(WechatSandbox):
    """The sandbox, plus every request it received (``seen``)."""

    seen: list[Seen] = field(default_factory=list)


@contextmanager
def running_wechat_fake(keys: FakeKeys) -> Iterator[WechatFake]:
    """A fake WeChat Pay listening on a free port of 127.0.0.1 until the block ends."""
    fake = WechatFake(keys)

    class Requests(QuietHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            headers = {k.lower(): v for k, v in self.headers.items()}
            seen = Seen(self.command, self.path, headers, self.rfile.read(length))
            fake.seen.append(seen)
            status, raw, reply_headers = fake.handle(seen)
            self.reply(status, raw, reply_headers)

        do_GET = do_POST = _answer

    with serving(Requests) as url:
        fake.url = url
        yield fake
