"""A fake of WeChat's web authorization (微信网页授权) on a real socket of 127.0.0.1.

Two endpoints, written from WeChat's documentation (not from meterpay's client):

- ``GET /connect/oauth2/authorize?appid&redirect_uri&response_type=code&scope&state`` —
  the page WeChat's browser is sent to. The user whose phone it is (``user``) is sent
  back with a 302 to ``redirect_uri`` plus ``code`` (good once, five minutes, for that
  appid) and ``state``; a redirect_uri outside the account's 网页授权域名, an unknown
  appid, a scope or state WeChat would refuse gets an error page instead.
- ``GET /sns/oauth2/access_token?appid&secret&code&grant_type=authorization_code`` —
  the exchange, answered in WeChat's JSON: ``access_token``, ``expires_in``,
  ``refresh_token``, ``openid``, ``scope`` (and ``is_snapshotuser`` for a snapshot
  page), or ``errcode``/``errmsg`` (40013 invalid appid, 40125 invalid appsecret, 40002
  invalid grant_type, 40029 invalid code, 40163 code been used) — always HTTP 200, as
  WeChat does.

An openid is per appid: the same user has another openid under another appid.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from tests.integration.local_http import QuietHandler, serving

CODE_LIFETIME_S = 300
_STATE = re.compile(r"^[a-zA-Z0-9]{0,128}$")


@dataclass
class FakeApp:
    """An official account: its AppSecret and its 网页授权域名 (host[:port])."""

    appid: str
    secret: str
    domain: str


@dataclass
class Issued:
    appid: str
    openid: str
    at: float
    used: bool = False

    @property
    def expired(self) -> bool:
        return time.monotonic() - self.at > CODE_LIFETIME_S


@dataclass
class WechatOauthFake:
    apps: dict[str, FakeApp]
    user: str = "alice"
    """Whose WeChat the browser is inside."""
    snapshot: bool = False
    """Answer as for a page opened in snapshot mode (朋友圈快照页)."""
    url: str = ""
    codes: dict[str, Issued] = field(default_factory=dict)
    exchanges: list[dict[str, str]] = field(default_factory=list)
    """The query of every exchange asked for."""

    @staticmethod
    def openid(appid: str, user: str) -> str:
        """The user's openid under ``appid``: 28 characters, as WeChat's."""
        return "o" + hashlib.sha256(f"{appid}:{user}".encode()).hexdigest()[:27]

    def authorize(self, query: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        app = self.apps.get(query.get("appid", ""))
        if app is None:
            return _page("appid 参数错误")
        target = query.get("redirect_uri", "")
        if urlsplit(target).netloc != app.domain:
            return _page("10003 redirect_uri域名与后台配置不一致")
        if query.get("response_type") != "code":
            return _page("10004 response_type参数错误")
        if query.get("scope") not in ("snsapi_base", "snsapi_userinfo"):
            return _page("10005 scope参数错误")
        state = query.get("state", "")
        if not _STATE.match(state):
            return _page("10007 state参数错误")
        code = secrets.token_hex(16)
        self.codes[code] = Issued(app.appid, self.openid(app.appid, self.user), time.monotonic())
        joiner = "&" if "?" in target else "?"
        return 302, {"Location": target + joiner + urlencode({"code": code, "state": state})}, b""

    def exchange(self, query: dict[str, str]) -> dict[str, Any]:
        self.exchanges.append(query)
        refused = self._refusal(query)
        if refused:
            return {"errcode": refused[0], "errmsg": refused[1]}
        issued = self.codes[query["code"]]
        issued.used = True
        answer: dict[str, Any] = {
            "access_token": secrets.token_urlsafe(48),
            "expires_in": 7200,
            "refresh_token": secrets.token_urlsafe(48),
            "openid": issued.openid,
            "scope": "snsapi_base",
        }
        if self.snapshot:
            answer["is_snapshotuser"] = 1
        return answer

    def _refusal(self, query: dict[str, str]) -> tuple[int, str] | None:
        app = self.apps.get(query.get("appid", ""))
        if app is None:
            return 40013, "invalid appid"
        if query.get("secret") != app.secret:
            return 40125, "invalid appsecret"
        if query.get("grant_type") != "authorization_code":
            return 40002, "invalid grant_type"
        issued = self.codes.get(query.get("code", ""))
        if issued is None or issued.appid != app.appid or issued.expired:
            return 40029, "invalid code"
        return (40163, "code been used") if issued.used else None

    def handle(self, method: str, target: str) -> tuple[int, dict[str, str], bytes]:
        parts = urlsplit(target)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        if method == "GET" and parts.path == "/connect/oauth2/authorize":
            return self.authorize(query)
        if method == "GET" and parts.path == "/sns/oauth2/access_token":
            body = json.dumps(self.exchange(query)).encode()
            return 200, {"Content-Type": "application/json; encoding=utf-8"}, body
        return 404, {"Content-Type": "text/plain"}, b"not found"


def _page(text: str) -> tuple[int, dict[str, str], bytes]:
    return 200, {"Content-Type": "text/html; charset=utf-8"}, f"<p>{text}</p>".encode()


@contextmanager
def running_wechat_oauth_fake(*apps: FakeApp) -> Iterator[WechatOauthFake]:
    """The fake listening on a free port of 127.0.0.1 until the block ends."""
    fake = WechatOauthFake({app.appid: app for app in apps})

    class Requests(QuietHandler):
        def do_GET(self) -> None:
            status, headers, body = fake.handle(self.command, self.path)
            self.reply(status, body, headers)

    with serving(Requests) as url:
        fake.url = url
        yield fake
