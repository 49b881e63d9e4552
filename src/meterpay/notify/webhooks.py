"""Webhooks for integrators: each delivery is a signed JSON POST.

Headers: ``X-Meterpay-Event`` (the topic), ``X-Meterpay-Delivery`` (the message id, the
same on every retry: the integrator's idempotency key), ``X-Meterpay-Timestamp`` (Unix
seconds) and ``X-Meterpay-Signature`` (``v1=`` + hex HMAC-SHA256 of
``timestamp + "." + body`` with the endpoint's secret). Any 2xx is delivered; 408, 425,
429 and 5xx are retried; any other answer fails the message.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import httpx

from meterpay.notify.model import Message, Outgoing, SendResult
from meterpay.notify.rules import http_outcome
from meterpay.notify.signing import webhook_signature


def payload(message: Message) -> dict[str, Any]:
    return {
        "id": message.id,
        "event": message.topic.value,
        "site_id": message.site_id,
        "account_id": message.account_id,
        "customer_id": message.customer_id,
        "created_at": message.created_at.isoformat(),
        "language": message.language.value,
        "title": message.title,
        "text": message.body,
        "data": message.params,
    }


class WebhookSender:
    def __init__(self, client: httpx.Client) -> None:
        self._client = client

    def send(self, outgoing: Outgoing, now: datetime) -> SendResult:
        message = outgoing.message
        if not outgoing.secret:
            return SendResult.skipped("the webhook endpoint was removed or disabled")
        body = json.dumps(payload(message), ensure_ascii=False, separators=(",", ":")).encode()
        stamp = int(now.timestamp())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "meterpay-webhooks/1",
            "X-Meterpay-Event": message.topic.value,
            "X-Meterpay-Delivery": str(message.id),
            "X-Meterpay-Timestamp": str(stamp),
            "X-Meterpay-Signature": webhook_signature(outgoing.secret, stamp, body),
        }
        response = self._client.post(message.recipient, content=body, headers=headers)
        result = f"http {response.status_code}"
        return SendResult(
            http_outcome(response.status_code),
            provider_id=result,
            error=("" if response.is_success else f"{result}: {response.text[:200]}"),
        )
