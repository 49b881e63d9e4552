"""The channels a message can go out on, and which of them this process has configured.

A channel is a port: ``send`` takes one claimed message and the time, talks to its
provider and says what came of it; it never raises for a provider's answer (an
unexpected exception is taken as worth a retry by the caller). Only in-app messages and
webhooks need no configuration; a channel that is missing or misconfigured is named in
``Channels.missing`` with the reason, and its messages are skipped with that reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import httpx

from meterpay.config import Settings
from meterpay.notify.model import ChannelName, Outgoing, SendResult
from meterpay.notify.sms import sms_from
from meterpay.notify.smtp import smtp_from
from meterpay.notify.webhooks import WebhookSender
from meterpay.notify.wechat import wechat_from


class Channel(Protocol):
    def send(self, outgoing: Outgoing, now: datetime) -> SendResult: ...


class InApp:
    """In-app messages are delivered by being stored; the portal reads them."""

    def send(self, outgoing: Outgoing, now: datetime) -> SendResult:
        return SendResult.sent(f"in-app:{outgoing.message.id}")


@dataclass
class Channels:
    senders: Mapping[ChannelName, Channel]
    missing: Mapping[ChannelName, str] = field(default_factory=dict)
    limits: Mapping[ChannelName, int] = field(default_factory=dict)
    """Sends per recipient per hour; a channel not named here has no limit."""
    client: httpx.Client | None = None

    def sender(self, name: ChannelName) -> Channel | str:
        """The channel, or why there is none."""
        found = self.senders.get(name)
        if found is not None:
            return found
        return self.missing.get(name) or f"the {name.value} channel is not configured"

    def close(self) -> None:
        if self.client is not None:
            self.client.close()


def channels_from(settings: Settings, *, transport: httpx.BaseTransport | None = None) -> Channels:
    """Build the configured channels; never raises for a bad setting, it reports it."""
    client = httpx.Client(
        timeout=settings.notify_http_timeout_s, transport=transport, follow_redirects=False
    )
    senders: dict[ChannelName, Channel] = {
        ChannelName.IN_APP: InApp(),
        ChannelName.WEBHOOK: WebhookSender(client),
    }
    missing: dict[ChannelName, str] = {}
    for name, built in (
        (ChannelName.SMS, sms_from(settings, client)),
        (ChannelName.EMAIL, smtp_from(settings)),
        (ChannelName.WECHAT, wechat_from(settings, client)),
    ):
        if isinstance(built, str):
            missing[name] = built
        else:
            senders[name] = built
    limits = {
        ChannelName.SMS: settings.notify_sms_per_hour,
        ChannelName.EMAIL: settings.notify_email_per_hour,
        ChannelName.WECHAT: settings.notify_wechat_per_hour,
    }
    return Channels(senders, missing, limits, client)
