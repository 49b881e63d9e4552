"""用微信支付 from the portal inside WeChat: an owner without a known openid goes through
WeChat's web authorization (snsapi_base) and back, the openid is stored on their own
customer records of the sites paid through that appid, audited, and the top-up then
offers WeChat Pay (a JSAPI order carries the openid). A bad, foreign or replayed state
stores nothing and asks WeChat nothing; WeChat's refusal is said clearly. A fake of
WeChat's authorize page and code exchange runs on a real socket, and a fake WeChat Pay
takes the JSAPI order."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from meterpay.audit.service import AuditQuery, search
from meterpay.config import Settings
from meterpay.kernel.clock import SystemClock
from meterpay.payments.provider import ProviderName
from meterpay.payments.setup import merchants_from
from meterpay.payments.wechat import WechatPay
from meterpay.runtime import Runtime
from meterpay.sites import service as sites
from tests.integration.builders import Home, a_home
from tests.integration.portal_people import owner_browser, owner_of
from tests.integration.wechat_fake import APPID, FakeKeys, WechatFake, running_wechat_fake
from tests.integration.wechat_oauth_fake import (
    FakeApp,
    WechatOauthFake,
    running_wechat_oauth_fake,
)
from tests.merchant_files import wechat_entry, write

PHONE = "13900006666"
WECHAT_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like"
    " Gecko) Mobile/15E148 MicroMessenger/8.0.47(0x18002f2c) NetType/WIFI Language/zh_CN"
)
SECRET = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
GARDEN_APPID, GARDEN_SECRET = "wxgarden00000001", "9f8e7d6c5b4a39281706f5e4d3c2b1a0"
HOST = "testserver"
"""TestClient's host: the deployment's public address and the 网页授权域名."""


@pytest.fixture(scope="module")
def pay_keys() -> FakeKeys:
    return FakeKeys()


@pytest.fixture(scope="module")
def garden_keys() -> FakeKeys:
    return FakeKeys(
        mchid="1900000002",
        appid=GARDEN_APPID,
        merchant_serial="4B2C7E10AA55CC3300118899DDEE0011",
        public_key_id="PUB_KEY_ID_0119000000022026110100000000000002",
    )


@pytest.fixture
def wechat() -> Iterator[WechatOauthFake]:
    with running_wechat_oauth_fake(
        FakeApp(APPID, SECRET, HOST), FakeApp(GARDEN_APPID, GARDEN_SECRET, HOST)
    ) as fake:
        yield fake


@pytest.fixture
def pay(pay_keys: FakeKeys) -> Iterator[WechatFake]:
    with running_wechat_fake(pay_keys) as fake:
        yield fake


@pytest.fixture
def wired(rt: Runtime, wechat: WechatOauthFake, pay: WechatFake, pay_keys: FakeKeys) -> Runtime:
    """WeChat Pay's default merchant with its official account's AppSecret; WeChat's
    authorization at the fake."""
    rt.payments[ProviderName.WECHAT] = WechatPay(pay_keys.config(pay.url), clock=SystemClock())
    rt.settings = rt.settings.model_copy(
        update={
            "public_url": f"http://{HOST}",
            "wechat_appid": APPID,
            "wechat_secret": SecretStr(SECRET),
            "wechat_api_base": wechat.url,
            "wechat_oauth_authorize_url": f"{wechat.url}/connect/oauth2/authorize",
        }
    )
    return rt


def _home(rt: Runtime, code: str = "HOME") -> Home:
    home = a_home(rt, code=code)
    owner_of(rt, home.account.id, home.site.id, PHONE)
    return home


def _openid(rt: Runtime, home: Home) -> str | None:
    customer_id = sites.get(rt, "accounts", home.account.id).customer_id
    found: str | None = sites.get(rt, "customers", customer_id).wechat_openid
    return found


def _start(phone: TestClient, account_id: int) -> str:
    """用微信支付: where the browser is sent (WeChat's authorize page)."""
    started = phone.post(
        f"/portal/accounts/{account_id}/wechat-pay/authorize",
        data={"csrf_token": phone.headers["X-CSRF-Token"], "lang": "zh-CN"},
        follow_redirects=False,
    )
    assert started.status_code == 303, started.text
    return str(started.headers["location"])


def _through_wechat(authorize: str) -> str:
    """WeChat's page (the fragment stays in the browser) sends it back: our return path."""
    answer = httpx.get(authorize.partition("#")[0], follow_redirects=False)
    assert answer.status_code == 302, answer.text
    back = urlsplit(answer.headers["location"])
    assert back.netloc == HOST
    return f"{back.path}?{back.query}"


def _with(path: str, **changes: str) -> str:
    parts = urlsplit(path)
    query = dict(parse_qsl(parts.query)) | changes
    return parts.path + "?" + "&".join(f"{k}={v}" for k, v in query.items())


def test_an_owner_inside_wechat_gets_their_openid_and_then_pays_with_wechat(
    wired: Runtime, wechat: WechatOauthFake, pay: WechatFake
) -> None:
    rt = wired
    home = _home(rt)
    page_path = f"/portal/accounts/{home.account.id}"
    with owner_browser(rt, PHONE) as phone:
        outside = phone.get(page_path)
        assert 'id="wechat-link"' not in outside.text  # a phone's other browser: no WeChat
        phone.headers["User-Agent"] = WECHAT_UA
        page = phone.get(page_path)
        assert 'id="wechat-link"' in page.text and "用微信支付" in page.text
        assert 'value="wechat"' not in page.text  # no openid yet: no JSAPI payment
        authorize = _start(phone, home.account.id)
        assert authorize.startswith(f"{wechat.url}/connect/oauth2/authorize?appid={APPID}&")
        assert authorize.endswith("#wechat_redirect")
        sent = dict(parse_qsl(urlsplit(authorize.partition("#")[0]).query))
        assert list(sent) == ["appid", "redirect_uri", "response_type", "scope", "state"]
        assert sent["redirect_uri"] == (
            f"http://{HOST}/portal/accounts/{home.account.id}/wechat-pay/authorized?lang=zh-CN"
        )
        assert "%2Fportal%2Faccounts%2F" in authorize  # the redirect_uri is URL-encoded
        assert sent["response_type"] == "code" and sent["scope"] == "snsapi_base"
        assert re.fullmatch(r"[a-zA-Z0-9]{1,128}", sent["state"])
        back = phone.get(_through_wechat(authorize), follow_redirects=False)
        assert back.status_code == 303, back.text
        assert back.headers["location"] == f"{page_path}?wechat=linked&lang=zh-CN"
        assert _openid(rt, home) == wechat.openid(APPID, "alice")
        linked = phone.get(back.headers["location"])
        assert "已关联微信" in linked.text and 'value="wechat"' in linked.text
        assert 'id="wechat-link"' not in linked.text
        paid = phone.post(
            f"{page_path}/top-up",
            data={
                "csrf_token": phone.headers["X-CSRF-Token"],
                "amount": "50",
                "provider": "wechat",
            },
        )
        assert paid.status_code == 200, paid.text
        assert 'id="jsapi"' in paid.text
    (order,) = [s for s in pay.seen if s.target == "/v3/pay/transactions/jsapi"]
    assert json.loads(order.body)["payer"]["openid"] == wechat.openid(APPID, "alice")
    entries = search(rt, AuditQuery(action="customer.wechat_linked"), visible_sites=None)
    assert [(e.object_type, e.actor.startswith("owner:")) for e in entries] == [("customer", True)]
    assert entries[0].after == {"wechat_openid": wechat.openid(APPID, "alice"), "appid": APPID}


def test_a_replayed_state_is_refused_and_stores_nothing(
    wired: Runtime, wechat: WechatOauthFake
) -> None:
    rt = wired
    home = _home(rt)
    with owner_browser(rt, PHONE) as phone:
        phone.headers["User-Agent"] = WECHAT_UA
        authorize = _start(phone, home.account.id)
        first = _through_wechat(authorize)
        assert phone.get(first, follow_redirects=False).status_code == 303
        alice = _openid(rt, home)
        wechat.user = "mallory"  # someone else's code, sent back with the used state
        replayed = phone.get(_through_wechat(authorize))
        assert replayed.status_code == 400
        assert "微信授权未完成" in replayed.text and "used already" in replayed.text
        again = phone.get(first)  # the very same return again
        assert again.status_code == 400
    assert _openid(rt, home) == alice
    assert len(wechat.exchanges) == 1  # WeChat was asked once, for the first return only


def test_a_state_of_another_session_or_a_tampered_one_is_refused(
    wired: Runtime, wechat: WechatOauthFake
) -> None:
    rt = wired
    home = _home(rt)
    with owner_browser(rt, PHONE) as other_phone:
        theirs = _through_wechat(_start(other_phone, home.account.id))
    with owner_browser(rt, PHONE) as phone:
        phone.headers["User-Agent"] = WECHAT_UA
        mine = _through_wechat(_start(phone, home.account.id))
        state = dict(parse_qsl(urlsplit(mine).query))["state"]
        tampered = phone.get(_with(mine, state=state[:-1] + ("0" if state[-1] != "0" else "1")))
        assert tampered.status_code == 400
        assert "not started from this session" in tampered.text
        foreign_state = dict(parse_qsl(urlsplit(theirs).query))["state"]
        _start(phone, home.account.id)  # a fresh cookie: the state alone must still fail
        foreign = phone.get(_with(theirs, state=foreign_state))
        assert foreign.status_code == 400
        assert "not started from this session" in foreign.text
        missing = phone.get(_with(mine, state=""))
        assert missing.status_code == 400
    assert _openid(rt, home) is None
    assert wechat.exchanges == []
    assert search(rt, AuditQuery(action="customer.wechat_linked"), visible_sites=None) == []


@pytest.mark.parametrize(
    ("spoil", "errcode", "words"),
    [
        ("code", 40029, "not valid"),
        ("secret", 40125, "AppSecret is wrong"),
    ],
)
def test_wechat_refusing_the_code_is_shown_clearly_and_nothing_is_stored(
    wired: Runtime, wechat: WechatOauthFake, spoil: str, errcode: int, words: str
) -> None:
    rt = wired
    home = _home(rt)
    if spoil == "secret":
        rt.settings = rt.settings.model_copy(update={"wechat_secret": SecretStr("x" * 32)})
    with owner_browser(rt, PHONE) as phone:
        phone.headers["User-Agent"] = WECHAT_UA
        back = _through_wechat(_start(phone, home.account.id))
        if spoil == "code":
            back = _with(back, code="0" * 32)
        refused = phone.get(back)
        assert refused.status_code == 502
        assert f"errcode {errcode}" in refused.text and words in refused.text
        assert "微信授权未完成" in refused.text and 'id="wechat-link"' in refused.text
        assert "x" * 32 not in refused.text and SECRET not in refused.text
    assert _openid(rt, home) is None
    assert search(rt, AuditQuery(action="customer.wechat_linked"), visible_sites=None) == []


def test_a_snapshot_page_gives_no_openid(wired: Runtime, wechat: WechatOauthFake) -> None:
    rt = wired
    home = _home(rt)
    wechat.snapshot = True
    with owner_browser(rt, PHONE) as phone:
        refused = phone.get(_through_wechat(_start(phone, home.account.id)))
        assert refused.status_code == 502 and "使用完整服务" in refused.text
    assert _openid(rt, home) is None


def test_the_openid_goes_only_to_the_sites_paid_through_the_same_appid(
    wired: Runtime, wechat: WechatOauthFake, garden_keys: FakeKeys, tmp_path: Path
) -> None:
    """The GARDEN site has its own merchant under another official account: an openid
    got through the default one is not stored there, and the other way round."""
    rt = wired
    home, garden = _home(rt), _home(rt, code="GARDEN")
    entry = wechat_entry(tmp_path, "garden", ["GARDEN"], garden_keys, "http://127.0.0.1:9")
    (tmp_path / "garden" / "app_secret").write_text(GARDEN_SECRET + "\n")
    path = write(tmp_path, entry + 'app_secret_file = "garden/app_secret"\n')
    settings = Settings(database_url="sqlite://", payment_merchants_file=path)
    rt.merchants = merchants_from(settings, SystemClock())
    with owner_browser(rt, PHONE) as phone:
        phone.headers["User-Agent"] = WECHAT_UA
        phone.get(_through_wechat(_start(phone, home.account.id)))
        assert _openid(rt, home) == wechat.openid(APPID, "alice")
        assert _openid(rt, garden) is None
        authorize = _start(phone, garden.account.id)
        assert f"appid={GARDEN_APPID}&" in authorize
        phone.get(_through_wechat(authorize))
    assert _openid(rt, garden) == wechat.openid(GARDEN_APPID, "alice")
    assert _openid(rt, home) == wechat.openid(APPID, "alice")


def test_without_an_app_secret_or_for_another_owner_there_is_nothing_to_start(
    wired: Runtime,
) -> None:
    rt = wired
    home = _home(rt)
    other = a_home(rt, code="EAST")
    owner_of(rt, other.account.id, other.site.id, "13900007777")
    with owner_browser(rt, "13900007777") as stranger:
        stranger.headers["User-Agent"] = WECHAT_UA
        refused = stranger.post(
            f"/portal/accounts/{home.account.id}/wechat-pay/authorize",
            data={"csrf_token": stranger.headers["X-CSRF-Token"]},
            follow_redirects=False,
        )
        assert refused.status_code == 404
    rt.settings = rt.settings.model_copy(update={"wechat_secret": SecretStr("")})
    with owner_browser(rt, PHONE) as phone:
        phone.headers["User-Agent"] = WECHAT_UA
        page = phone.get(f"/portal/accounts/{home.account.id}")
        assert 'id="wechat-link"' not in page.text
        refused = phone.post(
            f"/portal/accounts/{home.account.id}/wechat-pay/authorize",
            data={"csrf_token": phone.headers["X-CSRF-Token"]},
            follow_redirects=False,
        )
        assert refused.status_code == 422 and "not set up for this property" in refused.text


def test_wechat_pay_is_offered_only_where_a_merchant_takes_the_sites_payments(
    wired: Runtime, garden_keys: FakeKeys, tmp_path: Path
) -> None:
    """Only the GARDEN site has a WeChat merchant (no default one): an owner with an
    openid sees WeChat Pay on GARDEN's account and not on HOME's."""
    rt = wired
    home, garden = _home(rt), _home(rt, code="GARDEN")
    del rt.payments[ProviderName.WECHAT]
    entry = wechat_entry(tmp_path, "garden", ["GARDEN"], garden_keys, "http://127.0.0.1:9")
    settings = Settings(database_url="sqlite://", payment_merchants_file=write(tmp_path, entry))
    rt.merchants = merchants_from(settings, SystemClock())
    for place in (home, garden):
        customer_id = sites.get(rt, "accounts", place.account.id).customer_id
        sites.update_place(rt, "customers", customer_id, actor="test", wechat_openid="o-alice")
    wechat_choice = 'name="provider" value="wechat"'
    with owner_browser(rt, PHONE) as phone:
        assert wechat_choice not in phone.get(f"/portal/accounts/{home.account.id}").text
        assert wechat_choice in phone.get(f"/portal/accounts/{garden.account.id}").text
