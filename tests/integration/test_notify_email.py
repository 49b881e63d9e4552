"""Email over SMTP, against a real local SMTP server (aiosmtpd)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.header import decode_header, make_header
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from meterpay.notify import service as notify
from meterpay.notify.model import ChannelName, Language, Message, MessageState, Outcome, Topic
from meterpay.runtime import Runtime
from tests.integration.notify_builders import a_reachable_home, channels_for


@dataclass
class Mailbox:
    """An SMTP server's handler: takes mail, or answers as told."""

    received: list[Any] = field(default_factory=list)
    data_answers: list[str] = field(default_factory=list)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address.startswith("nobody@"):
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_answers:
            return self.data_answers.pop(0)
        self.received.append(envelope)
        return "250 Message accepted for delivery"


def _login(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"meter", b"pay")
    return AuthResult(success=ok, handled=False)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    mailbox, port = Mailbox(), _free_port()
    controller = Controller(
        mailbox,
        hostname="127.0.0.1",
        port=port,
        authenticator=_login,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()


def _deliver(rt: Runtime, port: int, *, password: str) -> None:
    channels = channels_for(
        rt,
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_starttls=False,
        smtp_user="meter",
        smtp_password=password,
        smtp_from="物业服务中心 <notice@wuye.example.com>",
    )
    try:
        notify.deliver_due(rt, channels)
    finally:
        channels.close()


def _email(rt: Runtime) -> Message:
    [found] = [m for m in notify.notifications(rt) if m.channel is ChannelName.EMAIL]
    return found


def _queue(rt: Runtime, address: str, language: Language = Language.ZH_CN) -> None:
    owner = a_reachable_home(rt, email=address, language=language)
    notify.queue(
        rt,
        site_id=owner.site_id,
        topic=Topic.ARREARS_NOTICE,
        dedupe_key="arrears:1",
        account_id=owner.account_id,
        params={"balance": "-3.20", "planned_cutoff_at": "2026-11-27T06:30:00+00:00"},
    )


def test_an_arrears_notice_arrives_by_email_in_chinese(
    rt: Runtime, smtp: tuple[Mailbox, int]
) -> None:
    mailbox, port = smtp
    _queue(rt, "wang@example.com")
    _deliver(rt, port, password="pay")
    sent = _email(rt)
    assert sent.state is MessageState.SENT
    [envelope] = mailbox.received
    assert envelope.rcpt_tos == ["wang@example.com"]
    mail = message_from_bytes(envelope.original_content)
    assert str(make_header(decode_header(mail["Subject"]))) == "欠费停电通知"
    text = mail.get_payload(decode=True).decode("utf-8")
    assert "2026年11月27日 14:30" in text and "-3.20 元" in text
    assert mail["Message-ID"] == sent.provider_id == f"<notification-{sent.id}@wuye.example.com>"


def test_a_refused_mailbox_fails_the_message(rt: Runtime, smtp: tuple[Mailbox, int]) -> None:
    _queue(rt, "nobody@example.com")
    _deliver(rt, smtp[1], password="pay")
    refused = _email(rt)
    assert refused.state is MessageState.FAILED and "recipient refused" in refused.last_error


def test_a_temporary_smtp_answer_is_tried_again(rt: Runtime, smtp: tuple[Mailbox, int]) -> None:
    mailbox, port = smtp
    mailbox.data_answers.append("451 4.3.0 try again later")
    _queue(rt, "wang@example.com", Language.EN)
    _deliver(rt, port, password="pay")
    waiting = _email(rt)
    assert waiting.state is MessageState.PENDING and "451" in waiting.last_error
    [log] = notify.deliveries(rt, waiting.id)
    assert log.outcome is Outcome.RETRY


def test_wrong_smtp_credentials_fail_the_message(rt: Runtime, smtp: tuple[Mailbox, int]) -> None:
    _queue(rt, "wang@example.com")
    _deliver(rt, smtp[1], password="wrong")
    refused = _email(rt)
    assert refused.state is MessageState.FAILED and "535" in refused.last_error
