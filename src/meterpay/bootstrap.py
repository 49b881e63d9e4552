"""The one place that picks concrete adapters: database, clock, settings, payment providers."""

from __future__ import annotations

from meterpay.config import Settings
from meterpay.db.engine import Database
from meterpay.kernel.clock import Clock, SystemClock
from meterpay.payments.setup import merchants_from, providers_from
from meterpay.runtime import Runtime


def build_runtime(settings: Settings | None = None, *, clock: Clock | None = None) -> Runtime:
    settings = settings or Settings()
    clock = clock or SystemClock()
    return Runtime(
        db=Database(settings.database_url),
        clock=clock,
        settings=settings,
        payments=providers_from(settings, clock),
        merchants=merchants_from(settings, clock),
    )
