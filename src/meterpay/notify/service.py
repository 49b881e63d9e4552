"""Notification use cases: deliver what is due, the owners' inbox, the staff's view of
the outbox and its delivery log, integrators' webhook endpoints.

``deliver_due`` talks to providers only between transactions: the claim commits first,
each outcome is recorded in a transaction of its own.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from meterpay.kernel.errors import InvalidInput, NotFound
from meterpay.notify import outbox
from meterpay.notify import repository as repo
from meterpay.notify.channels import Channels
from meterpay.notify.model import (
    ChannelName,
    Delivery,
    Language,
    Message,
    MessageState,
    Outgoing,
    SendResult,
    Topic,
    WebhookEndpoint,
)
from meterpay.runtime import Runtime

log = logging.getLogger(__name__)


def deliver_due(rt: Runtime, channels: Channels, *, limit: int = 100) -> int:
    """Claim the messages due now, send each on its channel, record every outcome.
    Returns how many were attempted (skipped ones included); never raises for a
    provider's failure."""
    claimed = outbox.claim(rt, channels, limit=limit)
    for outgoing in claimed:
        result = _send(channels, outgoing, rt)
        outbox.record(rt, outgoing.message, result)
    return len(claimed)


def _send(channels: Channels, outgoing: Outgoing, rt: Runtime) -> SendResult:
    message = outgoing.message
    try:
        sender = channels.sender(message.channel)
        if isinstance(sender, str):
            return SendResult.skipped(sender)
        return sender.send(outgoing, rt.clock.now())
    except Exception as exc:  # a provider's surprise is one failed try, not a dead loop
        log.warning("notification %s via %s: %r", message.id, message.channel, exc)
        return SendResult.retry(f"{type(exc).__name__}: {exc}")


# --- the owners' inbox ---------------------------------------------------------------


def inbox(rt: Runtime, *, account_id: int, limit: int = 50) -> list[Message]:
    """The account's in-app messages, newest first; ``read_at`` tells read from unread."""
    with rt.db.read() as conn:
        repo.account(conn, account_id)
        return repo.inbox(conn, account_id, limit)


def mark_read(rt: Runtime, *, account_id: int, message_id: int) -> Message:
    """Mark one of the account's in-app messages read (again: no change)."""
    with rt.db.write() as conn:
        message = repo.message(conn, message_id)
        if message.account_id != account_id or message.channel is not ChannelName.IN_APP:
            raise NotFound(f"account {account_id} has no message {message_id}", id=message_id)
        if message.read_at is None:
            repo.save(conn, message, {"read_at": rt.clock.now()})
        return repo.message(conn, message_id)


# --- the staff's view ------------------------------------------------------------------


def notifications(
    rt: Runtime,
    *,
    account_id: int | None = None,
    state: MessageState | None = None,
    after_id: int | None = None,
    limit: int = 100,
) -> list[Message]:
    with rt.db.read() as conn:
        return repo.page(conn, account_id=account_id, state=state, after_id=after_id, limit=limit)


def get(rt: Runtime, message_id: int) -> Message:
    with rt.db.read() as conn:
        return repo.message(conn, message_id)


def deliveries(rt: Runtime, message_id: int) -> list[Delivery]:
    """Every attempt at one message, oldest first."""
    with rt.db.read() as conn:
        repo.message(conn, message_id)
        return repo.deliveries(conn, message_id)


def queue(
    rt: Runtime,
    *,
    site_id: int,
    topic: Topic,
    dedupe_key: str,
    account_id: int | None = None,
    customer_id: int | None = None,
    params: dict[str, str] | None = None,
) -> int:
    """``outbox.queue_in`` in a transaction of its own (a manual notice, a test)."""
    with rt.db.write() as conn:
        return outbox.queue_in(
            conn,
            site_id=site_id,
            topic=topic,
            dedupe_key=dedupe_key,
            now=rt.clock.now(),
            account_id=account_id,
            customer_id=customer_id,
            params=params,
        )


def set_language(rt: Runtime, *, customer_id: int, language: Language) -> None:
    """Which language the customer's notifications are written in from now on."""
    with rt.db.write() as conn:
        repo.set_language(conn, customer_id, Language(language).value)


# --- webhook endpoints ---------------------------------------------------------------


def create_webhook(
    rt: Runtime,
    *,
    site_id: int,
    url: str,
    description: str = "",
    topics: Sequence[Topic] = (),
) -> WebhookEndpoint:
    """A new endpoint with a fresh secret; the secret is shown to the caller only now."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidInput("a webhook URL must be http:// or https:// with a host", url=url)
    values: dict[str, Any] = {
        "site_id": site_id,
        "url": url,
        "secret": "whsec_" + secrets.token_urlsafe(32),
        "description": description,
        "topics": sorted({Topic(t).value for t in topics}),
        "enabled": True,
        "created_at": rt.clock.now(),
    }
    with rt.db.write() as conn:
        repo.site(conn, site_id)
        return repo.insert_endpoint(conn, values)


def webhooks(rt: Runtime, *, site_id: int) -> list[WebhookEndpoint]:
    with rt.db.read() as conn:
        repo.site(conn, site_id)
        return repo.endpoints(conn, site_id, enabled_only=False)
