"""WeChat official-account template messages (公众号模板消息).

An access_token comes from ``GET /cgi-bin/token`` with the appid and secret and is kept
until shortly before it expires (per process; WeChat allows several valid tokens for a
short overlap). A message is ``POST /cgi-bin/message/template/send?access_token=…``; a
token WeChat calls invalid or expired is fetched again once and the message re-sent.

The template's fields are ``first`` (the title), ``keyword1`` (account), ``keyword2``
(money), ``keyword3`` (time) and ``remark`` (the full text); docs/notifications.md.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Any, Final

import httpx

from meterpay.config import Settings
from meterpay.notify.configuration import blank_settings
from meterpay.notify.model import Message, Outgoing, SendResult

TOKEN_ERRORS: Final = frozenset({40001, 40014, 42001})  # invalid, malformed, expired
RETRY_ERRORS: Final = frozenset({-1, 45009, 45011})  # busy, daily quota, too frequent
TOKEN_MARGIN: Final = timedelta(minutes=5)


class WeChatError(Exception):
    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"wechat {code}: {text}")
        self.code = code


def _answer(response: httpx.Response) -> dict[str, Any]:
    if response.status_code >= 500:
        raise WeChatError(-1, f"http {response.status_code}")
    try:
        found = response.json()
    except ValueError as exc:
        raise WeChatError(-1, f"not JSON (http {response.status_code})") from exc
    if not isinstance(found, dict):
        raise WeChatError(-1, "not a JSON object")
    code = int(found.get("errcode", 0) or 0)
    if code:
        raise WeChatError(code, str(found.get("errmsg", "")))
    return found


class WeChatTemplates:
    def __init__(self, settings: Settings, client: httpx.Client) -> None:
        self._settings = settings
        self._client = client
        self._lock = threading.Lock()
        self._token: tuple[str, datetime] | None = None

    def send(self, outgoing: Outgoing, now: datetime) -> SendResult:
        message = outgoing.message
        template = self._settings.wechat_templates.get(message.topic.value)
        if not template:
            return SendResult.skipped(f"MP_WECHAT_TEMPLATES has no template for {message.topic}")
        try:
            return self._send(self._body(message, template), now)
        except WeChatError as exc:
            if exc.code in RETRY_ERRORS:
                return SendResult.retry(str(exc))
            return SendResult.failed(str(exc))

    def _send(self, body: dict[str, Any], now: datetime) -> SendResult:
        for fresh in (False, True):
            token = self._access_token(now, fresh=fresh)
            url = f"{self._base}/cgi-bin/message/template/send"
            response = self._client.post(url, params={"access_token": token}, json=body)
            try:
                answer = _answer(response)
            except WeChatError as exc:
                if exc.code in TOKEN_ERRORS and not fresh:
                    continue
                raise
            return SendResult.sent(str(answer.get("msgid", "")))
        raise WeChatError(40001, "the access_token was refused twice")

    def _access_token(self, now: datetime, *, fresh: bool) -> str:
        with self._lock:
            if self._token is not None and not fresh and now < self._token[1]:
                return self._token[0]
            s = self._settings
            query = {
                "grant_type": "client_credential",
                "appid": s.wechat_appid,
                "secret": s.wechat_secret.get_secret_value(),
            }
            answer = _answer(self._client.get(f"{self._base}/cgi-bin/token", params=query))
            lifetime = timedelta(seconds=int(answer.get("expires_in", 7200)))
            self._token = (str(answer["access_token"]), now + lifetime - TOKEN_MARGIN)
            return self._token[0]

    @property
    def _base(self) -> str:
        return self._settings.wechat_api_base.rstrip("/")

    def _body(self, message: Message, template: str) -> dict[str, Any]:
        found = message.variables
        fields = {
            "first": message.title,
            "keyword1": found.get("account") or found.get("site") or "",
            "keyword2": _money(found),
            "keyword3": found.get("time", ""),
            "remark": message.body,
        }
        body: dict[str, Any] = {
            "touser": message.recipient,
            "template_id": template,
            "data": {k: {"value": str(v)} for k, v in fields.items()},
        }
        if self._settings.wechat_link_url:
            body["url"] = self._settings.wechat_link_url
        return body


def _money(found: dict[str, Any]) -> str:
    amount = found.get("amount") or found.get("balance")
    if not amount:
        return ""
    text = str(amount)
    return f"-¥{text[1:]}" if text.startswith("-") else f"¥{text}"


def wechat_from(settings: Settings, client: httpx.Client) -> WeChatTemplates | str:
    """The configured official account, or why there is none."""
    if not settings.wechat_appid.strip():
        return "WeChat is not configured (MP_WECHAT_APPID is empty)"
    return blank_settings(settings, "wechat_secret") or WeChatTemplates(settings, client)
