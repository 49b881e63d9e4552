"""WeChat web authorization (微信网页授权, ``snsapi_base``): how an owner inside WeChat's
browser gets the openid a WeChat Pay JSAPI payment needs.

The browser is sent to WeChat's authorize page (``authorize_url``) with a ``state``;
WeChat sends it back to our ``redirect_uri`` with a one-time ``code`` and that state,
and the code is exchanged for the openid at ``GET /sns/oauth2/access_token`` with the
official account's appid and AppSecret (``WechatOauth``; ``HttpWechatOauth`` over httpx).
With ``snsapi_base`` WeChat asks the user nothing, and the access token that comes with
the openid is of no use to us: it is dropped.

Invariants:
- an openid is per appid: it is only good for payments through a merchant whose appid
  is the one it was issued for (``WechatApp`` keeps the two together);
- a state is bound to the owner's session (an HMAC keyed by a secret of the session),
  to the account and the appid, lives ``STATE_TTL``, and is good once: its nonce also
  sits in a cookie the return clears (``issue_state`` / ``check_state``); a state that
  fails any of these is ``BadOauthState`` and nothing is asked of WeChat;
- the AppSecret never appears in a repr, a log line or an error message (the exchange's
  URL carries it, so no httpx error is passed on as it is).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import TracebackType
from typing import Final, Protocol
from urllib.parse import quote, urlencode

import httpx

from meterpay.kernel.errors import DomainError, InvalidInput

AUTHORIZE_URL: Final = "https://open.weixin.qq.com/connect/oauth2/authorize"
API_BASE: Final = "https://api.weixin.qq.com"
EXCHANGE_PATH: Final = "/sns/oauth2/access_token"
"""Where a code becomes an openid (and an access token we do not keep)."""
SCOPE: Final = "snsapi_base"
STATE_TTL: Final = timedelta(minutes=10)
_STATE: Final = re.compile(r"^[0-9a-f]{72}$")
"""8 hex digits of issue time, 32 of nonce, 32 of MAC: WeChat allows [a-zA-Z0-9]{,128}."""
_OPENID: Final = re.compile(r"^[0-9A-Za-z_-]{6,128}$")
_HINTS: Final = {
    40029: "the authorization code is not valid (too old?)",
    40163: "the authorization code was used already",
    40013: "the property's WeChat appid is wrong: please tell the property office",
    40125: "the property's WeChat AppSecret is wrong: please tell the property office",
    40001: "the property's WeChat AppSecret is wrong: please tell the property office",
}


@dataclass(frozen=True, slots=True)
class WechatApp:
    """An official account (公众号): its appid and AppSecret, for web authorization."""

    appid: str
    secret: str = field(repr=False)


class BadOauthState(InvalidInput):
    """The ``state`` that came back is not one this session asked for just now."""

    code = "bad_oauth_state"


class WechatOauthError(DomainError):
    code = "wechat_oauth_failed"


class WechatOauthRefused(WechatOauthError):
    """WeChat answered with an ``errcode``."""

    code = "wechat_oauth_refused"

    def __init__(self, errcode: int, errmsg: str) -> None:
        hint = _HINTS.get(errcode, "")
        super().__init__(
            f"WeChat refused the authorization (errcode {errcode}: {errmsg})"
            + (f": {hint}" if hint else ""),
            errcode=errcode,
        )
        self.errcode = errcode


class SnapshotPage(WechatOauthError):
    """The page was opened as WeChat's snapshot (from Moments): no real openid there."""

    code = "wechat_snapshot_page"


class WechatOauthUnavailable(WechatOauthError):
    """WeChat could not be reached, or answered with something other than its JSON."""

    code = "wechat_oauth_unavailable"


class WechatOauth(Protocol):
    """The port: a web-authorization ``code`` in, the user's openid under ``app`` out."""

    def openid_for(self, app: WechatApp, code: str) -> str: ...


def authorize_url(appid: str, redirect_uri: str, state: str, *, base: str = AUTHORIZE_URL) -> str:
    """Where the browser goes to be authorized (the parameters in WeChat's own order)."""
    query = urlencode(
        {
            "appid": appid,
            "redirect_uri": redirect_uri,
            "response_type": "code",
            "scope": SCOPE,
            "state": state,
        },
        quote_via=quote,
    )
    return f"{base}?{query}#wechat_redirect"


