"""Real local servers that stand in for the providers in the notification tests.

Each listens on a real socket on 127.0.0.1 and checks what the real provider checks:
Aliyun's RPC v1 signature, Tencent Cloud's TC3-HMAC-SHA256 signature, WeChat's
access_token, our own webhook signature. The checks are written here again from the
providers' documentation (not imported from meterpay), so a signing bug in meterpay is
refused here as the provider would refuse it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from tests.integration import local_http
from tests.integration.local_http import QuietHandler


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


Reply = tuple[int, dict[str, Any]]
Handler = Callable[[Seen], Reply]


@dataclass
class FakeServer:
    url: str
    seen: list[Seen] = field(default_factory=list)


@contextmanager
def serving(handle: Handler) -> Iterator[FakeServer]:
    """An HTTP server on a free port of 127.0.0.1 that answers with ``handle``."""
    server_state = FakeServer(url="")

    class Requests(QuietHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            parts = urlsplit(self.path)
            seen = Seen(
                self.command,
                parts.path,
                dict(parse_qsl(parts.query)),
                {k.lower(): v for k, v in self.headers.items()},
                self.rfile.read(length),
            )
            server_state.seen.append(seen)
            status, body = handle(seen)
            self.reply(status, json.dumps(body).encode(), {"Content-Type": "application/json"})

        do_GET = do_POST = _answer

    with local_http.serving(Requests) as url:
        server_state.url = url
        yield server_state


# --- Aliyun dysmsapi: RPC signature v1 ---------------------------------------------------


def aliyun_expected_signature(method: str, params: dict[str, str], secret: str) -> str:
    def enc(text: str) -> str:
        return quote(text, safe="~").replace("+", "%20")

    query = "&".join(f"{enc(k)}={enc(params[k])}" for k in sorted(params) if k != "Signature")
    to_sign = f"{method}&%2F&{enc(query)}"
    digest = hmac.new(f"{secret}&".encode(), to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def aliyun_sms(secret: str, *, now: datetime) -> Handler:
    nonces: set[str] = set()

    def handle(seen: Seen) -> Reply:
        params = dict(parse_qsl(seen.body.decode(), keep_blank_values=True)) | seen.query
        expected = aliyun_expected_signature(seen.method, params, secret)
        if not hmac.compare_digest(params.get("Signature", ""), expected):
            return 400, {
                "Code": "SignatureDoesNotMatch",
                "Message": "Specified signature is not matched",
            }
        if params.get("Timestamp") != now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"):
            return 400, {"Code": "InvalidTimeStamp.Expired", "Message": "bad time"}
        if params["SignatureNonce"] in nonces:
            return 400, {"Code": "SignatureNonceUsed", "Message": "nonce used"}
        nonces.add(params["SignatureNonce"])
        if params.get("Action") != "SendSms" or params.get("Version") != "2017-05-25":
            return 400, {"Code": "InvalidAction", "Message": "?"}
        return 200, {"Code": "OK", "Message": "OK", "BizId": f"biz-{len(nonces)}", "RequestId": "r"}

    return handle


# --- Tencent Cloud SMS: TC3-HMAC-SHA256 -------------------------------------------------


def tencent_expected_authorization(seen: Seen, secret_id: str, secret_key: str) -> str:
    def h(key: bytes, text: str) -> bytes:
        return hmac.new(key, text.encode(), hashlib.sha256).digest()

    timestamp = int(seen.headers["x-tc-timestamp"])
    date = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
    canonical = (
        f"POST\n/\n\ncontent-type:{seen.headers['content-type']}\nhost:{seen.headers['host']}\n"
        f"\ncontent-type;host\n{hashlib.sha256(seen.body).hexdigest()}"
    )
    scope = f"{date}/sms/tc3_request"
    to_sign = (
        f"TC3-HMAC-SHA256\n{timestamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    )
    key = h(h(h(f"TC3{secret_key}".encode(), date), "sms"), "tc3_request")
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return (
        f"TC3-HMAC-SHA256 Credential={secret_id}/{scope}, SignedHeaders=content-type;host, "
        f"Signature={signature}"
    )


def tencent_sms(secret_id: str, secret_key: str) -> Handler:
    def handle(seen: Seen) -> Reply:
        expected = tencent_expected_authorization(seen, secret_id, secret_key)
        if not hmac.compare_digest(seen.headers.get("authorization", ""), expected):
            error = {"Code": "AuthFailure.SignatureFailure", "Message": "signature mismatch"}
            return 200, {"Response": {"Error": error, "RequestId": "r"}}
        if (seen.headers.get("x-tc-action"), seen.headers.get("x-tc-version")) != (
            "SendSms",
            "2021-01-11",
        ):
            error = {"Code": "InvalidAction", "Message": "?"}
            return 200, {"Response": {"Error": error, "RequestId": "r"}}
        body = json.loads(seen.body)
        status = {
            "SerialNo": "2028:0001",
            "PhoneNumber": body["PhoneNumberSet"][0],
            "Code": "Ok",
            "Message": "send success",
        }
        return 200, {"Response": {"SendStatusSet": [status], "RequestId": "r"}}

    return handle


# --- WeChat official account --------------------------------------------------------------


@dataclass
class WeChatBook:
    """What the fake WeChat hands out: tokens, and the messages it took."""

    appid: str
    secret: str
    tokens: list[str] = field(default_factory=list)
    revoked: set[str] = field(default_factory=set)
    sent: list[dict[str, Any]] = field(default_factory=list)


def wechat(book: WeChatBook) -> Handler:
    def handle(seen: Seen) -> Reply:
        if seen.path == "/cgi-bin/token":
            q = seen.query
            if (q.get("grant_type"), q.get("appid")) != ("client_credential", book.appid):
                return 200, {"errcode": 40013, "errmsg": "invalid appid"}
            if q.get("secret") != book.secret:
                return 200, {"errcode": 40125, "errmsg": "invalid appsecret"}
            book.tokens.append(f"token-{len(book.tokens) + 1}")
            return 200, {"access_token": book.tokens[-1], "expires_in": 7200}
        if seen.path == "/cgi-bin/message/template/send":
            token = seen.query.get("access_token", "")
            if token not in book.tokens or token in book.revoked:
                return 200, {"errcode": 40001, "errmsg": "invalid credential"}
            book.sent.append(json.loads(seen.body))
            return 200, {"errcode": 0, "errmsg": "ok", "msgid": 200228000 + len(book.sent)}
        return 404, {"errcode": 404, "errmsg": "no such path"}

    return handle


# --- an integrator's webhook receiver ---------------------------------------------------


def verified_webhook(secret: str, seen: Seen) -> bool:
    """What docs/notifications.md tells integrators to do, written independently."""
    timestamp = seen.headers.get("x-meterpay-timestamp", "")
    signed = timestamp.encode() + b"." + seen.body
    expected = "v1=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, seen.headers.get("x-meterpay-signature", ""))


def webhook_receiver(secrets: Callable[[], str], statuses: list[int]) -> Handler:
    """Refuses (401) a bad signature; otherwise answers the next of ``statuses`` (then 200)."""

    def handle(seen: Seen) -> Reply:
        if not verified_webhook(secrets(), seen):
            return 401, {"error": "bad signature"}
        return (statuses.pop(0) if statuses else 200), {"ok": True}

    return handle
