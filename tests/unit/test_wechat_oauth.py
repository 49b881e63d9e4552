"""WeChat web authorization (snsapi_base): the authorize URL as WeChat documents it, a
state good only for the session, account and appid it was issued for (and once, and
not for long), WeChat's answers read as they come (openid, errcode, snapshot pages),
an AppSecret never shown, and a site merchant's optional AppSecret file."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from meterpay.kernel.clock import FixedClock
from meterpay.payments.merchants_file import MerchantsFileError, load
from meterpay.payments.sandbox import SandboxKeys
from meterpay.payments.wechat_oauth import (
    STATE_TTL,
    BadOauthState,
    HttpWechatOauth,
    SnapshotPage,
    WechatApp,
    WechatOauthRefused,
    WechatOauthUnavailable,
    authorize_url,
    check_state,
    issue_state,
    openid_from,
)
from tests.merchant_files import wechat_entry, write

NOW = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
APP = WechatApp("wx2421b1c4370ec43b", "0a1b2c3d4e5f60718293a4b5c6d7e8f9")
OPENID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
SESSION = "csrf-token-of-the-owners-session"


def test_the_authorize_url_is_wechats_with_its_parameters_in_order() -> None:
    url = authorize_url(APP.appid, "https://pay.example.com/portal/x?lang=en", "abc123")
    assert url == (
        "https://open.weixin.qq.com/connect/oauth2/authorize?appid=wx2421b1c4370ec43b"
        "&redirect_uri=https%3A%2F%2Fpay.example.com%2Fportal%2Fx%3Flang%3Den"
        "&response_type=code&scope=snsapi_base&state=abc123#wechat_redirect"
    )


def _check(state: str, nonce: str, **changes: object) -> None:
    given: dict[str, object] = {
        "cookie_nonce": nonce,
        "session_key": SESSION,
        "account_id": 7,
        "appid": APP.appid,
        "now": NOW + timedelta(minutes=2),
    }
    check_state(state, **(given | changes))  # type: ignore[arg-type]


def test_a_state_comes_back_good_to_the_session_that_asked_for_it() -> None:
    state = issue_state(session_key=SESSION, account_id=7, appid=APP.appid, now=NOW)
    assert state.value.isalnum() and len(state.value) <= 128  # what WeChat carries back
    _check(state.value, state.nonce)


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"session_key": "another-session"}, "not started from this session"),
        ({"account_id": 8}, "not started from this session"),
        ({"appid": "wxother"}, "not started from this session"),
        ({"cookie_nonce": ""}, "used already"),
        ({"cookie_nonce": "0" * 32}, "used already"),
        ({"now": NOW + STATE_TTL + timedelta(seconds=1)}, "expired"),
    ],
)
def test_a_state_for_another_session_account_or_app_used_or_old_is_refused(
    changes: dict[str, object], words: str
) -> None:
    state = issue_state(session_key=SESSION, account_id=7, appid=APP.appid, now=NOW)
    with pytest.raises(BadOauthState, match=words):
        _check(state.value, state.nonce, **changes)


@pytest.mark.parametrize("value", ["", "x" * 72, "0" * 71, "0" * 73])
def test_something_that_is_not_our_state_is_refused(value: str) -> None:
    with pytest.raises(BadOauthState, match="without a state we issued"):
        _check(value, "0" * 32)


def test_a_tampered_state_is_refused() -> None:
    state = issue_state(session_key=SESSION, account_id=7, appid=APP.appid, now=NOW)
    later = f"{int((NOW + timedelta(hours=1)).timestamp()):08x}" + state.value[8:]
    with pytest.raises(BadOauthState, match="not started from this session"):
        _check(later, state.nonce)


def test_wechats_answer_gives_the_openid() -> None:
    answer = {
        "access_token": "ACCESS",
        "expires_in": 7200,
        "refresh_token": "REFRESH",
        "openid": OPENID,
        "scope": "snsapi_base",
    }
    assert openid_from(json.dumps(answer).encode()) == OPENID


def test_an_errcode_is_a_refusal_naming_the_code_and_what_to_do() -> None:
    with pytest.raises(WechatOauthRefused) as refused:
        openid_from(b'{"errcode":40163,"errmsg":"code been used, rid: 6540f2ab-1"}')
    assert refused.value.errcode == 40163
    assert "errcode 40163" in refused.value.message and "used already" in refused.value.message


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        (b'{"openid":"o1","is_snapshotuser":1,"scope":"snsapi_base"}', SnapshotPage),
        (b"<html>busy</html>", WechatOauthUnavailable),
        (b"[]", WechatOauthUnavailable),
        (b'{"scope":"snsapi_base"}', WechatOauthUnavailable),
        (b'{"openid":"not an openid!"}', WechatOauthUnavailable),
    ],
)
def test_an_answer_without_a_real_openid_is_refused(raw: bytes, kind: type[Exception]) -> None:
    with pytest.raises(kind):
        openid_from(raw)


def test_the_client_asks_the_exchange_as_wechat_documents_it() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"openid": OPENID, "scope": "snsapi_base"})

    with HttpWechatOauth("http://wechat.test/", transport=httpx.MockTransport(answer)) as client:
        assert client.openid_for(APP, "CODE1") == OPENID
    (request,) = seen
    assert request.method == "GET" and request.url.path == "/sns/oauth2/access_token"
    assert dict(request.url.params) == {
        "appid": APP.appid,
        "secret": APP.secret,
        "code": "CODE1",
        "grant_type": "authorization_code",
    }


@pytest.mark.parametrize("status", [None, 502])
def test_an_unreachable_wechat_is_said_without_the_secret(status: int | None) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if status is None:
            raise httpx.ConnectError(f"cannot reach {request.url}", request=request)
        return httpx.Response(status, text=str(request.url))

    client = HttpWechatOauth(transport=httpx.MockTransport(answer))
    with client, pytest.raises(WechatOauthUnavailable) as refused:
        client.openid_for(APP, "CODE1")
    assert APP.secret not in str(refused.value) and refused.value.__cause__ is None
    assert APP.secret not in repr(APP)


def test_a_site_merchant_may_name_its_official_accounts_app_secret_file(tmp_path: Path) -> None:
    keys = SandboxKeys(mchid="1900000002", appid="wxgarden0000001")
    plain = write(tmp_path, wechat_entry(tmp_path, "garden", ["GARDEN"], keys))
    clock = FixedClock(NOW)
    assert load(plain, clock).merchants["garden"].web_app is None
    (tmp_path / "garden" / "app_secret").write_text(APP.secret + "\n")
    named = plain.read_text() + 'app_secret_file = "garden/app_secret"\n'
    plain.write_text(named)
    assert load(plain, clock).merchants["garden"].web_app == WechatApp(
        "wxgarden0000001", APP.secret
    )
    plain.write_text(named.replace("garden/app_secret", "garden/missing"))
    with pytest.raises(MerchantsFileError, match="app_secret_file") as refused:
        load(plain, clock)
    assert APP.secret not in str(refused.value)
