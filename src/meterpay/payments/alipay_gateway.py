"""The Alipay open-platform gateway (``gateway.do``, v2): signed calls, verified answers.

Requests: the common parameters (app_id, method, format=JSON, charset=utf-8,
sign_type=RSA2, timestamp in Beijing time, version=1.0, notify_url when given) go in the
query string and ``biz_content`` (JSON) in the form body, as Alipay's own SDK sends them;
the signature covers all of them, ``sign_type`` *included*, empty values skipped.

Answers: ``{"<method, dots as underscores>_response": {…}, "sign": "…"}`` (or
``error_response``). The sign covers the exact text of the response node as it appears in
the body — spaces, key order and escapes included — so it is checked on that substring,
found by walking the top-level JSON object, never on re-serialised JSON.

Invariants: a success (code 10000) is returned only when its signature verifies; a
present but bad signature raises ``AlipayUntrusted``; an unsigned refusal (Alipay leaves
some unsigned, such as ``isv.invalid-signature``) raises with ``signed=False`` so no caller
can read its ``sub_code`` as a fact. Keys are never logged.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

import httpx
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from meterpay.kernel.clock import Clock
from meterpay.kernel.errors import DomainError
from meterpay.payments.alipay_bill import BEIJING
from meterpay.payments.alipay_sign import SIGN_TYPE, rsa2_sign, rsa2_verify, sign_content

log = logging.getLogger(__name__)

GATEWAY: Final = "https://openapi.alipay.com/gateway.do"
SUCCESS: Final = "10000"
SYSTEM_ERROR: Final = "20000"
MAX_DOWNLOAD_BYTES: Final = 32 * 1024 * 1024


class AlipayError(DomainError):
    """Alipay refused a call, or could not be reached, or answered something untrusted."""

    code = "alipay_error"

    def __init__(
        self, message: str, *, method: str, sub_code: str = "", signed: bool = True
    ) -> None:
        super().__init__(message, method=method, sub_code=sub_code)
        self.method = method
        self.sub_code = sub_code
        self.signed = signed
        """Whether Alipay's signature covered this answer: only then may a caller act on
        ``sub_code`` (e.g. read ACQ.TRADE_NOT_EXIST as "no such order")."""

    def said(self, sub_code: str) -> bool:
        """Alipay itself, in a signed answer, refused with ``sub_code``."""
        return self.signed and self.sub_code == sub_code


class AlipayUnavailable(AlipayError):
    """No usable answer (network, HTTP status, Alipay's system error): safe to retry."""

    code = "alipay_unavailable"


class AlipayUntrusted(AlipayError):
    """An answer that is not signed by the Alipay key we trust, or is malformed."""

    code = "alipay_untrusted"

    def __init__(self, message: str, *, method: str) -> None:
        super().__init__(message, method=method, signed=False)


def beijing(moment: datetime) -> str:
    """``yyyy-MM-dd HH:mm:ss`` in Beijing time, as every Alipay time is written."""
    return moment.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S")


class AlipayGateway:
    """Signed calls to one Alipay application's gateway."""

    def __init__(
        self,
        *,
        app_id: str,
        url: str,
        private_key: RSAPrivateKey,
        alipay_key: RSAPublicKey,
        clock: Clock,
        http: httpx.Client,
    ) -> None:
        self._app_id = app_id
        self._url = url
        self._private_key = private_key
        self._alipay_key = alipay_key
        self._clock = clock
        self._http = http

    def __repr__(self) -> str:
        return f"AlipayGateway(app_id={self._app_id!r}, url={self._url!r})"

    def signed_params(
        self, method: str, biz: Mapping[str, str], *, notify_url: str = ""
    ) -> dict[str, str]:
        """The full parameter set of one call, ``sign`` included."""
        params = {
            "app_id": self._app_id,
            "method": method,
            "format": "JSON",
            "charset": "utf-8",
            "sign_type": SIGN_TYPE,
            "timestamp": beijing(self._clock.now()),
            "version": "1.0",
            "notify_url": notify_url,
            "biz_content": json.dumps(biz, ensure_ascii=False, separators=(",", ":")),
        }
        params = {k: v for k, v in params.items() if v}
        params["sign"] = rsa2_sign(sign_content(params, include_sign_type=True), self._private_key)
        return params

    def call(self, method: str, biz: Mapping[str, str], *, notify_url: str = "") -> dict[str, Any]:
        """One signed call; the verified response node when Alipay says 10000."""
        params = self.signed_params(method, biz, notify_url=notify_url)
        body = {"biz_content": params.pop("biz_content")}
        try:
            response = self._http.post(self._url, params=params, data=body)
        except httpx.HTTPError as exc:
            raise AlipayUnavailable(f"{method}: {type(exc).__name__}", method=method) from exc
        if response.status_code != 200:
            raise AlipayUnavailable(f"{method}: HTTP {response.status_code}", method=method)
        node, signed = self._node(method, response.content.decode("utf-8", errors="replace"))
        code, sub_code = str(node.get("code", "")), str(node.get("sub_code", ""))
        log.info("alipay %s -> %s %s", method, code, sub_code)
        if code == SUCCESS and signed:
            return node
        if code == SUCCESS:
            raise AlipayUntrusted(f"{method}: a success without a signature", method=method)
        kind = AlipayUnavailable if code == SYSTEM_ERROR else AlipayError
        message = f"{method}: {code} {sub_code} {node.get('sub_msg', '')}".strip()
        raise kind(message, method=method, sub_code=sub_code, signed=signed)

    def _node(self, method: str, text: str) -> tuple[dict[str, Any], bool]:
        """The response node and whether its exact text carries a good signature. A present
        but bad signature raises: only an unsigned *refusal* is passed on (Alipay leaves
        some, such as a bad request signature, unsigned)."""
        spans = response_spans(text)
        name = method.replace(".", "_") + "_response"
        raw = spans.get(name) or spans.get("error_response")
        if raw is None:
            raise AlipayUntrusted(f"{method}: the answer has no {name}", method=method)
        node = json.loads(raw)
        if not isinstance(node, dict):
            raise AlipayUntrusted(f"{method}: {name} is not an object", method=method)
        if "sign" not in spans:
            return node, False
        sign = json.loads(spans["sign"])
        if not isinstance(sign, str) or not self._signed_by_alipay(raw, sign):
            raise AlipayUntrusted(
                f"{method}: the answer's signature does not verify", method=method
            )
        return node, True

    def _signed_by_alipay(self, raw: str, sign: str) -> bool:
        """Alipay may escape ``/`` as ``\\/`` in what it sends but sign the unescaped text;
        its own SDK then checks again without the escapes, and so do we."""
        if rsa2_verify(raw, sign, self._alipay_key):
            return True
        return "\\/" in raw and rsa2_verify(raw.replace("\\/", "/"), sign, self._alipay_key)

    def download(self, url: str, *, method: str) -> bytes:
        """The bytes at ``url`` (the bill's short-lived link; the download is not signed)."""
        chunks: list[bytes] = []
        size = 0
        try:
            with self._http.stream("GET", url) as response:
                if response.status_code != 200:
                    raise AlipayUnavailable(
                        f"bill download: HTTP {response.status_code}", method=method
                    )
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > MAX_DOWNLOAD_BYTES:
                        raise AlipayUntrusted("the bill download is too large", method=method)
                    chunks.append(chunk)
        except httpx.HTTPError as exc:
            raise AlipayUnavailable(f"bill download: {type(exc).__name__}", method=method) from exc
        return b"".join(chunks)


def response_spans(text: str) -> dict[str, str]:
    """The exact text of each top-level value of a JSON object, by key: what Alipay signed
    is the response node's text as sent, spaces and key order included. Strict: a repeated
    key, a missing comma or trailing text is refused."""
    decoder = json.JSONDecoder()
    spans: dict[str, str] = {}
    try:
        at = _expect(text, _skip(text, 0), "{")
        while text[at] != "}":
            key, at = decoder.raw_decode(text, at)
            if not isinstance(key, str) or key in spans:
                raise ValueError(f"a bad or repeated key {key!r}")
            start = _skip(text, _expect(text, at, ":"))
            _, end = decoder.raw_decode(text, start)
            spans[key] = text[start:end]
            at = _skip(text, end)
            if text[at] == ",":
                at = _expect(text, at, ",")
            elif text[at] != "}":
                raise ValueError("no comma between members")
        if _skip(text, at + 1) != len(text):
            raise ValueError("text after the object")
    except (ValueError, IndexError) as exc:
        raise AlipayUntrusted(f"the answer is not a JSON object: {exc}", method="") from exc
    return spans


def _expect(text: str, at: int, char: str) -> int:
    """The position after ``char`` (and any whitespace) at ``at``."""
    at = _skip(text, at)
    if text[at] != char:
        raise ValueError(f"expected {char!r} at {at}")
    return _skip(text, at + 1)


def _skip(text: str, at: int) -> int:
    while at < len(text) and text[at] in " \t\r\n":
        at += 1
    return at
