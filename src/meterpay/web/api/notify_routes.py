"""Notifications under /api/v1: the owners' in-app inbox, the staff's view of the outbox
and its delivery log, integrators' webhook endpoints.

Parse, call one service, render.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import Field

from meterpay.auth.model import Permission as P
from meterpay.notify import service as notify
from meterpay.notify.model import ChannelName, Language, MessageState, Outcome, Topic
from meterpay.web.api import schemas as s
from meterpay.web.api.deps import Rt
from meterpay.web.guard import allow

router = APIRouter(tags=["notifications"])
Limit = Annotated[int, Query(ge=1, le=500)]


class InboxItemOut(s.Out):
    id: int
    topic: Topic
    title: str
    body: str
    created_at: datetime
    read_at: datetime | None
    read: bool


class NotificationOut(s.Out):
    id: int
    site_id: int
    account_id: int | None
    customer_id: int | None
    topic: Topic
    channel: ChannelName
    recipient: str
    language: Language
    title: str
    body: str
    state: MessageState
    attempts: int
    next_attempt_at: datetime
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None
    provider_id: str
    last_error: str


class DeliveryOut(s.Out):
    id: int
    attempt: int
    channel: ChannelName
    recipient: str
    at: datetime
    outcome: Outcome
    provider_id: str
    error: str


class WebhookIn(s.In):
    url: Annotated[str, Field(min_length=8, max_length=500, pattern=r"^https?://")]
    description: Annotated[str, Field(max_length=200)] = ""
    topics: list[Topic] = Field(default_factory=list, description="empty: every topic")


class WebhookOut(s.Out):
    id: int
    site_id: int
    url: str
    description: str
    topics: list[str]
    enabled: bool
    created_at: datetime


class WebhookCreatedOut(WebhookOut):
    secret: str = Field(description="signs every delivery; shown only in this answer")


class LanguageIn(s.In):
    language: Language


def _inbox_item(message: Any) -> InboxItemOut:
    return InboxItemOut.model_validate(
        {**_fields(message, InboxItemOut), "read": message.read_at is not None}
    )


def _fields(obj: Any, out: type[s.Out]) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in out.model_fields if hasattr(obj, name)}


@router.get(
    "/accounts/{account_id}/messages",
    dependencies=[allow(P.SITE_READ, owners=True)],
    response_model=list[InboxItemOut],
)
def account_messages(account_id: int, rt: Rt, limit: Limit = 50) -> Any:
    """The account's in-app messages (the owners' portal), newest first."""
    return [_inbox_item(m) for m in notify.inbox(rt, account_id=account_id, limit=limit)]


@router.post(
    "/accounts/{account_id}/messages/{message_id}/read",
    dependencies=[allow(P.SITE_READ, owners=True)],
    response_model=InboxItemOut,
)
def read_message(account_id: int, message_id: int, rt: Rt) -> Any:
    return _inbox_item(notify.mark_read(rt, account_id=account_id, message_id=message_id))


@router.get(
    "/notifications", dependencies=[allow(P.SITE_READ)], response_model=s.Page[NotificationOut]
)
def list_notifications(
    rt: Rt,
    account_id: int | None = None,
    state: MessageState | None = None,
    after_id: int | None = None,
    limit: Limit = 100,
) -> Any:
    """The outbox, every channel, with where each message stands."""
    found = notify.notifications(
        rt, account_id=account_id, state=state, after_id=after_id, limit=limit
    )
    return {
        "items": [NotificationOut.model_validate(m) for m in found],
        "next_after_id": found[-1].id if len(found) == limit else None,
    }


@router.get(
    "/notifications/{message_id}/deliveries",
    dependencies=[allow(P.SITE_READ)],
    response_model=list[DeliveryOut],
)
def notification_deliveries(message_id: int, rt: Rt) -> Any:
    """Every attempt at one message: when, outcome, the provider's id or the error."""
    return notify.deliveries(rt, message_id)


@router.post(
    "/sites/{site_id}/webhooks",
    dependencies=[allow(P.NOTIFY_WRITE)],
    status_code=201,
    response_model=WebhookCreatedOut,
)
def create_webhook(site_id: int, body: WebhookIn, rt: Rt) -> Any:
    """A new endpoint; the answer carries its signing secret, this once."""
    return notify.create_webhook(rt, site_id=site_id, **body.model_dump())


@router.get(
    "/sites/{site_id}/webhooks",
    dependencies=[allow(P.NOTIFY_WRITE)],
    response_model=list[WebhookOut],
)
def list_webhooks(site_id: int, rt: Rt) -> Any:
    return notify.webhooks(rt, site_id=site_id)


@router.put(
    "/customers/{customer_id}/language",
    dependencies=[allow(P.SITE_WRITE, owners=True)],
    status_code=204,
)
def set_language(customer_id: int, body: LanguageIn, rt: Rt) -> None:
    """The language (zh-CN or en) the customer's notifications are written in."""
    notify.set_language(rt, customer_id=customer_id, language=body.language)
