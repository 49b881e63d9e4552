"""WeChat template messages against a fake official-account API that checks the token,
and webhooks against an integrator's receiver that checks our signature."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from meterpay.notify import service as notify
from meterpay.notify.model import ChannelName, Message, MessageState, Topic
from meterpay.notify.signing import verify_webhook
from meterpay.runtime import Runtime
from tests.integration.builders import a_home
from tests.integration.notify_builders import a_reachable_home, channels_for
from tests.integration.notify_servers import (
    FakeServer,
    WeChatBook,
    serving,
    webhook_receiver,
    wechat,
)

APPID, APPSECRET = "wx0123456789abcdef", "wechat-app-secret"


@pytest.fixture
def book() -> WeChatBook:
    return WeChatBook(APPID, APPSECRET)


@pytest.fixture
def weixin(book: WeChatBook) -> Iterator[FakeServer]:
    with serving(wechat(book)) as server:
        yield server


def _cut_off(rt: Runtime, key: str) -> None:
    owner = a_reachable_home(rt, openid="oWANG-fang")
    notify.queue(
        rt,
        site_id=owner.site_id,
        topic=Topic.CUT_OFF,
        dedupe_key=key,
        account_id=owner.account_id,
        params={"balance": "-3.20"},
    )


def _deliver_wechat(rt: Runtime, server: FakeServer, secret: str = APPSECRET) -> Message:
    channels = channels_for(
        rt,
        wechat_appid=APPID,
        wechat_secret=secret,
        wechat_api_base=server.url,
        wechat_templates={"cut_off": "TPL-CUT"},
    )
    try:
        notify.deliver_due(rt, channels)
    finally:
        channels.close()
    [found] = [m for m in notify.notifications(rt) if m.channel is ChannelName.WECHAT]
    return found


def test_a_cut_off_reaches_the_owner_on_wechat_with_a_fresh_token(
    rt: Runtime, book: WeChatBook, weixin: FakeServer
) -> None:
    _cut_off(rt, "cut:1")
    sent = _deliver_wechat(rt, weixin)
    assert (sent.state, sent.provider_id) == (MessageState.SENT, "200228001")
    [message] = book.sent
    assert (message["touser"], message["template_id"]) == ("oWANG-fang", "TPL-CUT")
    assert message["data"]["first"] == {"value": "已停电"}
    assert message["data"]["keyword2"] == {"value": "-¥3.20"}


def test_an_expired_token_is_fetched_again_once(
    rt: Runtime, book: WeChatBook, weixin: FakeServer
) -> None:
    book.tokens.append("token-stale")
    book.revoked.add("token-stale")
    _cut_off(rt, "cut:1")
    assert _deliver_wechat(rt, weixin).state is MessageState.SENT
    assert book.tokens == ["token-stale", "token-2"]


def test_a_wrong_app_secret_fails_the_message_with_wechats_reason(
    rt: Runtime, book: WeChatBook, weixin: FakeServer
) -> None:
    _cut_off(rt, "cut:1")
    refused = _deliver_wechat(rt, weixin, secret="wrong")
    assert refused.state is MessageState.FAILED
    assert refused.last_error == "wechat 40125: invalid appsecret"
    assert book.sent == []


def test_a_webhook_delivery_carries_a_signature_the_integrator_can_verify(rt: Runtime) -> None:
    home = a_home(rt)
    secret: list[str] = []
    with serving(webhook_receiver(lambda: secret[0], [])) as receiver:
        hook = notify.create_webhook(rt, site_id=home.site.id, url=receiver.url + "/meterpay")
        secret.append(hook.secret)
        notify.queue(
            rt,
            site_id=home.site.id,
            topic=Topic.RESTORED,
            dedupe_key="restore:1",
            account_id=home.account.id,
            params={"balance": "12.34"},
        )
        channels = channels_for(rt)
        notify.deliver_due(rt, channels)
        channels.close()
    [message] = notify.notifications(rt)
    assert message.state is MessageState.SENT
    [request] = receiver.seen
    assert request.headers["x-meterpay-event"] == "restored"
    assert request.headers["x-meterpay-delivery"] == str(message.id)
    assert verify_webhook(
        hook.secret,
        timestamp=request.headers["x-meterpay-timestamp"],
        body=request.body,
        signature=request.headers["x-meterpay-signature"],
        now=rt.clock.now(),
    )


def test_a_receiver_that_refuses_our_signature_fails_the_message(rt: Runtime) -> None:
    home = a_home(rt)
    with serving(webhook_receiver(lambda: "whsec_someone-else", [])) as receiver:
        notify.create_webhook(rt, site_id=home.site.id, url=receiver.url + "/meterpay")
        notify.queue(
            rt,
            site_id=home.site.id,
            topic=Topic.RESTORED,
            dedupe_key="restore:1",
            account_id=home.account.id,
        )
        channels = channels_for(rt)
        notify.deliver_due(rt, channels)
        channels.close()
    [message] = notify.notifications(rt)
    assert message.state is MessageState.FAILED
    assert message.last_error.startswith("http 401")
