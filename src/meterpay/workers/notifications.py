"""The notification deliverer: deliver what is due, again and again, until told to stop.

The delivery itself is blocking (database, SMTP, HTTP) and runs in a thread. An error
is logged and the loop goes on: a broken database connection or a provider outage
delays messages, it never stops the process. When a batch came back full the loop goes
straight on; otherwise it waits ``every_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from meterpay.notify.channels import Channels
from meterpay.notify.service import deliver_due
from meterpay.runtime import Runtime

log = logging.getLogger(__name__)
BATCH = 100


async def run_notifications(
    rt: Runtime, channels: Channels, stop: asyncio.Event, *, every_s: float = 1.0
) -> None:
    while not stop.is_set():
        handled = 0
        try:
            handled = await asyncio.to_thread(deliver_due, rt, channels, limit=BATCH)
        except Exception:  # the loop outlives any one failure
            log.exception("delivering notifications failed; trying again in %.1f s", every_s)
        if handled >= BATCH:
            continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every_s)
