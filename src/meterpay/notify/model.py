"""What a notification is: a topic, a channel, a recipient, a rendered text, and where it
stands in its delivery.

One event (a low balance, a cut-off, a top-up) becomes one message per channel the
recipient can be reached on. Messages live through::

    pending -> sending -> sent
       ^          |---> failed     (refused for good, or out of tries)
       +----------+                (a failed try: back off, try again)
    pending|sending -> skipped      (channel not configured, superseded, nothing to send with)

Invariants:
- every move is in ``TRANSITIONS``; anything else raises ``IllegalMessageMove``;
- sent, failed and skipped are final;
- a message is never dropped by a rate limit: it waits (``delayed``), unless it is a
  low-balance warning that a newer message to the same person has overtaken.

Pure: no database, no network.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from meterpay.kernel.errors import Conflict


class Topic(StrEnum):
    WARNING1 = "warning1"
    """低余额提醒: the balance fell below the first warning level."""
    WARNING2 = "warning2"
    """余额不足: the balance fell below the second warning level."""
    ARREARS_NOTICE = "arrears_notice"
    """欠费停供通知, with the planned cut-off time."""
    FINAL_NOTICE = "final_notice"
    """The last word, 30 minutes before the cut-off."""
    CUT_OFF = "cut_off"
    """已停电 / 已停水."""
    RESTORED = "restored"
    """已恢复供电 / 供水."""
    TOP_UP_RECEIPT = "top_up_receipt"
    """充值到账."""
    TICKET_UPDATE = "ticket_update"
    """报修进度: the owner's repair request moved (assigned, in progress, done, cancelled)."""
    SIGN_IN_CODE = "sign_in_code"
    """An owner's six-digit sign-in code: sent by SMS at once, never kept in the outbox."""


class ChannelName(StrEnum):
    IN_APP = "in_app"
    SMS = "sms"
    EMAIL = "email"
    WECHAT = "wechat"
    WEBHOOK = "webhook"


class Language(StrEnum):
    ZH_CN = "zh-CN"
    EN = "en"

    @classmethod
    def of(cls, value: str | None) -> Language:
        """A customer's language; anything we have no templates for reads Chinese."""
        if value and value.lower().startswith("en"):
            return cls.EN
        return cls.ZH_CN


class MessageState(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"


class Outcome(StrEnum):
    """What one attempt came to; every attempt is written to the delivery log."""

    SENT = "sent"
    RETRY = "retry"
    """A failure worth another try (timeout, 5xx, throttled)."""
    FAILED = "failed"
    """Refused for good (bad number, bad credentials, 4xx)."""
    SKIPPED = "skipped"
    """Not attempted: the channel is not configured, or the message was overtaken."""
    DELAYED = "delayed"
    """Not attempted yet: the recipient's rate limit is reached."""


FINAL: Final = frozenset({MessageState.SENT, MessageState.FAILED, MessageState.SKIPPED})

TRANSITIONS: Final[dict[tuple[MessageState, Outcome | None], MessageState]] = {
    (MessageState.PENDING, None): MessageState.SENDING,  # claimed
    (MessageState.SENDING, None): MessageState.SENDING,  # claimed again: the claimant died
    (MessageState.PENDING, Outcome.DELAYED): MessageState.PENDING,
    (MessageState.PENDING, Outcome.SKIPPED): MessageState.SKIPPED,
    (MessageState.SENDING, Outcome.SENT): MessageState.SENT,
    (MessageState.SENDING, Outcome.RETRY): MessageState.PENDING,
    (MessageState.SENDING, Outcome.FAILED): MessageState.FAILED,
    (MessageState.SENDING, Outcome.SKIPPED): MessageState.SKIPPED,
    (MessageState.SENDING, Outcome.DELAYED): MessageState.PENDING,
    (MessageState.PENDING, Outcome.FAILED): MessageState.FAILED,
}


class IllegalMessageMove(Conflict):
    """A message was asked to move in a way its lifecycle does not allow."""

    code = "illegal_message_move"


def move(state: MessageState, outcome: Outcome | None) -> MessageState:
    """The state after ``outcome`` (None: claimed for an attempt)."""
    found = TRANSITIONS.get((state, outcome))
    if found is None:
        raise IllegalMessageMove(
            f"a {state.value} message cannot take '{outcome or 'claim'}'",
            state=state.value,
            outcome=str(outcome),
        )
    return found


@dataclass(frozen=True, slots=True)
class Message:
    id: int
    site_id: int
    account_id: int | None
    customer_id: int | None
    endpoint_id: int | None
    topic: Topic
    channel: ChannelName
    recipient: str
    language: Language
    dedupe_key: str
    params: dict[str, Any]
    variables: dict[str, Any]
    title: str
    body: str
    state: MessageState
    attempts: int
    next_attempt_at: datetime
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None
    read_at: datetime | None
    provider_id: str
    last_error: str


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A claimed message on its way to a channel; a webhook's carries its signing secret."""

    message: Message
    secret: str = ""


@dataclass(frozen=True, slots=True)
class SendResult:
    outcome: Outcome
    provider_id: str = ""
    error: str = ""

    @classmethod
    def sent(cls, provider_id: str) -> SendResult:
        return cls(Outcome.SENT, provider_id=provider_id[:200])

    @classmethod
    def retry(cls, error: str) -> SendResult:
        return cls(Outcome.RETRY, error=error[:500])

    @classmethod
    def failed(cls, error: str) -> SendResult:
        return cls(Outcome.FAILED, error=error[:500])

    @classmethod
    def skipped(cls, reason: str) -> SendResult:
        return cls(Outcome.SKIPPED, error=reason[:500])


@dataclass(frozen=True, slots=True)
class Delivery:
    """One line of the delivery log: one attempt (or one decision not to attempt)."""

    id: int
    message_id: int
    attempt: int
    channel: ChannelName
    recipient: str
    at: datetime
    outcome: Outcome
    provider_id: str
    error: str


@dataclass(frozen=True, slots=True)
class WebhookEndpoint:
    id: int
    site_id: int
    url: str
    secret: str
    description: str
    topics: list[str]
    enabled: bool
    created_at: datetime

    def wants(self, topic: Topic) -> bool:
        """An endpoint with no topics listed takes them all."""
        return not self.topics or topic.value in self.topics
