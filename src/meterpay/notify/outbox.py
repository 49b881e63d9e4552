"""The notification outbox: queue the messages of an event with the decision, claim them
after the commit, record what each channel made of them.

Invariants:
- an event is queued at most once per ``dedupe_key``: queuing again returns 0;
- in-app messages are delivered by being stored: they are written ``sent``;
- a deliverer claims a due message by moving it to ``sending`` (attempt counted, a lease
  until its next try) in its own transaction before it talks to a provider; on
  PostgreSQL claims skip rows another process holds, so two processes never send one
  message at once;
- a ``sending`` message whose lease runs out (its deliverer died) is claimed again; an
  answer that comes back after that changes nothing but the delivery log;
- a recipient over its channel's rate limit waits until the limit allows; only a
  low-balance warning overtaken by a newer message is skipped instead;
- every attempt, and every decision not to attempt, is written to the delivery log.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection

from meterpay.notify import repository as repo
from meterpay.notify.channels import Channels
from meterpay.notify.model import (
    ChannelName,
    Language,
    Message,
    MessageState,
    Outcome,
    Outgoing,
    SendResult,
    Topic,
    move,
)
from meterpay.notify.rules import (
    RATE_WINDOW,
    next_allowed,
    out_of_tries,
    retry_after,
    superseded,
)
from meterpay.notify.templates import Rendered, render
from meterpay.runtime import Runtime


def queue_in(
    conn: Connection,
    *,
    site_id: int,
    topic: Topic,
    dedupe_key: str,
    now: datetime,
    account_id: int | None = None,
    customer_id: int | None = None,
    params: Mapping[str, str] | None = None,
) -> int:
    """Queue the messages of one event inside the caller's transaction (the decision's);
    one message per channel the recipient can be reached on (in-app always when there is
    a customer; SMS if a phone; email if an email; WeChat if wechat_openid; each enabled
    webhook endpoint of the site). Returns how many were queued; 0 when dedupe_key was
    already queued."""
    if repo.dedupe_key_used(conn, dedupe_key):
        return 0
    site = repo.site(conn, site_id)
    merged: dict[str, str] = {"site_name": site.name}
    if account_id is not None:
        account = repo.account(conn, account_id)
        merged |= {"account_number": account.number, "utility": account.utility}
        customer_id = account.customer_id if customer_id is None else customer_id
    merged |= {k: str(v) for k, v in (params or {}).items() if v is not None}
    contacts = repo.customer(conn, customer_id) if customer_id is not None else None
    language = Language.of(contacts.language if contacts is not None else None)
    rendered = render(Topic(topic), language, merged, ZoneInfo(site.timezone), now)
    base = {
        "site_id": site_id,
        "account_id": account_id,
        "customer_id": customer_id,
        "topic": Topic(topic).value,
        "language": language.value,
        "dedupe_key": dedupe_key,
        "params": merged,
        "created_at": now,
        "updated_at": now,
        "next_attempt_at": now,
        "attempts": 0,
        "state": MessageState.PENDING.value,
    }
    queued = 0
    for channel, recipient, endpoint_id in _targets(
        conn, site_id, Topic(topic), contacts, customer_id
    ):
        values = (
            base
            | _text(rendered)
            | {
                "channel": channel.value,
                "recipient": recipient[:500],
                "endpoint_id": endpoint_id,
            }
        )
        if channel is ChannelName.IN_APP:
            values |= {"state": MessageState.SENT.value, "attempts": 1, "sent_at": now}
        message_id = repo.insert_message(conn, values)
        if message_id is None:
            continue
        queued += 1
        if channel is ChannelName.IN_APP:
            message = repo.message(conn, message_id)
            repo.insert_delivery(conn, message, 1, Outcome.SENT, now, provider_id="in-app")
    return queued


def _targets(
    conn: Connection, site_id: int, topic: Topic, contacts: Any, customer_id: int | None
) -> list[tuple[ChannelName, str, int | None]]:
    found: list[tuple[ChannelName, str, int | None]] = []
    if contacts is not None and customer_id is not None:
        found.append((ChannelName.IN_APP, f"customer:{customer_id}", None))
        for channel, address in (
            (ChannelName.SMS, contacts.phone),
            (ChannelName.EMAIL, contacts.email),
            (ChannelName.WECHAT, contacts.wechat_openid),
        ):
            if address and str(address).strip():
                found.append((channel, str(address).strip(), None))
    for endpoint in repo.endpoints(conn, site_id, enabled_only=True):
        if endpoint.wants(topic):
            found.append((ChannelName.WEBHOOK, endpoint.url, endpoint.id))
    return found


def _text(rendered: Rendered) -> dict[str, Any]:
    return {
        "title": rendered.title[:200],
        "body": rendered.body,
        "variables": rendered.variables,
    }


def claim(rt: Runtime, channels: Channels, *, limit: int = 100) -> list[Outgoing]:
    """Take the messages due now: each moves to ``sending`` with its attempt counted and a
    lease until its next try; a recipient over its limit waits (or, for an overtaken
    warning, is skipped); a lapsed claim that used the last try fails."""
    now = rt.clock.now()
    with rt.db.read() as conn:  # the usual answer is "nothing": no write lock for it
        if not repo.has_due(conn, now):
            return []
    taken: list[Outgoing] = []
    with rt.db.write() as conn:
        for message in repo.due(conn, now, limit):
            outgoing = _claim_one(conn, channels, message, now)
            if outgoing is not None:
                taken.append(outgoing)
    return taken


def _claim_one(
    conn: Connection,
    channels: Channels,
    message: Message,
    now: datetime,
) -> Outgoing | None:
    if message.state is MessageState.SENDING and out_of_tries(message.attempts):
        _settle(conn, message, Outcome.FAILED, now, "no answer after the last try")
        return None
    wait = _rate_limited(conn, channels, message, now)
    if wait is not None:
        if superseded(message.topic, repo.newer_topics(conn, message)):
            _settle(conn, message, Outcome.SKIPPED, now, "superseded by a newer message")
        else:
            state = move(MessageState.PENDING, Outcome.DELAYED)
            repo.save(
                conn, message, {"state": state.value, "next_attempt_at": wait, "updated_at": now}
            )
            error = f"rate limit reached for this recipient; next try at {wait.isoformat()}"
            repo.insert_delivery(conn, message, message.attempts, Outcome.DELAYED, now, error=error)
        return None
    attempts = message.attempts + 1
    lease = now + retry_after(attempts)
    state = move(message.state, None)
    values = {
        "state": state.value,
        "attempts": attempts,
        "next_attempt_at": lease,
        "updated_at": now,
    }
    repo.save(conn, message, values)
    claimed = replace(message, state=state, attempts=attempts, next_attempt_at=lease)
    secret = repo.endpoint_secret(conn, message.endpoint_id)
    return Outgoing(claimed, secret)


def _rate_limited(
    conn: Connection, channels: Channels, message: Message, now: datetime
) -> datetime | None:
    limit = channels.limits.get(message.channel)
    if limit is None:
        return None
    sends = repo.sends_since(conn, message.channel, message.recipient, now - RATE_WINDOW)
    # Sends under way (another claim's, or earlier in this batch) count as sent now.
    busy = repo.in_flight(conn, message, now)
    return next_allowed([*sends, *([now] * busy)], limit, now)


def _settle(conn: Connection, message: Message, outcome: Outcome, now: datetime, why: str) -> None:
    state = move(message.state, outcome)
    repo.save(conn, message, {"state": state.value, "updated_at": now, "last_error": why[:500]})
    repo.insert_delivery(conn, message, message.attempts, outcome, now, error=why)


def record(rt: Runtime, message: Message, result: SendResult) -> Message:
    """What came of one claimed attempt: sent, retry later (or failed, out of tries),
    failed, or skipped. Logged always; the message moves only while the claim is its."""
    now = rt.clock.now()
    outcome = result.outcome
    if outcome is Outcome.RETRY and out_of_tries(message.attempts):
        outcome = Outcome.FAILED
    state = move(message.state, outcome)
    values: dict[str, Any] = {"state": state.value, "updated_at": now}
    if outcome is Outcome.SENT:
        values |= {"sent_at": now, "provider_id": result.provider_id, "last_error": ""}
    else:
        values["last_error"] = result.error[:500]
    if outcome is Outcome.RETRY:
        values["next_attempt_at"] = now + retry_after(message.attempts)
    with rt.db.write() as conn:
        repo.insert_delivery(
            conn,
            message,
            message.attempts,
            outcome,
            now,
            provider_id=result.provider_id,
            error=result.error,
        )
        repo.save(conn, message, values, claimed_as=message.attempts)
        return repo.message(conn, message.id)
