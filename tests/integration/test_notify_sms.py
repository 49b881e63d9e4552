"""SMS through Aliyun and Tencent Cloud, against local fakes that check the request
signature as the providers do and refuse a bad one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import unquote_plus

import pytest

from meterpay.notify import service as notify
from meterpay.notify.model import ChannelName, Message, MessageState, Topic
from meterpay.runtime import Runtime
from tests.integration.notify_builders import Reachable, a_reachable_home, channels_for
from tests.integration.notify_servers import FakeServer, aliyun_sms, serving, tencent_sms

PHONE = "13800138000"
ALIYUN_SECRET = "aliyun-test-secret"
TENCENT_ID, TENCENT_KEY = "AKIDtest0001", "tencent-test-key"


@pytest.fixture
def owner(rt: Runtime) -> Reachable:
    return a_reachable_home(rt, phone=PHONE)


def _top_up(rt: Runtime, owner: Reachable, key: str = "topup:1") -> None:
    notify.queue(
        rt,
        site_id=owner.site_id,
        topic=Topic.TOP_UP_RECEIPT,
        dedupe_key=key,
        account_id=owner.account_id,
        params={"amount": "100.00", "balance": "95.12"},
    )


def _sms(rt: Runtime) -> Message:
    [found] = [m for m in notify.notifications(rt) if m.channel is ChannelName.SMS]
    return found


def _deliver(rt: Runtime, **settings: object) -> None:
    channels = channels_for(rt, **settings)
    try:
        notify.deliver_due(rt, channels)
    finally:
        channels.close()


@pytest.fixture
def aliyun(rt: Runtime) -> Iterator[FakeServer]:
    with serving(aliyun_sms(ALIYUN_SECRET, now=rt.clock.now())) as server:
        yield server


def _aliyun_settings(server: FakeServer, secret: str = ALIYUN_SECRET) -> dict[str, object]:
    return {
        "sms_provider": "aliyun",
        "aliyun_sms_access_key_id": "LTAItest",
        "aliyun_sms_access_key_secret": secret,
        "aliyun_sms_sign_name": "幸福物业",
        "aliyun_sms_templates": {"top_up_receipt": "SMS_900001"},
        "aliyun_sms_endpoint": server.url + "/",
    }


def test_aliyun_takes_a_correctly_signed_send_sms(
    rt: Runtime, owner: Reachable, aliyun: FakeServer
) -> None:
    _top_up(rt, owner)
    _deliver(rt, **_aliyun_settings(aliyun))
    sent = _sms(rt)
    assert (sent.state, sent.provider_id) == (MessageState.SENT, "biz-1")
    [request] = aliyun.seen
    form = dict(p.split("=", 1) for p in request.body.decode().split("&"))
    assert form["PhoneNumbers"] == PHONE and form["TemplateCode"] == "SMS_900001"
    assert json.loads(unquote_plus(form["TemplateParam"])) == {
        "account": owner.home.account.number,
        "amount": "100.00",
        "balance": "95.12",
    }


def test_aliyun_refuses_a_send_signed_with_the_wrong_secret(
    rt: Runtime, owner: Reachable, aliyun: FakeServer
) -> None:
    _top_up(rt, owner)
    _deliver(rt, **_aliyun_settings(aliyun, secret="not-the-secret"))
    refused = _sms(rt)
    assert refused.state is MessageState.FAILED
    assert "SignatureDoesNotMatch" in refused.last_error


def test_a_topic_without_an_sms_template_is_skipped_with_the_reason(
    rt: Runtime, owner: Reachable, aliyun: FakeServer
) -> None:
    notify.queue(
        rt,
        site_id=owner.site_id,
        topic=Topic.CUT_OFF,
        dedupe_key="cut:1",
        account_id=owner.account_id,
    )
    _deliver(rt, **_aliyun_settings(aliyun))
    skipped = _sms(rt)
    assert skipped.state is MessageState.SKIPPED
    assert skipped.last_error == "MP_ALIYUN_SMS_TEMPLATES has no template for cut_off"
    assert aliyun.seen == []


@pytest.fixture
def tencent() -> Iterator[FakeServer]:
    with serving(tencent_sms(TENCENT_ID, TENCENT_KEY)) as server:
        yield server


def _tencent_settings(server: FakeServer, key: str = TENCENT_KEY) -> dict[str, object]:
    return {
        "sms_provider": "tencent",
        "tencent_sms_secret_id": TENCENT_ID,
        "tencent_sms_secret_key": key,
        "tencent_sms_sdk_app_id": "1400000001",
        "tencent_sms_sign_name": "幸福物业",
        "tencent_sms_templates": {"top_up_receipt": "100001"},
        "tencent_sms_endpoint": server.url + "/",
    }


def test_tencent_takes_a_correctly_signed_send_sms(
    rt: Runtime, owner: Reachable, tencent: FakeServer
) -> None:
    _top_up(rt, owner)
    _deliver(rt, **_tencent_settings(tencent))
    sent = _sms(rt)
    assert (sent.state, sent.provider_id) == (MessageState.SENT, "2028:0001")
    [request] = tencent.seen
    body = json.loads(request.body)
    assert body["PhoneNumberSet"] == ["+86" + PHONE]
    assert body["TemplateParamSet"] == [owner.home.account.number, "100.00", "95.12"]
    assert request.headers["x-tc-timestamp"] == str(int(rt.clock.now().timestamp()))


def test_tencent_refuses_a_send_signed_with_the_wrong_key(
    rt: Runtime, owner: Reachable, tencent: FakeServer
) -> None:
    _top_up(rt, owner)
    _deliver(rt, **_tencent_settings(tencent, key="not-the-key"))
    refused = _sms(rt)
    assert refused.state is MessageState.FAILED
    assert "AuthFailure.SignatureFailure" in refused.last_error