# --- the state ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OauthState:
    value: str
    """The ``state`` parameter that goes to WeChat and comes back."""
    nonce: str
    """Kept in a cookie of the browser that asked: the return clears it (good once)."""


def issue_state(
    *, session_key: str, account_id: int, appid: str, now: datetime, nonce: str = ""
) -> OauthState:
    """A fresh state for this session, account and appid."""
    nonce = nonce or secrets.token_hex(16)
    issued = f"{int(now.timestamp()):08x}"
    mac = _mac(session_key, account_id, appid, issued, nonce)
    return OauthState(issued + nonce + mac, nonce)


def check_state(
    state: str,
    *,
    cookie_nonce: str,
    session_key: str,
    account_id: int,
    appid: str,
    now: datetime,
) -> None:
    """Refuse (``BadOauthState``) a state not issued to this session for this account
    and appid, one already used (its cookie gone or replaced), or one too old."""
    if not _STATE.match(state):
        raise BadOauthState("the WeChat authorization came back without a state we issued")
    issued, nonce, mac = state[:8], state[8:40], state[40:]
    if not hmac.compare_digest(mac, _mac(session_key, account_id, appid, issued, nonce)):
        raise BadOauthState(
            "this WeChat authorization was not started from this session: tap 用微信支付 again"
        )
    if not cookie_nonce or not hmac.compare_digest(nonce, cookie_nonce):
        raise BadOauthState(
            "this WeChat authorization was used already (or another was started since):"
            " tap 用微信支付 again"
        )
    age = now.timestamp() - int(issued, 16)
    if not -60 <= age <= STATE_TTL.total_seconds():
        raise BadOauthState("this WeChat authorization has expired: tap 用微信支付 again")


def _mac(session_key: str, account_id: int, appid: str, issued: str, nonce: str) -> str:
    key = hashlib.sha256(b"meterpay wechat-oauth state\0" + session_key.encode()).digest()
    message = f"{account_id}|{appid}|{issued}|{nonce}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:32]


# --- the exchange -------------------------------------------------------------------------


def openid_from(raw: bytes) -> str:
    """The openid in WeChat's answer to the exchange, or why there is none."""
    try:
        found = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise WechatOauthUnavailable("WeChat's answer was not JSON: try again later") from None
    if not isinstance(found, dict):
        raise WechatOauthUnavailable("WeChat's answer was not a JSON object: try again later")
    errcode = found.get("errcode", 0)
    if errcode:
        raise WechatOauthRefused(_int(errcode), str(found.get("errmsg", ""))[:200])
    if found.get("is_snapshotuser") == 1:  # a stand-in openid, not the user's
        raise SnapshotPage(
            "this is WeChat's snapshot of the page (朋友圈快照页): tap 使用完整服务 to open"
            " the page itself, then pay"
        )
    openid = found.get("openid")
    if not isinstance(openid, str) or not _OPENID.match(openid):
        raise WechatOauthUnavailable("WeChat's answer carried no openid: try again later")
    return openid


def _int(value: object) -> int:
    try:
        return int(str(value))
    except ValueError:
        return -1


class HttpWechatOauth:
    """``WechatOauth`` over HTTP; ``api_base`` is WeChat's (a fake server in tests)."""

    def __init__(
        self,
        api_base: str = API_BASE,
        *,
        timeout_s: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._url = api_base.rstrip("/") + EXCHANGE_PATH
        self._client = httpx.Client(timeout=timeout_s, transport=transport, follow_redirects=False)

    def openid_for(self, app: WechatApp, code: str) -> str:
        query = {
            "appid": app.appid,
            "secret": app.secret,
            "code": code,
            "grant_type": "authorization_code",
        }
        try:
            response = self._client.get(self._url, params=query)
        except httpx.HTTPError as exc:  # its message may carry the URL, and so the secret
            raise WechatOauthUnavailable(
                f"WeChat could not be reached ({type(exc).__name__}): try again later"
            ) from None
        if response.status_code != 200:
            raise WechatOauthUnavailable(
                f"WeChat answered HTTP {response.status_code}: try again later"
            )
        return openid_from(response.content)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HttpWechatOauth:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
