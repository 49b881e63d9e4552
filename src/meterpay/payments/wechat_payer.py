"""An owner's WeChat as a payer: a WeChat Pay JSAPI payment needs the payer's openid,
and an owner inside WeChat's browser gets it through web authorization
(``payments.wechat_oauth``). Here: which official account authorizes the owners of a
site, starting the authorization, and storing the openid it gives on the owner's own
customer records.

Invariants:
- an openid is per appid: it is stored only on the signed-in owner's own customer
  records, and only on those of sites whose WeChat Pay merchant uses the appid it was
  issued under — the site's own merchant (``MP_PAYMENT_MERCHANTS_FILE``, with its
  ``app_secret_file``), else the default one (``MP_WECHAT_APPID``/``MP_WECHAT_SECRET``);
- WeChat is asked nothing unless the state checks out, and nothing is stored unless
  WeChat answered with an openid; WeChat is asked outside the database transaction;
- each openid stored is in the audit log, with who, from where, before and after.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection

from meterpay.audit import repository as audit
from meterpay.db.rows import fetch, update_row
from meterpay.db.schema import customers
from meterpay.kernel.errors import InvalidInput, NotFound
from meterpay.payments.merchants import DEFAULT
from meterpay.payments.provider import ProviderName
from meterpay.payments.registry import merchant_for_site
from meterpay.payments.wechat_oauth import (
    HttpWechatOauth,
    WechatApp,
    WechatOauth,
    authorize_url,
    check_state,
    issue_state,
)
from meterpay.runtime import Runtime
from meterpay.sites import repository as sites
from meterpay.sites.model import Customer


class WebAuthorizationNotOffered(InvalidInput):
    code = "wechat_oauth_not_offered"


@dataclass(frozen=True, slots=True)
class Authorization:
    url: str
    """WeChat's authorize page, where the browser goes."""
    nonce: str
    """For the browser's one-time cookie (``check_state``)."""


@dataclass(frozen=True, slots=True)
class LinkedPayer:
    appid: str
    customer_ids: tuple[int, ...]
    """The owner's customer records that now carry the openid."""


def web_app_for_site(rt: Runtime, site_code: str) -> WechatApp | None:
    """The official account that authorizes the site's payers: that of the merchant
    taking the site's WeChat payments; None when that merchant has no AppSecret here."""
    code = merchant_for_site(rt, ProviderName.WECHAT, site_code)
    if code != DEFAULT:
        merchant = rt.merchants.merchants.get(code)
        return merchant.web_app if merchant is not None else None
    if ProviderName.WECHAT not in rt.payments:
        return None
    appid = rt.settings.wechat_appid.strip()
    secret = rt.settings.wechat_secret.get_secret_value().strip()
    return WechatApp(appid, secret) if appid and secret else None


def may_authorize(rt: Runtime, account_id: int) -> bool:
    """Whether the account's owner can get their openid here (for the top-up page)."""
    with rt.db.read() as conn:
        return _app_of_account(rt, conn, account_id) is not None


def start_authorization(
    rt: Runtime,
    account_id: int,
    *,
    customer_ids: frozenset[int],
    session_key: str,
    redirect_uri: str,
) -> Authorization:
    """Where to send the owner's browser: WeChat's authorize page with a state bound to
    ``session_key`` (a secret of the owner's session), this account and its appid."""
    with rt.db.read() as conn:
        app = _offered(rt, conn, account_id, customer_ids)
    state = issue_state(
        session_key=session_key, account_id=account_id, appid=app.appid, now=rt.clock.now()
    )
    url = authorize_url(
        app.appid, redirect_uri, state.value, base=rt.settings.wechat_oauth_authorize_url
    )
    return Authorization(url, state.nonce)


def link_payer(
    rt: Runtime,
    *,
    account_id: int,
    code: str,
    state: str,
    cookie_nonce: str,
    session_key: str,
    customer_ids: frozenset[int],
    by: str,
    source_ip: str | None = None,
    oauth: WechatOauth | None = None,
) -> LinkedPayer:
    """WeChat's ``code`` exchanged for the owner's openid, stored on the owner's customer
    records of every site authorized by the same appid. A bad, foreign, old or replayed
    ``state`` (``BadOauthState``) or WeChat's refusal (``WechatOauthError``) stores
    nothing."""
    if not code.strip():
        raise InvalidInput("WeChat sent no authorization code: tap 用微信支付 again", field="code")
    with rt.db.read() as conn:
        app = _offered(rt, conn, account_id, customer_ids)
    now = rt.clock.now()
    check_state(
        state,
        cookie_nonce=cookie_nonce,
        session_key=session_key,
        account_id=account_id,
        appid=app.appid,
        now=now,
    )
    openid = _exchange(rt, app, code.strip()[:512], oauth)
    with rt.db.write() as conn:
        linked = tuple(
            customer_id
            for customer_id in sorted(customer_ids)
            if _store(rt, conn, customer_id, app, openid, by=by, source_ip=source_ip, now=now)
        )
    return LinkedPayer(app.appid, linked)


def _offered(
    rt: Runtime, conn: Connection, account_id: int, customer_ids: frozenset[int]
) -> WechatApp:
    account = sites.account(conn, account_id)
    if account.customer_id is None or account.customer_id not in customer_ids:
        raise NotFound(f"account {account_id} does not exist", account_id=account_id)
    app = _app_of_account(rt, conn, account_id)
    if app is None:
        raise WebAuthorizationNotOffered(
            "WeChat Pay inside WeChat is not set up for this property: choose another way to"
            " pay, or pay at the property office"
        )
    return app


def _app_of_account(rt: Runtime, conn: Connection, account_id: int) -> WechatApp | None:
    account = sites.account(conn, account_id)
    return web_app_for_site(rt, sites.site(conn, account.site_id).code)


def _exchange(rt: Runtime, app: WechatApp, code: str, oauth: WechatOauth | None) -> str:
    if oauth is not None:
        return oauth.openid_for(app, code)
    with HttpWechatOauth(rt.settings.wechat_api_base) as client:
        return client.openid_for(app, code)


def _store(
    rt: Runtime,
    conn: Connection,
    customer_id: int,
    app: WechatApp,
    openid: str,
    *,
    by: str,
    source_ip: str | None,
    now: datetime,
) -> bool:
    """Store the openid on one customer record if its site pays under ``app``."""
    customer = fetch(conn, customers, Customer, customer_id, lock=True)
    site = sites.site(conn, customer.site_id)
    serving = web_app_for_site(rt, site.code)
    if serving is None or serving.appid != app.appid:
        return False  # another official account: this openid means nothing there
    if customer.wechat_openid == openid:
        return True
    update_row(conn, customers, customer_id, {"wechat_openid": openid})
    audit.record(
        conn,
        at=now,
        actor=by,
        action="customer.wechat_linked",
        object_type="customer",
        object_id=customer_id,
        site_id=site.id,
        before={"wechat_openid": customer.wechat_openid},
        after={"wechat_openid": openid, "appid": app.appid},
        reason="WeChat web authorization (snsapi_base) from the owners' portal",
        source_ip=source_ip,
    )
    return True
