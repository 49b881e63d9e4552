"""The background job runner: run queued jobs one at a time, until told to stop.

Every process with workers runs one (jobs are claimed, never run twice at once). The
handlers come from the entry point that builds the workers (``job_handlers``), which
knows what each kind of job does; this loop only claims, runs and keeps going. At start
and every ``RECOVER_EVERY_S`` it takes back jobs whose runner vanished.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Mapping
from typing import Final

from meterpay.jobs.model import JobKind
from meterpay.jobs.service import Handler, recover_lost, run_next
from meterpay.runtime import Runtime

log = logging.getLogger(__name__)
RECOVER_EVERY_S: Final = 30.0


def runner_name() -> str:
    """This runner's name: host, process and a random part (unique per start)."""
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


async def run_jobs(
    rt: Runtime,
    handlers: Mapping[JobKind, Handler],
    stop: asyncio.Event,
    *,
    every_s: float = 1.0,
) -> None:
    runner = runner_name()
    recovered_at = 0.0
    while not stop.is_set():
        ran = False
        try:
            if time.monotonic() - recovered_at >= RECOVER_EVERY_S:
                await asyncio.to_thread(recover_lost, rt, runner=runner, at_start=not recovered_at)
                recovered_at = time.monotonic()
            ran = await asyncio.to_thread(run_next, rt, handlers, runner=runner)
        except Exception:  # the loop outlives any one failure
            log.exception("running background jobs failed; trying again in %.1f s", every_s)
        if ran:
            continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every_s)
