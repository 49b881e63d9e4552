"""The notification outbox on SQLite and PostgreSQL: one message per reachable channel,
queued once, retried with backoff, held back by rate limits, resumed after a crash,
skipped with a reason when a channel is missing, never sent twice."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from datetime import timedelta

import pytest

from meterpay.notify import outbox
from meterpay.notify import service as notify
from meterpay.notify.channels import Channel, Channels, InApp
from meterpay.notify.model import (
    ChannelName,
    MessageState,
    Outcome,
    Outgoing,
    SendResult,
    Topic,
)
from meterpay.notify.rules import MAX_ATTEMPTS
from meterpay.runtime import Runtime
from meterpay.workers.notifications import run_notifications
from tests.integration.builders import a_home
from tests.integration.notify_builders import a_reachable_home, channels_for, clock_of
from tests.integration.notify_servers import serving, webhook_receiver

PHONE = "13800138000"


class Recording:
    """A channel that remembers what it was asked to send and answers as told."""

    def __init__(self, *answers: SendResult) -> None:
        self.answers = list(answers)
        self.sent: list[int] = []
        self._lock = threading.Lock()

    def send(self, outgoing: Outgoing, now: object) -> SendResult:
        with self._lock:
            self.sent.append(outgoing.message.id)
            answer = self.answers.pop(0) if self.answers else None
        return answer or SendResult.sent(f"fake-{outgoing.message.id}")


def _sms_only(channel: Channel, *, per_hour: int | None = None) -> Channels:
    limits = {ChannelName.SMS: per_hour} if per_hour else {}
    return Channels({ChannelName.IN_APP: InApp(), ChannelName.SMS: channel}, limits=limits)


def _event(
    rt: Runtime, account_id: int, site_id: int, key: str, topic: Topic = Topic.TOP_UP_RECEIPT
) -> int:
    return notify.queue(
        rt,
        site_id=site_id,
        topic=topic,
        dedupe_key=key,
        account_id=account_id,
        params={"amount": "100.00", "balance": "95.12"},
    )


def _sms(rt: Runtime) -> list[notify.Message]:
    return [m for m in notify.notifications(rt) if m.channel is ChannelName.SMS]


def test_an_event_reaches_every_channel_the_owner_and_the_site_have(rt: Runtime) -> None:
    owner = a_reachable_home(rt, phone=PHONE, email="wang@example.com", openid="o-wang")
    notify.create_webhook(rt, site_id=owner.site_id, url="http://127.0.0.1:9/hook")
    assert _event(rt, owner.account_id, owner.site_id, "topup:1") == 5
    found = {m.channel: m for m in notify.notifications(rt)}
    assert set(found) == set(ChannelName)
    assert found[ChannelName.IN_APP].state is MessageState.SENT  # stored is delivered
    assert found[ChannelName.SMS].state is MessageState.PENDING
    assert found[ChannelName.SMS].recipient == PHONE
    assert found[ChannelName.IN_APP].body.startswith("【测试小区】您的电费账户")


def test_queuing_the_same_event_again_queues_nothing(rt: Runtime) -> None:
    owner = a_reachable_home(rt, phone=PHONE)
    assert _event(rt, owner.account_id, owner.site_id, "topup:1") == 2
    assert _event(rt, owner.account_id, owner.site_id, "topup:1") == 0
    assert len(notify.notifications(rt)) == 2


def test_an_account_without_an_owner_reaches_only_the_sites_webhooks(rt: Runtime) -> None:
    home = a_home(rt)
    assert _event(rt, home.account.id, home.site.id, "topup:1") == 0
    notify.create_webhook(rt, site_id=home.site.id, url="http://127.0.0.1:9/hook")
    notify.create_webhook(
        rt, site_id=home.site.id, url="http://127.0.0.1:9/cuts", topics=[Topic.CUT_OFF]
    )
    assert _event(rt, home.account.id, home.site.id, "topup:2") == 1


def test_channels_that_are_not_configured_are_skipped_with_the_reason(rt: Runtime) -> None:
    owner = a_reachable_home(rt, phone=PHONE, email="wang@example.com", openid="o-wang")
    _event(rt, owner.account_id, owner.site_id, "topup:1")
    channels = channels_for(rt, sms_provider="aliyun")  # chosen, but no keys given
    assert notify.deliver_due(rt, channels) == 3
    found = {m.channel: m for m in notify.notifications(rt)}
    assert {m.state for c, m in found.items() if c is not ChannelName.IN_APP} == {
        MessageState.SKIPPED
    }
    assert "MP_ALIYUN_SMS_ACCESS_KEY_ID" in found[ChannelName.SMS].last_error
    assert "MP_SMTP_HOST is empty" in found[ChannelName.EMAIL].last_error
    assert "MP_WECHAT_APPID is empty" in found[ChannelName.WECHAT].last_error
    [log] = notify.deliveries(rt, found[ChannelName.SMS].id)
    assert log.outcome is Outcome.SKIPPED


def test_a_webhook_answering_503_is_tried_again_after_its_backoff(rt: Runtime) -> None:
    home = a_home(rt)
    statuses = [503]
    secret: list[str] = []
    with serving(webhook_receiver(lambda: secret[0], statuses)) as receiver:
        hook = notify.create_webhook(rt, site_id=home.site.id, url=receiver.url + "/hook")
        secret.append(hook.secret)
        _event(rt, home.account.id, home.site.id, "topup:1")
        channels = channels_for(rt)
        assert notify.deliver_due(rt, channels) == 1
        [waiting] = notify.notifications(rt)
        assert (waiting.state, waiting.attempts) == (MessageState.PENDING, 1)
        assert waiting.next_attempt_at == rt.clock.now() + timedelta(seconds=30)
        assert notify.deliver_due(rt, channels) == 0  # not before its backoff
        clock_of(rt).advance(timedelta(seconds=30))
        assert notify.deliver_due(rt, channels) == 1
        channels.close()
    [done] = notify.notifications(rt)
    assert (done.state, done.attempts, done.provider_id) == (MessageState.SENT, 2, "http 200")
    log = notify.deliveries(rt, done.id)
    assert [(d.attempt, d.outcome) for d in log] == [(1, Outcome.RETRY), (2, Outcome.SENT)]
    assert "http 503" in log[0].error


def test_a_message_that_keeps_failing_fails_after_its_last_try(rt: Runtime) -> None:
    owner = a_reachable_home(rt, phone=PHONE)
    _event(rt, owner.account_id, owner.site_id, "topup:1")
    channel = Recording(*[SendResult.retry("busy")] * MAX_ATTEMPTS)
    for _ in range(MAX_ATTEMPTS):
        assert notify.deliver_due(rt, _sms_only(channel)) == 1
        clock_of(rt).advance(timedelta(hours=1))
    [message] = _sms(rt)
    assert (message.state, message.attempts) == (MessageState.FAILED, MAX_ATTEMPTS)
    assert notify.deliver_due(rt, _sms_only(channel)) == 0


def test_a_refusal_fails_the_message_at_once(rt: Runtime) -> None:
    owner = a_reachable_home(rt, phone=PHONE)
    _event(rt, owner.account_id, owner.site_id, "topup:1")
    notify.deliver_due(rt, _sms_only(Recording(SendResult.failed("isv.MOBILE_NUMBER_ILLEGAL"))))
    [message] = _sms(rt)
    assert (message.state, message.last_error) == (MessageState.FAILED, "isv.MOBILE_NUMBER_ILLEGAL")


def test_a_message_claimed_by_a_process_that_died_is_sent_after_its_lease(rt: Runtime) -> None:
    owner = a_reachable_home(rt, phone=PHONE)
    _event(rt, owner.account_id, owner.site_id, "topup:1")
    channel = Recording()
    [lost] = outbox.claim(rt, _sms_only(channel))  # the process dies before it sends
    assert notify.deliver_due(rt, _sms_only(channel)) == 0
    clock_of(rt).advance(timedelta(seconds=30))
    assert notify.deliver_due(rt, _sms_only(channel)) == 1
    [message] = _sms(rt)
    assert (message.state, message.attempts, channel.sent) == (
        MessageState.SENT,
        2,
        [lost.message.id],
    )


def test_a_late_answer_to_a_lapsed_claim_changes_only_the_log(rt: Runtime) -> None:
    owner = a_reachable_home(rt, phone=PHONE)
    _event(rt, owner.account_id, owner.site_id, "topup:1")
    [slow] = outbox.claim(rt, _sms_only(Recording()))
    clock_of(rt).advance(timedelta(seconds=30))
    notify.deliver_due(rt, _sms_only(Recording(SendResult.failed("refused"))))
    outbox.record(rt, slow.message, SendResult.sent("late"))
    [message] = _sms(rt)
    assert (message.state, message.last_error) == (MessageState.FAILED, "refused")
    assert [d.outcome for d in notify.deliveries(rt, message.id)] == [
        Outcome.FAILED,
        Outcome.SENT,
    ]


def test_sms_over_the_hourly_limit_wait_and_are_never_dropped(rt: Runtime) -> None:
    owner = a_reachable_home(rt, phone=PHONE)
    start = rt.clock.now()
    for n in range(3):
        _event(rt, owner.account_id, owner.site_id, f"topup:{n}")
        clock_of(rt).advance(timedelta(minutes=1))
    channel = Recording()
    assert notify.deliver_due(rt, _sms_only(channel, per_hour=2)) == 2
    held = next(m for m in _sms(rt) if m.state is MessageState.PENDING)
    first_sent = start + timedelta(minutes=3)
    assert held.next_attempt_at == first_sent + timedelta(hours=1)
    assert [d.outcome for d in notify.deliveries(rt, held.id)] == [Outcome.DELAYED]
    clock_of(rt).advance(timedelta(minutes=59))
    assert notify.deliver_due(rt, _sms_only(channel, per_hour=2)) == 0
    clock_of(rt).advance(timedelta(minutes=1))
    assert notify.deliver_due(rt, _sms_only(channel, per_hour=2)) == 1
    assert {m.state for m in _sms(rt)} == {MessageState.SENT}
    assert len(channel.sent) == 3


def test_an_overtaken_low_balance_warning_is_skipped_but_a_notice_waits(rt: Runtime) -> None:
    owner = a_reachable_home(rt, phone=PHONE)
    channel = Recording()
    _event(rt, owner.account_id, owner.site_id, "w1:a", Topic.WARNING1)
    notify.deliver_due(rt, _sms_only(channel, per_hour=1))
    _event(rt, owner.account_id, owner.site_id, "w1:b", Topic.WARNING1)
    _event(rt, owner.account_id, owner.site_id, "arrears:1", Topic.ARREARS_NOTICE)
    notify.deliver_due(rt, _sms_only(channel, per_hour=1))
    states = {m.dedupe_key: m.state for m in _sms(rt)}
    assert states == {
        "w1:a": MessageState.SENT,
        "w1:b": MessageState.SKIPPED,  # the arrears notice overtook it
        "arrears:1": MessageState.PENDING,  # waits for the limit, never skipped
    }


def test_a_provider_that_raises_costs_one_try_not_the_loop(rt: Runtime) -> None:
    owner = a_reachable_home(rt, phone=PHONE)
    _event(rt, owner.account_id, owner.site_id, "topup:1")

    class Exploding:
        def send(self, outgoing: Outgoing, now: object) -> SendResult:
            raise ConnectionResetError("peer reset")

    assert notify.deliver_due(rt, _sms_only(Exploding())) == 1
    [message] = _sms(rt)
    assert (message.state, message.last_error) == (
        MessageState.PENDING,
        "ConnectionResetError: peer reset",
    )


def test_the_worker_delivers_and_outlives_an_error(rt: Runtime) -> None:
    owner = a_reachable_home(rt, phone=PHONE)
    _event(rt, owner.account_id, owner.site_id, "topup:1")
    channel = Recording()

    class BreaksOnce(dict[ChannelName, int]):
        """Rate limits whose first reading fails, as a dropped database connection would."""

        broken = True

        def get(self, key: ChannelName, default: object = None) -> object:  # type: ignore[override]
            if self.broken:
                self.broken = False
                raise RuntimeError("database went away")
            return super().get(key, default)

    channels = Channels({ChannelName.SMS: channel}, limits=BreaksOnce())

    async def scenario() -> None:
        stop = asyncio.Event()
        worker = asyncio.create_task(run_notifications(rt, channels, stop, every_s=0.01))
        for _ in range(500):
            if channel.sent:
                break
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.wait_for(worker, 5)

    asyncio.run(scenario())
    assert len(channel.sent) == 1
    assert _sms(rt)[0].state is MessageState.SENT


@pytest.mark.postgres
def test_two_deliverers_on_postgresql_never_send_one_message_twice(pg_rt: Runtime) -> None:
    rt = pg_rt
    owner = a_reachable_home(rt, phone=PHONE)
    for n in range(60):
        _event(rt, owner.account_id, owner.site_id, f"topup:{n}")
    channel = Recording()
    channels = _sms_only(channel)
    start = threading.Barrier(2)

    def deliverer() -> None:
        start.wait()
        while notify.deliver_due(rt, channels, limit=4):
            pass

    threads = [threading.Thread(target=deliverer) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(Counter(channel.sent).values()) == [1] * 60
    assert {m.state for m in _sms(rt)} == {MessageState.SENT}
